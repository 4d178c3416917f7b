"""The inventory rules (LRC601–LRC607) beyond their case files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorac.config.inventory import kohya_options, kohya_scripts, load_kohya_inventory
from lorac.trainers.kohya.rules.options import RULES
from tests.conftest import lorac, write_files


def test_option_specs_agree_across_scripts() -> None:
    """option_spec() falls back to any script for a profile without family: sound only while
    an option means the same in every script. A family's script may offer more choices than
    another (lumina's timestep_sampling adds nextdit_shift), never other types."""

    seen: dict[str, tuple] = {}
    choices: dict[str, set] = {}
    for script in kohya_scripts():
        for name, opt in load_kohya_inventory(script).options.items():
            spec = (opt.type, opt.action, opt.nargs, opt.choices is None)
            assert seen.setdefault(name, spec) == spec, (script, name)
            if opt.choices is not None:
                mine, other = set(opt.choices), choices.setdefault(name, set(opt.choices))
                assert mine <= other or other <= mine, (script, name)
    assert choices["timestep_sampling"] >= {"sigma", "uniform", "sigmoid", "shift", "flux_shift"}


def test_kohya_options_is_the_first_wins_union_of_the_scripts() -> None:
    union: dict[str, object] = {}
    choices: dict[str, set] = {}
    for script in kohya_scripts():
        for name, opt in load_kohya_inventory(script).options.items():
            union.setdefault(name, opt)
            choices.setdefault(name, set()).update(opt.choices or ())
    assert {n: o._replace(choices=None) for n, o in kohya_options().items()} == {
        n: o._replace(choices=None) for n, o in union.items()}  # type: ignore[attr-defined]
    assert {n: set(o.choices or ()) for n, o in kohya_options().items()} == choices
    assert "nextdit_shift" in kohya_options()["timestep_sampling"].choices
    assert kohya_options() is kohya_options()  # cached: the lint path asks once per option


def test_rules_have_distinct_codes_in_the_600_range() -> None:
    codes = [r.code for r in RULES]
    assert codes == [f"LRC60{i}" for i in range(1, 8)]


def test_values_from_variables_are_reported_but_not_rewritten(project: Path) -> None:
    write_files(project, {"profiles/p.toml": '[profile]\nfamily = "flux1-dev"\n[vars]\n'
                          'res = 1024\n[training]\nresolution = "${res}"\n'})
    code, out, _ = lorac("lint", "profiles/p.toml", "--format", "json")
    found = [d for d in json.loads(out) if d["code"] == "LRC602"]
    assert code == 1 and len(found) == 1 and found[0]["fix"] == []
    assert found[0]["line"] == 6


def test_unsafe_fix_splits_a_list_option_like_a_shell(project: Path) -> None:
    write_files(project, {"profiles/p.toml": '[profile]\nfamily = "flux1-dev"\n[network]\n'
                          "network_args = \"a=1 'b=2 3'\"\n"})
    lorac("lint", "profiles/p.toml", "--fix")
    assert "network_args = \"a=1" in (project / "profiles/p.toml").read_text()
    lorac("lint", "profiles/p.toml", "--unsafe-fixes")
    text = (project / "profiles/p.toml").read_text()
    assert 'network_args = ["a=1", "b=2 3"]' in text
    _, out, _ = lorac("lint", "profiles/p.toml")
    assert "LRC604" not in out


def test_no_family_is_said_once(project: Path) -> None:
    write_files(project, {"profiles/p.toml": "[training]\nseed = 1\nmax_train_steps = 2\n"})
    _, out, _ = lorac("lint", "profiles/p.toml", "--format", "json")
    found = [d for d in json.loads(out) if d["code"] == "LRC601"]
    assert len(found) == 1 and found[0]["severity"] == "info"


@pytest.mark.parametrize("module", ["library.train_util", "library.args"])
def test_int_or_float_is_known_under_either_home(module: str) -> None:
    """v0.11.0 moved the argument definitions from library/train_util.py to library/args.py,
    and with them the qualified name of ``int_or_float``."""
    from lorac.trainers.kohya.rules.options import converted, scalar_ok

    type_name = f"{module}.add_optimizer_arguments.<locals>.int_or_float"
    assert scalar_ok(type_name, 0.1) is True
    assert scalar_ok(type_name, "0.1") is False
    assert converted(type_name, "100") == 100
