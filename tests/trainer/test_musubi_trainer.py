"""musubi-tuner's own code on lorac's knowledge and output.

Skipped unless ``LORAC_MUSUBI_TUNER`` points at a musubi-tuner checkout (the commit of
``backends/musubi/pin.toml``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lorac.config import inventory
from lorac.trainers.inventory_gen import generate_musubi
from tests.trainer.conftest import REPO, checkout

pytestmark = pytest.mark.trainer


def test_musubi_knowledge_is_fresh(tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    written = generate_musubi(musubi, tmp_path)
    shipped = inventory.backends_dir() / "musubi"
    generated = {p.relative_to(tmp_path) for p in written}
    # (synth/ holds the synthetic-set layouts, generated and checked by
    # tests/trainer/test_musubi_synth_trainer.py; vram_*.json are measured records and the model
    # fitted to them, not read from the source: tests/test_lora_memory.py checks them)
    committed = {p.relative_to(shipped) for p in shipped.rglob("*.json")
                 if p.relative_to(shipped).parts[0] != "synth"
                 and not p.name.startswith("vram_")}
    assert generated == committed, "a generated file is not committed, or one is left over"
    for rel in sorted(generated):
        assert (tmp_path / rel).read_bytes() == (shipped / rel).read_bytes(), (
            f"backends/musubi/{rel} is stale: python -m lorac.trainers.inventory_gen musubi "
            "--from ..."
        )


# --------------------------------------------------------------------------- emitted files

#: Runs in a child interpreter: musubi's own argparse parsers (``main()`` of each step, stopped
#: once its arguments are parsed; the training step after ``read_config_from_file``) and its
#: own dataset-config sanitizer and blueprint, with stand-ins for torch & co but the real
#: ``toml`` and ``voluptuous``.
WORKER = r'''
import argparse, json, os, pathlib, sys
from lorac.trainers import inventory_gen as gen

checkout, out, steps_json, dataset = sys.argv[1:]
src = os.path.join(checkout, "src")
sys.dont_write_bytecode = True
sys.path.insert(0, src)
sys.meta_path.insert(0, gen._StubFinder(only=gen.ALWAYS_STUB - {"toml", "voluptuous"}))
sys.meta_path.append(gen._StubFinder())

class Parsed(Exception):
    pass

original = argparse.ArgumentParser.parse_args

def plain(value):
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)

import importlib
result = {"steps": {}}
for step, argv in json.loads(steps_json):
    script = next(a for a in argv if a.endswith(".py"))
    args = argv[argv.index(script) + 1:]
    is_train = step == "train"

    def parse_args(self, args=None, namespace=None):
        ns = original(self, args, namespace)
        if is_train and namespace is None:
            return ns  # read_config_from_file parses again with the config's values
        raise Parsed(ns)

    argparse.ArgumentParser.parse_args = parse_args
    sys.argv = [script, *args]
    module = importlib.import_module("musubi_tuner." + pathlib.Path(script).stem)
    try:
        module.main()
    except Parsed as exc:
        ns = exc.args[0]
    else:
        raise SystemExit(f"{script}: main() returned")
    result["steps"][step] = {k: plain(v) for k, v in vars(ns).items()}
    if is_train:
        train_ns = ns
argparse.ArgumentParser.parse_args = original

from musubi_tuner.dataset import config_utils
user = config_utils.load_user_config(dataset)
sanitizer = config_utils.ConfigSanitizer()
sanitizer.sanitize_user_config(user)
blueprint = config_utils.BlueprintGenerator(sanitizer).generate(user, train_ns)
result["datasets"] = [
    {"is_image": d.is_image_dataset, "params": {k: plain(v) for k, v in vars(d.params).items()}}
    for d in blueprint.dataset_group.datasets
]
json.dump(result, open(out, "w"))
'''

EXAMPLES = sorted((REPO / "profiles" / "examples" / "musubi").glob("*.toml"))


def _musubi_run(musubi: Path, build: Path, steps: list, tmp: Path) -> dict:
    out = tmp / "worker.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    from lorac.trainers.musubi.emitter import launch_argv

    real = [(step, launch_argv(argv, musubi, build)) for step, argv in steps]
    proc = subprocess.run([sys.executable, "-c", WORKER, str(musubi), str(out), json.dumps(real),
                           str(build / "dataset.toml")], capture_output=True, text=True,
                          env=env, cwd=tmp, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8"))


def emitted_run(musubi: Path, profile: Path, tmp_path: Path) -> tuple[Any, Any, Path, dict]:
    """``profile`` (relative to the repository) built for musubi-tuner into ``tmp_path/build``
    and its steps read by musubi's own parsers: the resolved profile, the artifact, the build
    folder and what the parsers made of it (:func:`_musubi_run`)."""
    from lorac.config.profile import resolve
    from lorac.trainers.musubi.emitter import MusubiBackend

    with contextlib.chdir(REPO):
        res = resolve(profile, env={})
        assert res.profile is not None, res.diagnostics
        art = MusubiBackend().emit(res.profile, "toml")
    build = tmp_path / "build"
    build.mkdir()
    for name, text in art.files.items():
        (build / name).write_text(text, encoding="utf-8")
    return res.profile, art, build, _musubi_run(musubi, build, art.steps, tmp_path)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_musubi_reads_every_emitted_file_as_intended(path: Path, tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    from lorac.trainers.musubi import knowledge

    resolved, art, build, got = emitted_run(musubi, Path("profiles/examples/musubi") / path.name,
                                            tmp_path)
    for step in knowledge.STEPS:
        ns = got["steps"][step]
        for name, value in art.step_options[step].items():
            assert ns[name] == value, (step, name, ns[name], value)
        assert ns["dataset_config"] == str(build / "dataset.toml")
    fam = knowledge.family(resolved.family)
    assert fam is not None
    for name, value in fam.variant.items():
        assert got["steps"]["train"][name] == value
    dataset = resolved.get("dataset")
    for emitted, declared in zip(got["datasets"], dataset["datasets"], strict=True):
        assert emitted["is_image"] == ("image_directory" in declared)
        for key in ("image_directory", "cache_directory", "num_repeats"):
            if key in declared:
                assert emitted["params"][key] == declared[key]
        assert emitted["params"]["caption_extension"] == dataset["caption_extension"]


def test_video_dataset_passes_sanitizer_with_lorac_types(tmp_path: Path) -> None:
    # source_fps = 30 in the profile: musubi's schema wants a float and rejects 30
    # (config_utils.py:143); the emitter writes 30.0
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    from lorac.trainers.musubi.emitter import MusubiBackend
    from tests.conftest import resolved
    from tests.test_musubi_backend import WAN

    res = resolved(tmp_path, WAN)
    assert res.profile is not None
    art = MusubiBackend().emit(res.profile, "toml")
    build = tmp_path / "build"
    build.mkdir()
    for name, text in art.files.items():
        (build / name).write_text(text, encoding="utf-8")
    got = _musubi_run(musubi, build, art.steps, tmp_path)
    (clips,) = got["datasets"]
    assert clips["is_image"] is False
    assert clips["params"]["source_fps"] == 30.0
    assert clips["params"]["target_frames"] == [1, 25, 45]
    assert clips["params"]["resolution"] == [832, 480]
