"""Fuzzing every reader with hypothesis (modest example counts: the file runs in well under a
minute on two cores).

Properties:

* every reader — profiles (``lorac lint``), kohya config TOMLs, kohya_ss GUI JSON, ai-toolkit
  YAML, shell command lines — either succeeds, returns diagnostics, or raises a one-line
  :class:`~lorac.core.diagnostics.LoracError` (exit 2); never another exception; and what ``import``
  writes is TOML that lorac reads back;
* ``build`` never emits an option the trainer's inventory rejects: every key of the emitted
  ``config.toml`` is an option of the entry script, of the option's type, within its choices;
* ``import`` ∘ ``build`` is the identity on the options of generated profiles (the fixed-shape
  version is ``tests/test_import_cli.py``; this one draws the options from the inventory).

``lint --fix`` idempotence on generated profiles is ``tests/test_fix_idempotent.py``.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import tomllib
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lorac.config.inventory import load_kohya_inventory
from lorac.config.profile import resolve
from lorac.core.diagnostics import LoracError
from lorac.importers import Settings, Source, read, render
from lorac.trainers.kohya.emitter import KohyaBackend
from tests.conftest import lorac
from tests.test_roundtrip_build import MANAGED, _write
from tests.test_roundtrip_build import profiles as typed_profiles

INV = load_kohya_inventory("flux_train_network.py")
OPTION_NAMES = sorted(n for n in INV.options if n not in MANAGED)
FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- building blocks

NASTY_TEXT = st.sampled_from([
    "", " ", "'", '"', "\\", "${", "${x}", "${env:A}", "${env:A:-d}", "$${", "$(id)", "`id`",
    "\n", "\r\n", "\t", "\x00", "\x1b[31m", "\u202e", "\ufeff", "☃", "😀", "#", "[", "]", "{",
    "}", "=", "--seed", "-", "a=b", "../../etc/passwd", "/dev/zero", "nan", "inf", "true", "1e999",
])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=16) | NASTY_TEXT
KEYS = st.sampled_from(OPTION_NAMES) | st.text(st.characters(blacklist_categories=("Cs",)),
                                                min_size=1, max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | TEXT)


def _json_values(scalars: st.SearchStrategy = SCALARS) -> st.SearchStrategy:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8)


def _toml_values() -> st.SearchStrategy:
    """Values TOML can hold (no null; keys are strings)."""

    scalars = (st.booleans() | st.integers(-(2**63), 2**63 - 1)
               | st.floats(allow_nan=True, allow_infinity=True) | TEXT.filter(
                   lambda s: "\x00" not in s))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(KEYS.filter(lambda k: "\x00" not in k), inner,
                                          max_size=3), max_leaves=8)


def _mutate(text: str, data: st.DataObject) -> str:
    """Cut, duplicate or splice junk into ``text`` (or leave it alone)."""

    how = data.draw(st.sampled_from(["keep", "truncate", "junk", "duplicate"]))
    if how == "keep" or not text:
        return text
    at = data.draw(st.integers(0, len(text)))
    if how == "truncate":
        return text[:at]
    if how == "junk":
        return text[:at] + data.draw(NASTY_TEXT | TEXT) + text[at:]
    return text[:at] + text


def _check_one_line(exc: LoracError) -> None:
    assert exc.message and "\n" not in exc.message, exc.message


def _import(text: str, name: str, kind: str, folder: Path) -> None:
    """Import ``text``: a draft whose rendering lorac reads back, or a one-line error."""

    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    source = Source(path, name, text)
    try:
        draft = read(source, kind, Settings())
        out = render(draft, schema_header=True)
    except LoracError as exc:
        _check_one_line(exc)
        return
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        return  # ``lorac import`` refuses this one (a lone surrogate) with a one-line error
    tomllib.loads(out)  # what import writes is TOML


def _no_crash(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 1, 2), (code, err)
    if code == 2:
        assert err.startswith("lorac: error: ") and err.count("\n") == 1, err


# --------------------------------------------------------------------------- profiles (lint)


@st.composite
def profile_texts(draw: st.DrawFn) -> str:
    """A profile: [profile] with a family, option sections with drawn keys and values (of any
    type, rendered as TOML), sometimes [vars] with references, then maybe mutated."""

    import tomlkit

    doc: dict[str, Any] = {"profile": {"family": draw(st.sampled_from(
        ["flux1-dev", "sdxl", "sd3", "sd15", "nope", ""]))}}
    if draw(st.booleans()):
        doc["profile"]["extends"] = draw(st.sampled_from(["base", "p", "../x", "", "a/b"]))
    for section in draw(st.lists(st.sampled_from(["network", "training", "optimizer", "model",
                                                  "dataset", "vars", "run", "junk"]),
                                 max_size=4, unique=True)):
        doc[section] = draw(st.dictionaries(KEYS.filter(lambda k: "\x00" not in k),
                                            _toml_values(), max_size=5))
    if draw(st.booleans()):
        doc.setdefault("vars", {})["r"] = draw(st.integers(1, 64) | TEXT.filter(
            lambda s: "\x00" not in s))
        doc.setdefault("network", {})["network_dim"] = draw(st.sampled_from(
            ["${r}", "${env:R:-8}", "${r}${r}", "${missing}", "${", "$${r}"]))
    try:
        text = tomlkit.dumps(doc)
    except Exception:  # tomlkit refuses some drawn values; lorac reads text, not objects
        text = json.dumps(doc)
    data = draw(st.data())
    return _mutate(text, data)


@FAST
@given(text=profile_texts(), base=st.booleans())
def test_lint_any_profile(text: str, base: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        folder = Path("profiles")
        folder.mkdir()
        (folder / "p.toml").write_text(text, encoding="utf-8")
        if base:
            (folder / "base.toml").write_text('[profile]\nfamily = "flux1-dev"\n'
                                              '[network]\nnetwork_dim = 4\n', encoding="utf-8")
        _no_crash(*lorac("lint", "profiles"))
        _no_crash(*lorac("build", "p", "-o", "out"))


# --------------------------------------------------------------------------- importers


@FAST
@given(items=st.dictionaries(KEYS.filter(lambda k: "\x00" not in k), _toml_values(),
                             max_size=8),
       sectioned=st.booleans(), data=st.data())
def test_kohya_toml_reader(items: dict, sectioned: bool, data: st.DataObject) -> None:
    import tomlkit

    doc = {"model": items} if sectioned else items
    try:
        text = tomlkit.dumps(doc)
    except Exception:
        text = json.dumps(doc, default=str)
    with tempfile.TemporaryDirectory() as tmp:
        _import(_mutate(text, data), "config.toml", "kohya-toml", Path(tmp))


GUI_KEYS = st.sampled_from(["LoRA_type", "network_dim", "network_alpha", "learning_rate",
                            "epoch", "max_train_steps", "optimizer", "optimizer_args",
                            "network_args", "additional_parameters", "sdxl", "flux1_checkbox",
                            "sd3_checkbox", "train_data_dir", "output_name", "seed",
                            "mixed_precision", "lr_scheduler", "resolution", "caption_extension",
                            "save_every_n_epochs", "text_encoder_lr", "unet_lr"]) | KEYS


@FAST
@given(preset=st.dictionaries(GUI_KEYS, _json_values(), max_size=10), data=st.data())
def test_gui_json_reader(preset: dict, data: st.DataObject) -> None:
    text = json.dumps(preset)  # NaN and Infinity, when drawn, are not JSON: a one-line error
    with tempfile.TemporaryDirectory() as tmp:
        _import(_mutate(text, data), "preset.json", "kohya-gui", Path(tmp))


@st.composite
def ai_toolkit_jobs(draw: st.DrawFn) -> Any:
    process = {
        "type": draw(st.sampled_from(["sd_trainer", "x", 5])),
        "network": draw(st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(["lora", "lokr", 1]), "linear": _json_values(),
            "linear_alpha": _json_values()})),
        "train": draw(st.fixed_dictionaries({}, optional={
            "lr": _json_values(), "steps": _json_values(), "batch_size": _json_values(),
            "optimizer": _json_values(), "gradient_checkpointing": _json_values(),
            "noise_scheduler": _json_values(), "dtype": _json_values()})),
        "model": draw(st.fixed_dictionaries({}, optional={
            "name_or_path": _json_values(), "is_flux": _json_values(),
            "arch": st.sampled_from(["sd3", "flux", "sdxl", "?"])})),
        "datasets": draw(st.lists(st.dictionaries(st.sampled_from(
            ["folder_path", "caption_ext", "resolution", "shuffle_tokens", "cache_latents"])
            | KEYS, _json_values(), max_size=4), max_size=2) | _json_values()),
    }
    extra = draw(st.dictionaries(KEYS, _json_values(), max_size=3))
    return draw(st.sampled_from([
        {"job": "extension", "config": {"name": "j", "process": [{**process, **extra}]}},
        {"config": {"process": [process, extra]}},
        {"config": extra},
        [process],
    ]))


@FAST
@given(job=ai_toolkit_jobs(), data=st.data())
def test_ai_toolkit_yaml_reader(job: Any, data: st.DataObject) -> None:
    import yaml

    text = yaml.safe_dump(job, allow_unicode=data.draw(st.booleans()))
    with tempfile.TemporaryDirectory() as tmp:
        _import(_mutate(text, data), "job.yaml", "ai-toolkit", Path(tmp))


SHELL_TOKENS = st.sampled_from([
    "accelerate launch", "python", "flux_train_network.py", "sdxl_train_network.py",
    "--seed", "--network_dim", "--learning_rate", "--output_name", "--network_args",
    "--optimizer_args", "--dataset_config", "--config_file", "--gradient_checkpointing",
    "--mixed_precision", "bf16", "1", "1e-4", "x y", "'q'", '"dq $A"', "$A", "${A}",
    "${A:-8}", "${A:=x}", "$(date)", "`id`", "$((1+2))", "\\\n", "\n", ";", "&&", "|", "&",
    "eval", "export A=4", "A=$B", "source env.sh", ". ./x", "<<EOF\nx\nEOF\n", "'", '"', "(",
    ")", "{", "}", "${", "$(", "#", "# c\n", "--", "--seed=", "--=", "\t", "\x00", "☃",
    "for i in 1 2; do", "done", "if true; then", "fi", "f() {", "ARGS=(a b)", '"${ARGS[@]}"',
])


@FAST
@given(tokens=st.lists(SHELL_TOKENS | TEXT, min_size=1, max_size=25), data=st.data())
def test_shell_reader(tokens: list[str], data: st.DataObject) -> None:
    text = " ".join(tokens)
    if data.draw(st.booleans()):
        text = "accelerate launch flux_train_network.py " + text
    with tempfile.TemporaryDirectory() as tmp:
        _import(_mutate(text, data), "train.sh", "shell", Path(tmp))


# --------------------------------------------------------------------------- build vs inventory


def _fits(opt: Any, value: Any) -> bool:
    """Would sd-scripts accept ``value`` for ``opt`` from a config file (argparse types)?"""

    if isinstance(value, list):
        if not (opt.is_list or opt.nargs in ("*", "+") or isinstance(opt.nargs, int)):
            return False
        return all(_scalar_fits(opt, v) for v in value)
    if opt.is_list and not opt.is_flag:
        return False
    return _scalar_fits(opt, value)


def _scalar_fits(opt: Any, value: Any) -> bool:
    if opt.is_flag:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return opt.type == "bool"
    if opt.choices and value not in opt.choices:
        return False
    kind = opt.type
    if kind == "int":
        return isinstance(value, int)
    if kind == "float" or kind.endswith("int_or_float"):
        return isinstance(value, (int, float))
    if kind in ("str", "path"):
        return isinstance(value, str)
    return True  # custom callables: the inventory does not say


@st.composite
def loose_profiles(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """Inventory option names with values of any type (most are wrong)."""

    names = draw(st.lists(st.sampled_from(OPTION_NAMES), max_size=8, unique=True))
    section = draw(st.sampled_from(["model", "network", "training"]))
    return {section: {n: draw(st.booleans() | st.integers(-5, 2**40) | st.floats(
        allow_nan=False, allow_infinity=False) | st.text(max_size=5)
        | st.lists(st.integers(0, 9) | st.text(max_size=3), max_size=2)) for n in names}}


@FAST
@given(sections=typed_profiles() | loose_profiles())
def test_build_emits_only_what_the_inventory_accepts(sections: dict) -> None:
    from lorac.core.diagnostics import Severity
    from lorac.lint.driver import check_profile

    with tempfile.TemporaryDirectory() as tmp:
        res = resolve(_write(Path(tmp), sections), env={})
        diags = check_profile(res)
        if res.profile is None or any(d.severity >= Severity.ERROR for d in diags):
            return  # build stops here ("nothing was built")
        art = KohyaBackend().emit(res.profile, "toml")
        if any(d.severity >= Severity.ERROR for d in art.diagnostics):
            return
        emitted = tomllib.loads(art.files["config.toml"])
        for table in emitted.values():
            for key, value in (table.items() if isinstance(table, dict) else ()):
                opt = INV.options.get(key)
                assert opt is not None, f"{key} is not an option of flux_train_network.py"
                assert _fits(opt, value), f"{key} = {value!r} does not fit {opt.type}"
                if isinstance(value, float):
                    assert math.isfinite(value), f"{key} = {value!r}"


# --------------------------------------------------------------------------- import ∘ build


@FAST
@given(sections=typed_profiles())
@example(sections={"model": {"ae": "00000000", "wandb_api_key": "00000000"}})
def test_import_of_built_config_gives_the_same_options(sections: dict) -> None:
    from lorac.core.diagnostics import Severity
    from lorac.lint.driver import check_profile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        res = resolve(_write(root, sections), env={})
        if res.profile is None or any(d.severity >= Severity.ERROR
                                      for d in check_profile(res)):
            return
        art = KohyaBackend().emit(res.profile, "toml")
        if any(d.severity >= Severity.ERROR for d in art.diagnostics):
            return
        config = root / "config.toml"
        config.write_text(art.files["config.toml"], encoding="utf-8")
        draft = read(Source(config, "config.toml", art.files["config.toml"]), "kohya-toml",
                     Settings(family="flux1-dev"))
        back_path = root / "profiles" / "back.toml"
        back_path.write_text(render(draft, schema_header=True), encoding="utf-8")
        back = resolve(back_path, env={}).profile
        assert back is not None
        got = {k: v for k, (v, _) in back.options().items()}
        withheld = {k for k, v in art.options.items() if _credential(k, v)}
        # an option that writes out a credential's value is withheld too, whatever its name
        secrets = [v for k, v in art.options.items() if k in withheld and len(v) >= 8]
        withheld |= {k for k, v in art.options.items()
                     if any(s in text for s in secrets for text in _texts(v))}
        assert {k: v for k, v in got.items() if k not in withheld} == {
            k: v for k, v in art.options.items() if k not in withheld}
        for key in withheld:  # never copied: an ${env:…} reference instead
            assert str(got.get(key)).startswith("${env:"), (key, got.get(key))


def _texts(value: Any) -> list[str]:
    """The strings ``value`` writes out (itself, or the items of a list)."""

    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _credential(name: str, value: Any) -> bool:
    """Import withholds these (``lorac.importers.withhold_secrets``)."""

    from lorac.core.secrets import looks_secret_name, scan

    return isinstance(value, str) and bool(value) and (
        looks_secret_name(name) or any(not s.name for s in scan(value)))
