"""A stand-in for ai-toolkit's ``run.py``, for CPU tests of ``lorac run --backend ai-toolkit``.

``python run.py JOB.yaml``: reads the job lorac wrote, prints the lines ai-toolkit prints at
each phase (lorac.run.progress.AI_TOOLKIT_MARKERS) and a training bar named after the job
(``NAME:  50%|...| 1/2 [...,  1.00s/it, lr: 1.0e-04 loss: 1.234e-01]``), then saves a LoRA in
ai-toolkit's PEFT key format (``transformer.<module>.lora_A.weight`` / ``lora_B``, no alpha) under
``<training_folder>/<name>/<name>.safetensors``, one module per name of
:func:`lorac.trainers.ai_toolkit.synth.lora_modules` for the family whose synthetic set
``model.name_or_path`` names. ``FAKE_AITK_MODULES=N`` saves N modules instead;
``FAKE_AITK_ENV=FILE`` writes the environment it saw (JSON) to FILE.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml


def bar(desc: str, n: int, total: int, postfix: str) -> None:
    pct = int(100 * n / total)
    sys.stdout.write(f"\r{desc}: {pct:3d}%|{'#' * (pct // 10):<10}| {n}/{total} "
                     f"[00:0{n}<00:00,  1.00s/it, {postfix}]")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    job = yaml.safe_load(Path(argv[-1]).read_text(encoding="utf-8"))  # python run.py JOB
    if os.environ.get("FAKE_AITK_ENV"):
        Path(os.environ["FAKE_AITK_ENV"]).write_text(json.dumps(dict(os.environ)))
    name = job["config"]["name"]
    process = job["config"]["process"][0]
    model = Path(process["model"]["name_or_path"])
    print("Running 1 job")
    print("Loading Flux model" if process["model"]["arch"] == "flux" else "Loading Wan model")
    print("Loading transformer", flush=True)
    for dataset in process["datasets"]:
        print(f"Caching latents for {dataset['folder_path']}")
        print(f"Caching text_embeddings for {dataset['folder_path']}", flush=True)
    print("Generating baseline samples before training", flush=True)
    total = int(process["train"]["steps"])
    for n in range(total + 1):
        bar(name, n, total, f"lr: 1.0e-04 loss: {0.5 - 0.01 * n:.3e}")
    print()
    out = Path(process["training_folder"]) / name / f"{name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_lora(out, model, int(process["network"]["linear"]))
    print(f"Saved checkpoint to {out}", flush=True)
    return 0


def _write_lora(out: Path, model: Path, rank: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from lorac.trainers.ai_toolkit.synth import lora_modules

    marker = json.loads((model / "lorac-synth.json").read_text(encoding="utf-8"))
    names = lora_modules(marker["family"], tiny=bool(marker.get("tiny")))
    if os.environ.get("FAKE_AITK_MODULES"):
        names = names[:int(os.environ["FAKE_AITK_MODULES"])]
    rng = np.random.default_rng(0)
    tensors = {}
    for module in names:
        tensors[f"transformer.{module}.lora_A.weight"] = rng.standard_normal(
            (rank, 8)).astype(np.float16)
        tensors[f"transformer.{module}.lora_B.weight"] = (0.01 * rng.standard_normal(
            (8, rank))).astype(np.float16)
    save_file(tensors, str(out), metadata={"format": "pt", "software": "stand-in"})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
