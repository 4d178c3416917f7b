"""LyCORIS against its own code: ``backends/kohya/lycoris.toml`` regenerates from the pinned
release, and a profile's ``network_args`` as lorac emits them go through the real
``lycoris.kohya.create_network`` on a tiny stand-in model on the CPU.

* ``LORAC_LYCORIS``: an unpacked ``lycoris-lora`` release with its ``.lorac-commit``
  (``pypi:lycoris-lora==4.1.3#sha256=…``), for the regeneration test;
* ``LORAC_LYCORIS_PYTHON``: an interpreter with torch and that ``lycoris-lora`` installed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lorac.config.inventory import backends_dir, load_lycoris
from lorac.config.profile import resolve
from lorac.trainers.kohya.emitter import KohyaBackend
from lorac.trainers.kohya.lycoris_gen import OUT_NAME, generate, pin_of

pytestmark = pytest.mark.trainer

# sd-scripts' handling (train_network.py:1071-1083 at 37a1cbbc): every entry split at the first
# "=", values stay strings, and dropout is added for LyCORIS when absent.
WORKER = r'''
import json, sys
import torch
from torch import nn
import lycoris.kohya as kohya

class Transformer2DModel(nn.Module):  # a class name LyCORIS targets in an SDXL UNet
    def __init__(self):
        super().__init__()
        self.proj_in = nn.Linear(64, 64)
        self.to_q = nn.Linear(64, 64)
        self.ff = nn.Linear(64, 256)
        self.proj_out = nn.Linear(256, 64)

class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Transformer2DModel()

args = json.loads(sys.argv[1])
kwargs = {}
for net_arg in args["network_args"]:
    key, value = net_arg.split("=", 1)
    kwargs[key] = value
kwargs.setdefault("dropout", args.get("network_dropout"))
try:
    network = kohya.create_network(1.0, args["network_dim"], args["network_alpha"], None, [],
                                   UNet(), **kwargs)
except Exception as exc:  # the failure itself is the result
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)[:300]}))
    raise SystemExit(0)
loras = network.unet_loras
from importlib.metadata import version
print(json.dumps({"version": version("lycoris-lora"), "count": len(loras),
                  "types": sorted({type(m).__name__ for m in loras}),
                  "scales": sorted({round(float(m.scale), 6) for m in loras
                                    if hasattr(m, "scale")})}))
'''


def _python() -> str:
    value = os.environ.get("LORAC_LYCORIS_PYTHON")
    if not value:
        pytest.skip("LORAC_LYCORIS_PYTHON is not set")
    return value


def _emit(tmp: Path, network_args: list[str], dim: int = 16, alpha: float = 8.0) -> dict:
    text = f'''[profile]
family = "sdxl"

[network]
network_module = "lycoris.kohya"
network_dim = {dim}
network_alpha = {alpha}
network_args = {json.dumps(network_args)}
'''
    path = tmp / "p.toml"
    path.write_text(text, encoding="utf-8")
    res = resolve(path, env={})
    assert res.profile is not None, res.diagnostics
    return KohyaBackend().emit(res.profile, "toml").options


def _create(options: dict) -> dict:
    args = {k: options.get(k) for k in ("network_args", "network_dim", "network_alpha",
                                        "network_dropout")}
    proc = subprocess.run([_python(), "-c", WORKER, json.dumps(args)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lycoris_toml_is_fresh(tmp_path: Path) -> None:
    value = os.environ.get("LORAC_LYCORIS")
    if not value:
        pytest.skip("LORAC_LYCORIS is not set")
    folder = Path(value)
    version, sha256 = pin_of(folder)
    source = load_lycoris()["source"]
    assert (version, sha256) == (source["version"], source["sha256"]), "not the pinned release"
    written = generate(folder, tmp_path)
    assert written.read_bytes() == (backends_dir() / "kohya" / OUT_NAME).read_bytes()


def test_profile_network_args_build_the_network(tmp_path: Path) -> None:
    options = _emit(tmp_path, ["algo=lokr", "factor=8", "preset=attn-mlp", "conv_dim=4",
                               "conv_alpha=1", "use_tucker=False", "rank_dropout=0.1"])
    result = _create(options)
    assert result.get("version") == load_lycoris()["source"]["version"], result
    assert result["count"] > 0 and result["types"] == ["LokrModule"], result


def test_every_algo_lorac_knows_builds(tmp_path: Path) -> None:
    for algo in load_lycoris()["lycoris"]["algos"]:
        result = _create(_emit(tmp_path, [f"algo={algo}"]))
        assert "error" not in result and result["count"] > 0, (algo, result)


def test_alpha_scaling_is_what_lycoris_toml_says(tmp_path: Path) -> None:
    scaling = load_lycoris()["lycoris"]["scaling"]
    locon = _create(_emit(tmp_path, ["algo=locon"], dim=16, alpha=8.0))
    assert scaling["locon"]["kind"] == "alpha/dim" and locon["scales"] == [0.5]
    # LoKr with full matrices: alpha := dim, scale 1, whatever network_alpha says
    lokr = _create(_emit(tmp_path, ["algo=lokr", "full_matrix=True"], dim=16, alpha=8.0))
    assert scaling["lokr"]["kind"] == "lokr" and lokr["scales"] == [1.0], lokr


def test_what_lorac_reports_is_what_lycoris_does(tmp_path: Path) -> None:
    # LRC109: an unknown algo stops the run
    bad = _create(_emit(tmp_path, ["algo=lokor"]))
    assert bad.get("error") == "KeyError", bad
    # LRC106: a misspelt key is silently ignored (the network builds as without it)
    plain = _create(_emit(tmp_path, ["algo=locon"]))
    misspelt = _create(_emit(tmp_path, ["algo=locon", "conv_dimm=8"]))
    assert misspelt == plain
