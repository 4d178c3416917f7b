"""lorac.trainers.kohya.synth: key names, shapes and dtypes of the synthetic FLUX.1-dev set."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import types
from pathlib import Path

import pytest

from lorac.trainers.kohya.synth import (
    FluxSizes,
    component_specs,
    write_clip_tokenizer,
    write_synthetic,
)

HAVE_TORCH = importlib.util.find_spec("torch") is not None and (
    importlib.util.find_spec("safetensors") is not None
)
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None and (
    importlib.util.find_spec("tokenizers") is not None
)
#: the sd-scripts checkout that LORAC_SD_SCRIPTS names (None without it: those tests skip)
SD_SCRIPTS = Path(os.environ["LORAC_SD_SCRIPTS"]) if os.environ.get("LORAC_SD_SCRIPTS") else None


def test_tiny_keys_equal_full_keys_without_allocating() -> None:
    full = component_specs("flux1-dev")
    tiny = component_specs("flux1-dev", tiny=True)
    assert set(full) == {"transformer", "clip_l", "t5xxl", "ae"}
    for name in full:
        assert list(tiny[name]) == list(full[name]), name
        assert {t.dtype for t in tiny[name].values()} == {t.dtype for t in full[name].values()}


def test_full_sizes_match_the_real_checkpoints() -> None:
    specs = component_specs("flux1-dev")
    params = {n: sum(math.prod(t.shape) for t in s.values()) for n, s in specs.items()}
    assert params["transformer"] == 11_901_408_320  # FLUX.1-dev: ~11.9 B
    assert len(specs["transformer"]) == 780 and len(specs["ae"]) == 244
    assert len(specs["clip_l"]) == 196 and len(specs["t5xxl"]) == 220
    assert {t.dtype for t in specs["transformer"].values()} == {"bf16"}
    assert {t.dtype for t in specs["clip_l"].values()} == {"fp16"}
    assert {t.dtype for t in specs["t5xxl"].values()} == {"fp16"}
    assert {t.dtype for t in specs["ae"].values()} == {"fp32"}
    gb = sum(t.nbytes for t in specs["transformer"].values()) / 1e9
    assert 23.7 < gb < 23.9
    assert specs["transformer"]["double_blocks.18.img_attn.qkv.weight"].shape == (9216, 3072)
    assert specs["transformer"]["single_blocks.37.linear1.weight"].shape == (21504, 3072)
    assert specs["t5xxl"]["encoder.block.23.layer.1.DenseReluDense.wi_0.weight"].shape == (
        10240,
        4096,
    )


def test_unknown_family() -> None:
    with pytest.raises(ValueError, match="sdxl"):
        component_specs("sdxl")


def test_clip_tokenizer_files(tmp_path: Path) -> None:
    folder = write_clip_tokenizer(tmp_path / "clip")
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["<|endoftext|>"] == max(vocab.values()) < 49408
    assert (folder / "merges.txt").read_text(encoding="utf-8").startswith("#version")


@pytest.mark.skipif(
    not (HAVE_TORCH and HAVE_TRANSFORMERS), reason="needs torch, safetensors, transformers"
)
def test_write_tiny_set_reads_back(tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open
    from transformers import CLIPTokenizer, T5TokenizerFast

    s = write_synthetic("flux1-dev", tmp_path, tiny=True)
    specs = component_specs("flux1-dev", tiny=True)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    for name, path in s.files.items():
        with safe_open(str(path), framework="pt") as f:
            assert sorted(f.keys()) == sorted(specs[name])
            for key in specs[name]:
                t = f.get_tensor(key)
                assert tuple(t.shape) == specs[name][key].shape
                assert t.dtype == dtypes[specs[name][key].dtype]
                assert torch.isfinite(t.float()).all()
    assert s.trainer_args()["pretrained_model_name_or_path"].endswith("flux1-dev.safetensors")

    clip = CLIPTokenizer.from_pretrained(
        str(s.tokenizer_cache_dir / "openai_clip-vit-large-patch14")
    )
    ids = clip(["a photo of the cat"], max_length=77, padding="max_length", truncation=True)
    assert len(ids["input_ids"][0]) == 77 and max(ids["input_ids"][0]) < FluxSizes().clip_vocab
    t5 = T5TokenizerFast.from_pretrained(str(s.tokenizer_cache_dir / "google_t5-v1_1-xxl"))
    ids = t5(["a photo of the cat"], max_length=512, padding="max_length", truncation=True)
    assert len(ids["input_ids"][0]) == 512 and max(ids["input_ids"][0]) < FluxSizes().t5_vocab
    assert ids["input_ids"][0][ids["attention_mask"][0].index(0) - 1] == 1  # ends with </s>


def _import_sd_scripts_models() -> tuple[types.ModuleType, types.ModuleType]:
    """flux_models and flux_utils with their GPU-side helpers stubbed (no torchvision needed)."""
    assert SD_SCRIPTS is not None
    sys.path.insert(0, str(SD_SCRIPTS))
    import library

    for name in ("utils", "device_utils", "custom_offloading_utils"):
        mod = types.ModuleType(f"library.{name}")
        mod.init_ipex = lambda: None  # type: ignore[attr-defined]
        mod.clean_memory_on_device = lambda *a: None  # type: ignore[attr-defined]
        mod.setup_logging = lambda *a, **k: None  # type: ignore[attr-defined]
        sys.modules[f"library.{name}"] = mod
        setattr(library, name, mod)
    sys.modules["library.safetensors_utils"] = types.SimpleNamespace(load_safetensors=None)  # type: ignore[assignment]
    from library import flux_models, flux_utils

    return flux_models, flux_utils


@pytest.mark.trainer
@pytest.mark.skipif(
    not (HAVE_TORCH and HAVE_TRANSFORMERS)
    or importlib.util.find_spec("einops") is None
    or importlib.util.find_spec("accelerate") is None,
    reason="sd-scripts' models need torch, transformers, einops, accelerate",
)
@pytest.mark.skipif(SD_SCRIPTS is None, reason="LORAC_SD_SCRIPTS is not set")
def test_specs_equal_sd_scripts_models_on_meta() -> None:
    """Build sd-scripts' own modules on the meta device and compare every key, shape."""
    import inspect

    import torch
    from transformers import CLIPConfig, CLIPTextModel, T5Config, T5EncoderModel

    flux_models, flux_utils = _import_sd_scripts_models()
    specs = component_specs("flux1-dev")

    def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def mine(name: str) -> dict[str, tuple[int, ...]]:
        return {k: t.shape for k, t in specs[name].items()}

    src = inspect.getsource(flux_utils.load_clip_l)
    body = src[src.index("CLIPL_CONFIG = {") : src.index("config = CLIPConfig")]
    ns: dict[str, object] = {}
    exec(inspect.cleandoc("\n" + body.replace("    CLIPL_CONFIG", "CLIPL_CONFIG", 1)), {}, ns)
    t5src = inspect.getsource(flux_utils.load_t5xxl)
    t5json = json.loads(t5src[t5src.index('"""') + 3 : t5src.rindex('"""')])
    with torch.device("meta"):
        assert shapes(flux_models.Flux(flux_models.configs["dev"].params)) == mine("transformer")
        assert shapes(flux_models.AutoEncoder(flux_models.configs["dev"].ae_params)) == mine("ae")
        clip = CLIPTextModel._from_config(CLIPConfig(**ns["CLIPL_CONFIG"]))  # type: ignore[arg-type]
        assert shapes(clip) == mine("clip_l")
        assert shapes(T5EncoderModel._from_config(T5Config(**t5json))) == mine("t5xxl")
