"""The committed backend inventories load, agree with the pins, and know the options lorac uses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.config import inventory
from lorac.trainers.inventory_gen import KOHYA_SCRIPTS

FLUX_OPTIONS = {
    # dest: (type, action)
    "network_dim": ("int", "store"),
    "network_alpha": ("float", "store"),
    "network_module": ("str", "store"),
    "learning_rate": ("float", "store"),
    "blocks_to_swap": ("int", "store"),
    "fp8_base": ("bool", "store_true"),
    "t5xxl": ("str", "store"),
    "ae": ("str", "store"),
    "clip_l": ("str", "store"),
    "guidance_scale": ("float", "store"),
    "max_train_steps": ("int", "store"),
    "noise_offset": ("float", "store"),
    "dataset_config": ("path", "store"),
    "gradient_checkpointing": ("bool", "store_true"),
}


def test_backends_dir_holds_the_pins() -> None:
    assert (inventory.backends_dir() / "kohya" / "pin.toml").is_file()
    assert (inventory.backends_dir() / "ai-toolkit" / "pin.toml").is_file()


@pytest.mark.parametrize("backend", ["kohya", "ai-toolkit"])
def test_pin_is_well_formed(backend: str) -> None:
    pin = inventory.load_pin(backend)
    assert len(pin.commit) == 40 and int(pin.commit, 16) >= 0
    assert pin.repository.startswith("https://github.com/")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d(T[0-9:+-]+)?", pin.date), pin.date


@pytest.mark.parametrize("script", KOHYA_SCRIPTS)
def test_kohya_inventory_matches_pin(script: str) -> None:
    inv = inventory.load_kohya_inventory(script)
    assert inv.script == script
    assert inv.commit == inventory.load_pin("kohya").commit, (
        f"{script} inventory is from {inv.commit}; regenerate it for the pinned commit"
    )
    # the LECO scripts have no dataset options: about 120 against the LoRA scripts' 190-230
    assert len(inv.options) > (100 if "leco" in script else 150)


def test_dataset_schema_and_ai_toolkit_match_pins() -> None:
    assert inventory.load_dataset_schema().commit == inventory.load_pin("kohya").commit
    keys = inventory.load_ai_toolkit_keys()
    assert keys.commit == inventory.load_pin("ai-toolkit").commit
    facts = json.loads((inventory.backends_dir() / "ai-toolkit/facts.json").read_text())
    assert facts["source"]["commit"] == inventory.load_pin("ai-toolkit").commit


@pytest.mark.parametrize(("dest", "expected"), sorted(FLUX_OPTIONS.items()))
def test_flux_knows_option(dest: str, expected: tuple[str, str]) -> None:
    option = inventory.load_kohya_inventory("flux_train_network.py").get(dest)
    assert option is not None, dest
    assert (option.type, option.action) == expected
    assert option.flags == (f"--{dest}",)
    assert option.path and option.line and option.line > 0


def test_option_details() -> None:
    inv = inventory.load_kohya_inventory("flux_train_network")
    assert inv.get("network_args").nargs == "*"
    assert inv.get("network_args").is_list
    assert inv.get("fp8_base").is_flag and inv.get("fp8_base").default is False
    assert inv.get("--network_dim") is inv.get("network_dim")
    assert "mixed_precision" in inv and "no_such_option" not in inv
    assert set(inv.get("mixed_precision").choices) >= {"no", "fp16", "bf16"}
    assert inv.get("network_alpha").location.startswith("train_network.py:")


def test_flux_only_options_are_absent_from_sdxl() -> None:
    sdxl = inventory.load_kohya_inventory("sdxl_train_network.py")
    assert sdxl.get("t5xxl") is None and sdxl.get("network_dim") is not None


def test_closest_suggests_the_real_name() -> None:
    inv = inventory.load_kohya_inventory("flux_train_network.py")
    assert inv.closest("netwrok_alpha")[0] == "network_alpha"
    assert inv.closest("--learning_rat")[0] == "learning_rate"


def test_dataset_schema_types() -> None:
    schema = inventory.load_dataset_schema()
    subset = schema.keys("subset", "dreambooth")
    assert subset["image_dir"].required and subset["num_repeats"].type == "int"
    assert schema.keys("subset", "fine_tuning")["metadata_file"].required
    assert schema.keys("subset", "controlnet")["conditioning_data_dir"].required
    general = schema.keys("general")
    assert general["caption_dropout_rate"].type == "Any(float, int)"
    assert general["resolution"].accepts == ("int", "[int, int]")
    # voluptuous: a bare float rejects an integer; int lets a bool through
    assert general["network_multiplier"].accepts_value(1) is False
    assert general["network_multiplier"].accepts_value(1.0) is True
    assert general["num_repeats"].accepts_value(True) is True
    assert schema.closest("num_repeat", "subset")[0] == "num_repeats"


def test_ai_toolkit_keys_and_facts() -> None:
    keys = inventory.load_ai_toolkit_keys()
    alpha = keys.get("NetworkConfig", "alpha")
    assert alpha is not None and alpha.default == 1.0 and alpha.type == "float"
    linear_alpha = keys.get("NetworkConfig", "linear_alpha")
    assert linear_alpha is not None and linear_alpha.default_from == "alpha"
    assert keys.closest("TrainConfig", "gradient_checkpoint")[0] == "gradient_checkpointing"
    facts = inventory.load_ai_toolkit_facts()
    assert "flux" in facts["peft-alpha-equals-rank"].applies_to
    assert facts["peft-alpha-equals-rank"].location.startswith("toolkit/lora_special.py:")


def test_families_point_at_inventoried_scripts() -> None:
    families = inventory.load_families()
    assert families["flux1-dev"].script == "flux_train_network.py"
    assert families["sd15"].network_modules == ("networks.lora",)
    scripts = set(inventory.kohya_scripts())
    modules = inventory.load_network_modules()
    for family in families.values():
        assert family.script in scripts
        assert len(family.evidence) == len(family.network_modules)
        for module, evidence in zip(family.network_modules, family.evidence, strict=True):
            facts = modules[module]  # every family module is generated at the default pin
            assert evidence == f"{facts['file']}:{facts['create_network']}", (family, module)
    assert {"chroma", "lumina", "hunyuan-image", "anima"} <= set(families)


def test_override_dir_wins_and_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = inventory.backends_dir() / "kohya" / "inventory" / "train_network.json"
    data = json.loads(src.read_text())
    data["source"]["commit"] = "0" * 40
    target = tmp_path / "kohya" / "inventory" / "train_network.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(data))
    assert inventory.load_kohya_inventory("train_network.py", root=tmp_path).commit == "0" * 40
    shipped = inventory.load_pin("kohya")
    monkeypatch.setenv(inventory.ENV_VAR, str(tmp_path))
    assert inventory.load_kohya_inventory("train_network.py").commit == "0" * 40
    # files absent from the override come from the shipped copy
    assert inventory.load_pin("kohya") == shipped
    assert inventory._resolve("kohya/pin.toml", None) == (
        inventory.backends_dir() / "kohya/pin.toml")
    monkeypatch.delenv(inventory.ENV_VAR)
    assert inventory.load_kohya_inventory("train_network.py").commit != "0" * 40


def test_partial_override_adds_scripts_and_hides_none(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = inventory.kohya_scripts()
    src = inventory.backends_dir() / "kohya" / "inventory" / "flux_train_network.json"
    folder = tmp_path / "kohya" / "inventory"
    folder.mkdir(parents=True)
    (folder / "flux_train_network.json").write_text(src.read_text())
    (folder / "my_train_network.json").write_text(src.read_text())
    scripts = inventory.kohya_scripts(root=tmp_path)
    assert scripts == sorted([*shipped, "my_train_network.py"])
    assert inventory.load_kohya_inventory("train_network.py", root=tmp_path).options


def test_families_follow_the_override_set_later(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert "my-family" not in inventory.load_families()
    (tmp_path / "kohya").mkdir()
    (tmp_path / "kohya" / "families.toml").write_text(
        '[families.my-family]\nscript = "train_network.py"\nnetwork_modules = []\n')
    monkeypatch.setenv(inventory.ENV_VAR, str(tmp_path))
    assert inventory.load_families()["my-family"].script == "train_network.py"
    assert inventory.family_script("my-family") == "train_network.py"
    monkeypatch.delenv(inventory.ENV_VAR)
    assert "my-family" not in inventory.load_families()


def test_loader_imports_only_stdlib() -> None:
    code = (
        "import sys, lorac.config.inventory as m; "
        "bad = {'tomlkit', 'jsonschema', 'click', 'pluggy', 'yaml', 'rich'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_generator_cli_rejects_missing_checkout(tmp_path: Path) -> None:
    from lorac.trainers.inventory_gen import main

    assert main(["ai-toolkit", "--from", str(tmp_path), "--out", str(tmp_path / "out")]) == 2


def test_ai_toolkit_generator_is_pure_ast(tmp_path: Path) -> None:
    """The ai-toolkit key reader is pure ast: run it on a tiny fake checkout."""
    checkout = tmp_path / "tk"
    (checkout / "toolkit").mkdir(parents=True)
    (checkout / "toolkit" / "config_modules.py").write_text(
        "class NetworkConfig:\n"
        "    def __init__(self, **kwargs):\n"
        "        self.alpha: float = kwargs.get('alpha', 1.0)\n"
        "        self.linear_alpha = kwargs.get('linear_alpha', self.alpha)\n"
    )
    from lorac.trainers.inventory_gen import ai_toolkit_config_keys

    classes = ai_toolkit_config_keys(checkout)
    keys = classes["NetworkConfig"]["keys"]
    assert keys["alpha"]["default"] == 1.0 and keys["alpha"]["line"] == 3
    assert keys["linear_alpha"]["default_from"] == "alpha"


def test_checkout_commit_reads_the_checkout_not_an_enclosing_repository(tmp_path: Path) -> None:
    """checkout_commit goes through trainer.commit_of: a marker file, else the checkout's own
    .git; a plain folder inside some other repository has no commit of its own."""
    from lorac.trainers.inventory_gen import InventoryError, checkout_commit

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert checkout_commit(tmp_path) == head
    inner = tmp_path / "vendored"
    inner.mkdir()
    with pytest.raises(InventoryError, match="cannot tell its commit"):
        checkout_commit(inner)
    (inner / ".lorac-commit").write_text("a" * 40 + "\n")
    assert checkout_commit(inner) == "a" * 40
    (inner / ".lorac-commit").write_text("main\n")
    with pytest.raises(InventoryError, match="not a 40-hex commit"):
        checkout_commit(inner)
