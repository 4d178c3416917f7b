"""Write synthetic SD3 / SD3.5 checkpoints (real shapes and dtypes, random values) with
sd-scripts' own classes, plus the three text encoders and offline tokenizers.

    python3 tests/gpu/sd3_synth.py OUT_DIR [--device cuda] [--variants sd3-medium,sd3.5-large]
                                           [--t5xxl FILE] [--tiny]

Run on the device machine with sd-scripts importable (``LORAC_SD_SCRIPTS`` names the checkout;
its folder goes on ``sys.path``). What ``sd3_train_network.py`` reads at the pin (37a1cbbc):

* the base checkpoint (``--pretrained_model_name_or_path``): the MMDiT under
  ``model.diffusion_model.`` and the VAE under ``first_stage_model.`` (``library/sd3_utils.py``
  ``load_mmdit``/``load_vae``), as the released SD3 medium and SD3.5 large files have them. The
  MMDiT is ``library.sd3_models.create_sd3_mmdit`` with the parameters that
  ``analyze_state_dict_state`` derives back from the shapes (SD3 medium: depth 24, no q/k norm,
  model type "medium"; SD3.5 large: depth 38, RMS q/k norm, "5-large"; both patch 2,
  ``pos_embed`` 192x192 patches, ``adm_in_channels`` 2048, context 4096), built on ``--device``
  in bf16 and its ``pos_embed`` buffer filled with sd-scripts' own sin-cos table; the VAE is
  ``sd3_models.SDVAE`` in fp16;
* the text encoders as separate files, as ``--clip_l --clip_g --t5xxl`` take them: CLIP-L and
  CLIP-G are transformers' ``CLIPTextModelWithProjection`` with the configurations
  ``load_clip_l``/``load_clip_g`` build (fp16), T5-XXL is lorac's synthetic FLUX.1 T5-XXL
  (``lorac.trainers.kohya.synth``: SD3 loads it through ``flux_utils.load_t5xxl``), or the file
  ``--t5xxl`` names (a FLUX.1 set's ``t5xxl_fp16.safetensors`` already on the machine);
* tokenizers (``--tokenizer_cache_dir``): ``library/strategy_sd3.py`` loads CLIP-L, CLIP-G (both
  ``CLIPTokenizer``; CLIP-G's pad id is then forced to 0) and T5-XXL (``T5TokenizerFast``)
  through ``strategy_base._load_tokenizer``, which reads ``<cache>/<hub id with "/" as "_">``
  when it exists: lorac's small synthetic CLIP BPE under both CLIP ids and its synthetic
  sentencepiece T5 (``lorac.trainers.tokenizers``), whose ids stay below the real vocabularies.

The checkpoint names carry the variant the way lorac reads it from a file name
(``sd3_medium-synth``, ``sd3.5_large-synth``). Each variant's ``OUT_DIR/<variant>.json`` (paths
of everything a profile names) is written last, when its files are there, so a scheduler can
start the first variant's runs while the next is written; a variant whose JSON exists is not
written again, and one that fails (exit 1 at the end) does not keep the next from being
written. ``--tiny`` writes the same key names with small widths and depths for CPU tests
(the text encoders and the VAE are then small too, so only the MMDiT loads unmodified).
Parameter counts: MMDiT 2,028,328,000 (medium) / 8,056,627,520 (3.5 large), CLIP-L 123,650,304,
CLIP-G 694,659,840, T5-XXL 4,762,310,656, VAE 83,819,683.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: The tokenizer ids of sd-scripts' SD3 strategy (library/strategy_sd3.py:23-25).
TOKENIZER_IDS = {"clip": ("openai/clip-vit-large-patch14",
                          "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"),
                 "t5": "google/t5-v1_1-xxl"}
#: MMDiT shapes of each variant (what analyze_state_dict_state reads back, sd3_utils.py:31-75)
VARIANTS: dict[str, dict[str, Any]] = {
    "sd3-medium": {"file": "sd3_medium-synth.safetensors", "depth": 24, "pos": 192,
                   "adm": 2048, "context": 4096, "qk_norm": None, "model_type": "medium"},
    "sd3.5-large": {"file": "sd3.5_large-synth.safetensors", "depth": 38, "pos": 192,
                    "adm": 2048, "context": 4096, "qk_norm": "rms", "model_type": "5-large"},
}
TINY = {"depth": 2, "pos": 8, "adm": 32, "context": 16}
#: CLIP text-encoder configurations as sd3_utils.load_clip_l / load_clip_g build them
CLIP_L = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
          "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
          "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "pad_token_id": 1,
          "bos_token_id": 0, "eos_token_id": 2, "projection_dim": 768}
CLIP_G = {**CLIP_L, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
          "num_attention_heads": 20, "hidden_act": "gelu", "projection_dim": 1280}
CLIP_TINY = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
             "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 16}
_ST_DTYPE = {"torch.bfloat16": "BF16", "torch.float16": "F16", "torch.float32": "F32"}


def save_streamed(path: Path, tensors: dict[str, Any], metadata: dict[str, str]) -> int:
    """Write ``tensors`` (on any device) as a safetensors file one tensor at a time, so the host
    holds one tensor, not the model; returns the file's size."""
    import torch

    entries: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for key, t in tensors.items():
        n = t.numel() * t.element_size()
        entries[key] = {"dtype": _ST_DTYPE[str(t.dtype)], "shape": list(t.shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb", buffering=0) as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for t in tensors.values():
            if t.numel():
                f.write(memoryview(t.detach().contiguous().view(torch.uint8).reshape(-1)
                                   .cpu().numpy()))
    tmp.replace(path)
    return path.stat().st_size


def _sd_scripts() -> None:
    sd_scripts = os.environ.get("LORAC_SD_SCRIPTS")
    if sd_scripts and sd_scripts not in sys.path:
        sys.path.insert(0, sd_scripts)


def tokenizers(out: Path) -> Path:
    from lorac.trainers.tokenizers import write_clip_tokenizer, write_t5_tokenizer

    folder = out / "tokenizers"
    for tid in TOKENIZER_IDS["clip"]:
        if not (folder / tid.replace("/", "_")).is_dir():
            write_clip_tokenizer(folder / tid.replace("/", "_"))
    t5 = folder / TOKENIZER_IDS["t5"].replace("/", "_")
    if not t5.is_dir():
        write_t5_tokenizer(t5)
    return folder


def text_encoders(out: Path, device: str, tiny: bool, t5xxl: str | None) -> dict[str, str]:
    """CLIP-L, CLIP-G (fp16, transformers' classes) and T5-XXL; files already there are kept."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from lorac.trainers.kohya import synth

    paths = {"clip_l": out / "clip_l.safetensors", "clip_g": out / "clip_g.safetensors"}
    for name, cfg in (("clip_l", CLIP_L), ("clip_g", CLIP_G)):
        if paths[name].is_file():
            continue
        conf = {**cfg, **CLIP_TINY} if tiny else cfg
        with torch.device(device):
            model = CLIPTextModelWithProjection(
                CLIPTextConfig(**conf, model_type="clip_text_model")).half()
        save_streamed(paths[name], model.state_dict(),
                      {"format": "pt", "lorac": f"synthetic {name}: real shapes, random values"})
        del model
    if t5xxl and Path(t5xxl).is_file():
        paths["t5xxl"] = Path(t5xxl)
    else:
        paths["t5xxl"] = out / "t5xxl_fp16.safetensors"
        if not paths["t5xxl"].is_file():
            spec = synth.component_specs("flux1-dev", tiny=tiny)["t5xxl"]
            synth._write_streamed(paths["t5xxl"], spec, device=device, seed=1)
    return {k: str(v) for k, v in paths.items()}


def checkpoint(out: Path, variant: str, device: str, tiny: bool) -> tuple[Path, int]:
    """The base checkpoint of ``variant``: MMDiT (bf16) and VAE (fp16); returns (path, keys)."""
    import torch
    from library import sd3_models

    v = {**VARIANTS[variant], **(TINY if tiny else {})}
    hidden = 64 * v["depth"]
    params = sd3_models.SD3Params(
        patch_size=2, depth=v["depth"], num_patches=v["pos"] ** 2, pos_embed_max_size=v["pos"],
        adm_in_channels=v["adm"], qk_norm=v["qk_norm"], x_block_self_attn_layers=[],
        context_embedder_in_features=v["context"], context_embedder_out_features=hidden,
        model_type=v["model_type"])
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            mmdit = sd3_models.create_sd3_mmdit(params)
    finally:
        torch.set_default_dtype(default)
    mmdit.to(torch.bfloat16)
    # the two tensors sd3_models.py allocates with torch.empty: RMSNorm scales (q/k norm of
    # SD3.5, line 418) and the pos_embed buffer (line 835)
    with torch.no_grad():
        for module in mmdit.modules():
            if isinstance(module, sd3_models.RMSNorm) and module.weight is not None:
                module.weight.fill_(1.0)
    table = sd3_models.get_2d_sincos_pos_embed(hidden, v["pos"])
    mmdit.pos_embed.copy_(torch.from_numpy(table).reshape(1, -1, hidden))
    tensors = {f"model.diffusion_model.{k}": t for k, t in mmdit.state_dict().items()}
    vae = sd3_models.SDVAE(dtype=torch.float16, device=device)
    tensors.update({f"first_stage_model.{k}": t for k, t in vae.state_dict().items()})
    path = out / v["file"]
    if tiny:
        path = path.with_name(path.name.replace("-synth", "-tiny"))
    save_streamed(path, tensors, {"format": "pt", "lorac": f"synthetic {variant}: "
                                  "real shapes, random values"})
    return path, len(tensors)


def build(out: Path, device: str, variants: list[str], tiny: bool = False,
          t5xxl: str | None = None) -> dict[str, dict[str, str]]:
    _sd_scripts()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tok = tokenizers(out)
    encoders = text_encoders(out, device, tiny, t5xxl)
    done: dict[str, dict[str, str]] = {}
    for variant in variants:
        marker = out / f"{variant}.json"
        if marker.is_file():
            done[variant] = json.loads(marker.read_text(encoding="utf-8"))
            continue
        try:
            path, keys = checkpoint(out, variant, device, tiny)
        except Exception as e:  # the next variant may still be written (e.g. a smaller one)
            print(f"sd3_synth: {variant} not written: {type(e).__name__}: {e}", file=sys.stderr,
                  flush=True)
            continue
        info = {"variant": variant, "checkpoint": str(path), **encoders,
                "tokenizer_cache_dir": str(tok), "keys": str(keys),
                "bytes": str(path.stat().st_size), "seconds": f"{time.monotonic() - t0:.1f}"}
        part = marker.with_suffix(".json.part")
        part.write_text(json.dumps(info, indent=1), encoding="utf-8")
        part.replace(marker)  # whole or absent for a reader polling it
        print(json.dumps(info), flush=True)
        done[variant] = info
    return done


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2

    def opt(flag: str, default: str) -> str:
        return argv[argv.index(flag) + 1] if flag in argv else default

    variants = [v for v in opt("--variants", "sd3-medium").split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"sd3_synth: unknown variant {', '.join(unknown)} (known: "
              f"{', '.join(VARIANTS)})", file=sys.stderr)
        return 2
    done = build(Path(argv[0]), opt("--device", "cuda"), variants, "--tiny" in argv,
                 opt("--t5xxl", "") or None)
    return 0 if len(done) == len(variants) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
