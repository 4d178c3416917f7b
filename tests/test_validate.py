"""The schema and lorac's own draft-4 evaluator, checked against jsonschema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorac.config import schema_gen
from lorac.config.validate import SCHEMA_PATH, Evaluator, load_schema, schema_errors


def test_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_gen.render(schema_gen.generate()), \
        "lorac/schema/profile.schema.json is stale: run `python -m lorac.config.schema_gen`"


def test_schema_is_valid_draft4_and_draft7() -> None:
    schema = load_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"


def test_schema_knows_every_flux_option() -> None:
    from lorac.config.inventory import load_kohya_inventory

    props = load_schema()["definitions"]["trainer_section"]["properties"]
    missing = set(load_kohya_inventory("flux_train_network.py").options) - set(props)
    assert not missing


def test_errors_are_all_reported_with_paths_and_suggestions() -> None:
    errs = schema_errors({
        "profile": {"family": "flux1-dv", "gpu": 24},
        "network": {"netwrok_alpha": 3, "network_dim": "32", "network_args": "a=b"},
        "dataset": {"subsets": [{"image_dir": "x", "num_repeats": 1.5}]},
    })
    by_path = {e.path: e for e in errs}
    assert by_path[("profile", "family")].suggestion == "flux1-dev"
    assert by_path[("network", "netwrok_alpha")].suggestion == "network_alpha"
    assert by_path[("network", "network_dim")].keyword == "type"
    assert by_path[("network", "network_args")].keyword == "type"
    assert by_path[("dataset", "subsets", 0, "num_repeats")].keyword == "type"
    gpu = by_path[("profile", "gpu")]
    assert "must be a string" in gpu.message  # best alternative of the anyOf, not both
    assert len(errs) == 6
    for e in errs:
        assert "is not valid under" not in e.message  # our own sentences


def _data_strategy() -> st.SearchStrategy:
    schema = load_schema()
    props = schema["definitions"]["trainer_section"]["properties"]
    names = sorted(props)[:80] + ["netwrok_alpha", "bogus"]
    scalar = st.one_of(st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.booleans(),
                       st.sampled_from(["", "x", "AdamW", "networks.lora_flux", "24GB"]))
    value = st.one_of(scalar, st.lists(scalar, max_size=3))
    section = st.dictionaries(st.sampled_from(names), value, max_size=5)
    own = st.fixed_dictionaries({}, optional={
        "profile": st.dictionaries(st.sampled_from(["family", "gpu", "extends", "famly",
                                                    "trigger"]), value, max_size=3),
        "run": st.dictionaries(st.sampled_from(["gpus", "num_machines", "env", "x"]), value,
                               max_size=2),
        "dataset": st.dictionaries(st.sampled_from(["resolution", "batch_size", "subsets",
                                                    "flip_aug"]),
                                   st.one_of(value, st.lists(st.dictionaries(
                                       st.sampled_from(["image_dir", "num_repeats", "zz"]),
                                       value, max_size=2), max_size=2)), max_size=3),
    })
    return st.tuples(own, st.dictionaries(st.sampled_from(["network", "training"]), section,
                                          max_size=2)).map(lambda t: {**t[0], **t[1]})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_data_strategy())
def test_evaluator_agrees_with_jsonschema(data: dict) -> None:
    schema = load_schema()
    reference = jsonschema.Draft4Validator(schema)
    ours = schema_errors(data)
    theirs = list(reference.iter_errors(json.loads(json.dumps(data))))
    assert bool(ours) == bool(theirs), (ours, [e.message for e in theirs])


def test_evaluator_refuses_keywords_it_does_not_evaluate() -> None:
    Evaluator(load_schema())  # the shipped schema uses only supported keywords
    for schema in ({"propertyNames": {"pattern": "^a"}},
                   {"type": "object", "properties": {}, "propertyNames": {"pattern": "^a"}},
                   {"definitions": {}, "dependencies": {"a": ["b"]}}):
        with pytest.raises(ValueError, match="not supported"):
            Evaluator(schema)


_RUN_PROFILE = ('[profile]\nfamily = "flux1-dev"\n[network]\nnetwork_module = '
                '"networks.lora_flux"\nnetwork_dim = 4\nnetwork_alpha = 4\n')


@pytest.mark.parametrize(("run", "line", "message"), [
    ('[run]\ngpus = "abc"\n', 8, "run.gpus must be an integer, not a string ('abc')"),
    ("[run]\ngpus = inf\n", 8, "run.gpus is inf, not a finite number"),
    ("[[run]]\ngpus = 1\n", 7, "run must be a table, not a list"),
    ("[run]\naccelerate_args = 5\n", 8, "run.accelerate_args must be a list, not an integer"),
    ("[run]\nenv = 5\n", 8, "run.env must be a table, not an integer"),
    ('[run]\nenv = { A = 1 }\n', 8, "run.env.A must be a string, not an integer"),
    ("[run]\nruns_dir = 5\n", 8, "run.runs_dir must be a string, not an integer"),
    ('[run]\nmachine_rank = "x1"\n', 8, "run.machine_rank is 'x1', which is not of the form"),
])
def test_run_section_is_typed_by_the_schema(tmp_path: Path, run: str, line: int,
                                            message: str) -> None:
    from lorac.config.validate import run_section
    from lorac.core.diagnostics import LoracError
    from lorac.lint.driver import check_profile
    from tests.conftest import resolved

    res = resolved(tmp_path, _RUN_PROFILE + run)
    found = [d for d in check_profile(res) if d.key_path[:1] == ("run",)]
    assert found and found[0].code == "LRC005" and found[0].line == line, found
    assert message in found[0].message
    with pytest.raises(LoracError) as exc:
        run_section(res.profile)
    assert exc.value.exit_code == 2
    assert exc.value.message.startswith(f"{res.profile.path}:{line}:")
    assert message in exc.value.message and "\n" not in exc.value.message


def test_run_section_returns_the_checked_table(tmp_path: Path) -> None:
    from lorac.config.validate import run_section
    from lorac.core.diagnostics import LoracError
    from tests.conftest import resolved

    ok = resolved(tmp_path, _RUN_PROFILE + '[run]\ngpus = 2\nmachine_rank = "${env:R:-0}"\n')
    assert run_section(ok.profile) == {"gpus": 2, "machine_rank": "0"}
    assert run_section(resolved(tmp_path, _RUN_PROFILE).profile) == {}
    two = resolved(tmp_path, _RUN_PROFILE + '[run]\ngpus = "a"\nnum_machines = "b"\n')
    with pytest.raises(LoracError, match=r"run\.gpus .*\(and 1 more: lorac lint lists them\)"):
        run_section(two.profile)
