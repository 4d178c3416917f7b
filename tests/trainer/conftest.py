"""Running the real trainers' own code on lorac's output, in a separate interpreter.

The worker imports the pinned checkout's modules with stand-in modules for torch & co (the
stubbing of :mod:`lorac.trainers.inventory_gen`) and prints JSON. Tests here are skipped unless
``LORAC_SD_SCRIPTS`` / ``LORAC_AI_TOOLKIT`` point at checkouts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

WORKER = r'''
import argparse, json, os, pathlib, sys
from lorac import inventory_gen as gen

checkout, mode, out, *rest = sys.argv[1:]
# gen._prepare_worker, except that the trainer's own config readers (toml, voluptuous, yaml)
# must be the real ones here
sys.dont_write_bytecode = True
os.chdir(checkout)
sys.path.insert(0, checkout)
sys.meta_path.insert(0, gen._StubFinder(only=gen.ALWAYS_STUB - {"toml", "voluptuous", "yaml"}))
sys.meta_path.append(gen._StubFinder())

def plain(value):
    if isinstance(value, pathlib.PurePath):
        return {"path": str(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"repr": repr(value)}

if mode in ("config", "cli"):
    import importlib
    script = importlib.import_module(rest[0])
    from library import train_util
    parser = script.setup_parser()
    # read_config_from_file parses sys.argv again (library/args.py:1194)
    if mode == "config":
        sys.argv = [rest[0] + ".py", "--config_file", rest[1], *rest[2:]]
        args = parser.parse_args(sys.argv[1:])
        args = train_util.read_config_from_file(args, parser)
    else:
        sys.argv = [rest[0] + ".py", *rest[1:]]
        args = parser.parse_args(sys.argv[1:])
    result = vars(args)
elif mode == "dataset":
    from library import config_util
    # as train_network.py:924 builds it (support_controlnet = args.masked_loss, False here)
    sanitizer = config_util.ConfigSanitizer(True, True, False, True)
    result = sanitizer.sanitize_user_config(config_util.load_user_config(rest[0]))
elif mode == "ai-toolkit":
    import yaml
    import toolkit.config_modules as cm
    job = yaml.safe_load(open(rest[0], encoding="utf-8"))
    proc = job["config"]["process"][0]
    classes = {"network": cm.NetworkConfig, "train": cm.TrainConfig, "save": cm.SaveConfig,
               "model": cm.ModelConfig, "sample": cm.SampleConfig}
    result = {}
    for key, cls in classes.items():
        if key in proc:
            obj = cls(**proc[key])
            result[key] = {k: getattr(obj, k, None) for k in proc[key]}
    result["datasets"] = [vars(cm.DatasetConfig(**d)) for d in proc.get("datasets", [])]
    result["datasets"] = [{k: d[k] for k in src} for d, src in
                          zip(result["datasets"], proc.get("datasets", []))]
json.dump(plain(result), open(out, "w"))
'''


def checkout(env: str, pinned: str | None = None) -> Path:
    """The checkout named by ``env``; skips the test when unset. With ``pinned`` (a backend
    name), fails the test unless the checkout is at that backend's pinned commit."""

    value = os.environ.get(env)
    if not value:
        pytest.skip(f"{env} is not set")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{env}={value} is not a directory")
    if pinned is not None:
        from lorac.config.inventory import load_pin
        from lorac.trainers.inventory_gen import checkout_commit

        commit = load_pin(pinned).commit
        if checkout_commit(path) != commit:
            pytest.fail(f"{env}={path} is not at the pinned commit {commit}")
    return path


VERSIONS_ENV = "LORAC_SD_SCRIPTS_VERSIONS"


def version_checkout(commit: str) -> Path:
    """A checkout at ``commit``: ``LORAC_SD_SCRIPTS`` or one of the checkouts listed in
    ``LORAC_SD_SCRIPTS_VERSIONS`` (separated like PATH); skips the test when none is."""

    from lorac.trainers.inventory_gen import checkout_commit

    raw = [os.environ.get("LORAC_SD_SCRIPTS", ""),
           *os.environ.get(VERSIONS_ENV, "").split(os.pathsep)]
    for value in filter(None, raw):
        path = Path(value)
        if path.is_dir() and checkout_commit(path) == commit:
            return path
    pytest.skip(f"no sd-scripts checkout at {commit[:8]} in LORAC_SD_SCRIPTS or {VERSIONS_ENV}")


def run_worker(path: Path, mode: str, *args: str, tmp: Path) -> Any:
    """Run the worker (see :data:`WORKER`); returns its JSON result."""

    needs = {"config": ("toml",), "cli": ("toml",), "dataset": ("toml", "voluptuous"),
             "ai-toolkit": ("yaml",)}[mode]
    for module in needs:
        pytest.importorskip(module, reason=f"the trainer's own {module} is needed")
    out = tmp / f"worker-{mode}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", WORKER, str(path), mode, str(out), *args],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"worker {mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text(encoding="utf-8"))
