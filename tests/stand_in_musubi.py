"""A stand-in for musubi-tuner's three commands, for ``lorac run`` tests without a GPU.

Called as the ``python`` and ``accelerate`` of a test's PATH with the real command line
(``python …/wan_cache_latents.py --dataset_config D …``, ``accelerate launch …
wan_train_network.py --config_file C --dataset_config D``). It appends its arguments to
``$FAKE_MUSUBI_LOG``, prints musubi-like output (tqdm bars, the training banner, the ``steps``
bar), writes cache files into each dataset's cache directory and the LoRA into ``output_dir``.
``$FAKE_MUSUBI_SLEEP`` (seconds per step) and ``$FAKE_MUSUBI_FAIL`` (a step name: latents,
text_encoder, train) drive the other paths; ``$FAKE_MUSUBI_PIDS`` collects pids.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import tomllib


def bar(desc: str, n: int, total: int, postfix: str = "") -> None:
    pct = int(100 * n / total)
    head = f"{desc}: " if desc else ""
    post = f", {postfix}" if postfix else ""
    sys.stderr.write(f"\r{head}{pct:3d}%|{'█' * (pct // 10):<10}| {n}/{total} "
                     f"[00:01<00:02, 0.50s/it{post}]")
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    if argv[:1] == ["launch"]:
        argv = argv[1:]
    script = next(a for a in argv if a.endswith(".py"))
    args = argv[argv.index(script) + 1:]
    name = Path(script).name
    if "convert" in name:  # convert_lora.py --input A --output B / convert_…_to_comfy.py A B
        src, dst = ((args[args.index("--input") + 1], args[args.index("--output") + 1])
                    if "--input" in args else (args[0], args[1]))
        with open(os.environ["FAKE_MUSUBI_LOG"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(["convert", name, *args]) + "\n")
        Path(dst).write_bytes(Path(src).read_bytes())
        print(f"saving to {dst}", flush=True)
        return 0
    step = ("latents" if "cache_latents" in name else
            "text_encoder" if "cache_text_encoder" in name else "train")
    with open(os.environ["FAKE_MUSUBI_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps([step, name, *args]) + "\n")
    if os.environ.get("FAKE_MUSUBI_PIDS"):
        with open(os.environ["FAKE_MUSUBI_PIDS"], "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
    sleep = float(os.environ.get("FAKE_MUSUBI_SLEEP", "0"))
    dataset = tomllib.loads(Path(args[args.index("--dataset_config") + 1]).read_text())
    if step != "train":
        for ds in dataset["datasets"]:
            cache = Path(ds.get("cache_directory") or ds.get("image_directory"))
            cache.mkdir(parents=True, exist_ok=True)
            for i in range(1, 4):
                time.sleep(sleep)
                bar("", i, 3)
            sys.stderr.write("\n")
            suffix = "_wan.safetensors" if step == "latents" else "_wan_te.safetensors"
            (cache / f"item{suffix}").write_bytes(b"cache")
        if os.environ.get("FAKE_MUSUBI_FAIL") == step:
            print("Traceback (most recent call last):\nRuntimeError: stand-in failure",
                  file=sys.stderr)
            return 3
        return 0
    config = tomllib.loads(Path(args[args.index("--config_file") + 1]).read_text())
    flat = {k: v for table in config.values() for k, v in table.items()}
    print("import network module: " + flat.get("network_module", "?"), flush=True)
    print("running training / 学習開始", flush=True)
    total = int(flat.get("max_train_steps", 4))
    for i in range(1, total + 1):
        time.sleep(sleep)
        bar("steps", i, total, f"avr_loss={0.5 / i:.4g}")
        if os.environ.get("FAKE_MUSUBI_FAIL") == "train":
            sys.stderr.write("\n")
            print("Traceback (most recent call last):\nRuntimeError: stand-in failure",
                  file=sys.stderr)
            return 4
    sys.stderr.write("\n")
    out = Path(flat["output_dir"]) / f"{flat.get('output_name', 'lora')}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"saving checkpoint: {out}", flush=True)
    _write_lora(out, flat)
    return 0


def _write_lora(out: Path, flat: dict) -> None:
    """A LoRA in musubi-tuner's key format (``lora_unet_blocks_…``) with tiny tensors and the
    rank, alpha and module the options name (see tests/make_lora.py)."""

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.make_lora import write

    module = str(flat.get("network_module", "networks.lora_wan"))
    names = [f"lora_unet_blocks_{i}_self_attn_q" for i in range(2)]
    if flat.get("task") == "t2v-1.3B" and module == "networks.lora_wan":
        from lorac.trainers.musubi.synth import wan_lora_modules  # what lora_wan wraps there

        names = ["lora_unet_" + m.replace(".", "_") for m in wan_lora_modules("wan2.1-t2v-1.3b")]
    write(out, rank=int(flat.get("network_dim", 4)), alpha=float(flat.get("network_alpha", 1)),
          module=module, names=names, meta={"ss_base_model_version": "wan"})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
