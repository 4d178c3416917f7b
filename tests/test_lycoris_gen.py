"""The LyCORIS generator on a miniature release, and the shipped data's shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from lorac.config.inventory import load_lycoris
from lorac.trainers.kohya.lycoris_gen import LycorisError, main, pin_of, render
from tests.conftest import write_files

SHA = "ab" * 32


def _release(root: Path) -> Path:
    write_files(root, {
        ".lorac-commit": f"pypi:lycoris-lora==9.9.9#sha256={SHA}\n",
        "lycoris/kohya.py": (
            "def create_network(multiplier, network_dim, network_alpha, vae, te, unet, **kw):\n"
            "    algo = (kw.get('algo', 'lora') or 'lora').lower()\n"
            "    conv_dim = int(kw.get('conv_dim', network_dim) or network_dim)\n"
            "    use_tucker = str_bool(kw.get('use_cp', False) or kw.get('use_tucker', False))\n"),
        "lycoris/wrapper.py": ("network_module_dict = {\n    'lora': A,\n    'lokr': B,\n}\n"
                               "deprecated_arg_dict = {'use_cp': 'use_tucker'}\n"),
        "lycoris/config.py": "BUILTIN_PRESET_CONFIGS = {\n    'full': A,\n}\n",
        "lycoris/utils/__init__.py": "def str_bool(val):\n    return str(val).lower() != 'false'\n",
        "lycoris/modules/locon.py": "        self.scale = alpha / r_factor\n",
        "lycoris/modules/lokr.py": "x\n        if self.use_w2 and self.use_w1:\n",
    })
    return root


def test_render_reads_keys_algos_presets_and_scaling(tmp_path: Path) -> None:
    data = tomllib.loads(render(_release(tmp_path)))
    assert data["source"] == {"package": "lycoris-lora", "version": "9.9.9", "sha256": SHA}
    assert data["lycoris"]["algos"] == ["lora", "lokr"]
    assert data["lycoris"]["algos_at"] == "lycoris/wrapper.py:1-4"
    assert data["lycoris"]["presets"] == ["full"]
    assert data["lycoris"]["aliases"] == {"use_cp": "use_tucker"}
    assert data["lycoris"]["scaling"] == {
        "lora": {"kind": "alpha/dim", "at": "lycoris/modules/locon.py:1"},
        "lokr": {"kind": "lokr", "at": "lycoris/modules/lokr.py:2"}}
    module = data["modules"]["lycoris.kohya"]
    assert module["args"] == {"algo": 2, "conv_dim": 3, "use_cp": 4, "use_tucker": 4}
    assert module["bools_str"] == {"use_cp": 4, "use_tucker": 4}
    assert module["types"] == {"conv_dim": {"type": "int", "line": 3}}
    assert module["defaults"] == {"algo": "lora", "use_cp": False, "use_tucker": False}


def test_an_unpinned_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(LycorisError, match="expected 'pypi:lycoris-lora==VERSION#sha256=HEX'"):
        pin_of(tmp_path)
    assert main(["--from", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "lycoris_gen:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_shipped_lycoris_is_the_pinned_release() -> None:
    data = load_lycoris()
    assert data["source"]["version"] == "4.1.3"
    assert len(data["source"]["sha256"]) == 64
    assert {"lora", "locon", "loha", "lokr", "diag-oft", "boft", "ia3", "tlora"} <= set(
        data["lycoris"]["algos"])
    assert data["lycoris"]["scaling"]["boft"]["kind"] == "none"
    assert {"conv_dim", "conv_alpha", "factor", "preset", "algo"} <= set(
        data["modules"]["lycoris.kohya"]["args"])
