"""LRC1xx network rules: scale arithmetic, provenance-aware fixes, the network_args generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config.inventory import load_network_modules
from lorac.lint.rules.network import literal_edit, scale_of
from lorac.trainers.kohya.network_args_gen import analyse_module, render
from tests.conftest import lorac, resolved, write_files

FLUX = '[profile]\nfamily = "flux1-dev"\n[network]\nnetwork_module = "networks.lora_flux"\n'


def _profile(project: Path, text: str, name: str = "p", **others: str):
    return resolved(project, text, name, **others).profile


def test_scale_uses_the_kohya_default_alpha_and_reports_effective_lr(project: Path) -> None:
    p = _profile(project, FLUX + "network_dim = 32\n[optimizer]\nlearning_rate = 1e-4\n"
                 "unet_lr = 2e-4\n")
    scale = scale_of(p)
    assert scale is not None and not scale.alpha_set
    assert scale.value == pytest.approx(1 / 32)
    text = scale.describe()
    assert "alpha/dim = 1 (default)/32 = 0.0312" in text
    assert "effective LR = 0.0001 × 0.0312 = 3.13e-06" in text
    assert "unet_lr 0.0002 → 6.25e-06" in text


def test_ai_toolkit_flux_default_alpha_is_the_rank(project: Path) -> None:
    p = _profile(project, FLUX.replace('[network]', 'backend = "ai-toolkit"\n[network]')
                 + "network_dim = 16\n")
    assert scale_of(p).value == 1.0


def test_literal_edit_refuses_references_and_targets_the_writing_file(project: Path) -> None:
    p = _profile(project, '[profile]\nextends = "base"\n[vars]\na = 4\n[network]\n'
                 'network_alpha = "${a}"\n', base=FLUX + "network_dim = 8\n")
    assert literal_edit(p, ("network", "network_alpha"), 8) is None
    edit = literal_edit(p, ("network", "network_dim"), 16)
    assert edit is not None and edit.path == "profiles/base.toml"


def test_alpha_in_a_parent_is_fixed_in_the_parent(project: Path) -> None:
    write_files(project, {
        "profiles/base.toml": FLUX + "network_dim = 32\nnetwork_alpha = 1\n",
        "profiles/child.toml": '[profile]\nextends = "base"\n[optimizer]\nlearning_rate = 1e-4\n',
    })
    _, out, _ = lorac("lint", "profiles")
    assert "profiles/base.toml:6:1: LRC103" in out and "(in profile child)" in out
    lorac("lint", "profiles", "--unsafe-fixes")
    assert "network_alpha = 32" in (project / "profiles/base.toml").read_text()
    assert "LRC103" not in lorac("lint", "profiles")[1]


def test_every_network_finding_states_the_scale(project: Path) -> None:
    write_files(project, {"profiles/p.toml": FLUX.replace("lora_flux", "lora")
                          + "network_dim = 8\nnetwork_alpha = 64\n"
                          "[optimizer]\nlearning_rate = 1e-4\n",
                          "profiles/q.toml": FLUX + "network_dim = 8\nnetwork_alpha = 8\n"
                          'network_args = ["train_block=all", "verbose=yes", "split_qkv"]\n'
                          "[optimizer]\nlearning_rate = 1e-4\n"})
    _, out, _ = lorac("lint", "profiles")
    lines = [line for line in out.splitlines() if ": LRC10" in line]
    codes = {line.split(": ")[1].split()[0] for line in lines}
    assert codes >= {"LRC102", "LRC105", "LRC106", "LRC107", "LRC108"}
    assert all("alpha/dim = " in line and "effective LR = " in line for line in lines), out


def test_generator_reads_kwargs_gets_helpers_and_true_bools(tmp_path: Path) -> None:
    module = tmp_path / "networks" / "lora_x.py"
    module.parent.mkdir()
    module.write_text(
        "def helper(nw_kwargs):\n"
        "    return nw_kwargs.get('down_lr_weight', None)\n"
        "def create_network(multiplier, network_dim, network_alpha, vae, te, unet, **kwargs):\n"
        "    if network_alpha is None:\n"
        "        network_alpha = 1.0\n"
        "    helper(kwargs)\n"
        "    split = kwargs.get('split_qkv', False)\n"
        "    if split is not None:\n"
        "        split = True if split == 'True' else False\n"
        "    other = {}.get('not_a_kwarg')\n", encoding="utf-8")
    facts = analyse_module(module)
    assert facts["args"] == {"down_lr_weight": 2, "split_qkv": 7}
    assert facts["bools"] == {"split_qkv": 9}
    assert (facts["alpha_default"], facts["alpha_default_line"]) == (1.0, 5)


def test_generator_rejects_a_module_without_create_network(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    pass\n", encoding="utf-8")
    with pytest.raises(ValueError, match="create_network"):
        analyse_module(module)


def test_shipped_network_modules_data() -> None:
    mods = load_network_modules()
    assert mods["networks.lora_flux"]["bools"].keys() == {"split_qkv", "train_t5xxl", "verbose"}
    assert "train_blocks" in mods["networks.lora_flux"]["args"]
    assert "down_lr_weight" in mods["networks.lora"]["args"]  # via parse_block_lr_kwargs
    # OFT's alpha is a constraint, not a scale: its default is 1e-3 (networks/oft.py)
    assert mods["lycoris.kohya"]["file"] == "lycoris/kohya.py"  # from kohya/lycoris.toml
    assert "factor" in mods["lycoris.kohya"]["args"]
    assert "use_tucker" in mods["lycoris.kohya"]["bools_str"]
    mods = {n: m for n, m in mods.items() if n.startswith("networks.")}
    assert {n: m["alpha_default"] for n, m in mods.items() if m["alpha_default"] != 1.0} == {
        "networks.oft": 0.001, "networks.oft_flux": 0.001}
    assert mods["networks.lokr"]["bools_lower"].keys() == {"train_llm_adapter", "use_tucker",
                                                           "verbose"}
    assert mods["networks.oft"]["bools_truthy"].keys() == {"enable_all_linear", "enable_conv"}
    assert mods["networks.lokr"]["types"]["factor"]["type"] == "int"
    assert mods["networks.lokr"]["defaults"]["factor"] == -1


def test_render_is_stable_toml(tmp_path: Path) -> None:
    import tomllib

    for name in ("lora", "lora_flux", "lora_sd3"):
        path = tmp_path / "networks" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text("def create_network(a, network_alpha, **kw):\n    kw.get('x')\n",
                        encoding="utf-8")
    text = render(tmp_path, "0" * 40)
    data = tomllib.loads(text)
    assert data["modules"]["networks.lora"]["args"] == {"x": 2}
    assert render(tmp_path, "0" * 40) == text
    assert "networks.loha" not in data["modules"]  # a module the checkout lacks is left out


def test_analyse_module_records_each_bool_parsing_types_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(
        "import ast\n"
        "def create_network(m, network_alpha, **kwargs):\n"
        "    exact = kwargs.get('exact', False)\n"
        "    exact = True if exact == 'True' else False\n"
        "    low = kwargs.get('low', 'false')\n"
        "    low = True if str(low).lower() == 'true' else False\n"
        "    truthy = kwargs.get('truthy', None)\n"
        "    truthy = bool(truthy)\n"
        "    factor = int(kwargs.get('factor', -1))\n"
        "    ratio = kwargs.get('ratio')\n"
        "    ratio = float(ratio)\n"
        "    pats = ast.literal_eval(kwargs.get('pats'))\n",
        encoding="utf-8")
    facts = analyse_module(path)
    assert facts["bools"] == {"exact": 4}
    assert facts["bools_lower"] == {"low": 6}
    assert facts["bools_truthy"] == {"truthy": 8}
    assert facts["types"] == {"factor": ("int", 9), "ratio": ("float", 11),
                              "pats": ("literal", 12)}
    assert facts["defaults"] == {"exact": False, "low": "false", "factor": -1}
