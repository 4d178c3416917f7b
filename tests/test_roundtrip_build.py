"""Round trips of the kohya emitter, for generated profiles (hypothesis).

* ``config.toml`` read the way sd-scripts reads it equals ``Artifacts.options``;
* ``train.sh``, run with a fake ``accelerate`` that records its argv, runs exactly
  ``Artifacts.argv`` (placeholders substituted), whatever the strings hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import tomllib
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lorac.config.inventory import load_kohya_inventory
from lorac.config.profile import resolve
from lorac.trainers.kohya.emitter import KohyaBackend, launch_argv
from lorac.trainers.kohya.emitter import dump_toml as _dump

INV = load_kohya_inventory("flux_train_network.py")
MANAGED = {"config_file", "output_config", "dataset_config"}
HOSTILE = ["", " ", "it's", 'say "hi"', "$(touch /tmp/pwned)", "`id`", "a\nb", "tab\there",
           "naïve ☃", "\\", "--not-an-option", "-1", "${HOME}", "*", "a=b c=d", "\r\n", "#x"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=20) | st.sampled_from(HOSTILE)


def read_config_like_sd_scripts(text: str) -> dict[str, Any]:
    """library/args.py:1178-1193: toml.load, then every section flattened into one
    dict, values unconverted (a top-level non-table value is kept as it is)."""

    flat: dict[str, Any] = {}
    for section, table in tomllib.loads(text).items():
        if not isinstance(table, dict):
            flat[section] = table
            continue
        for key, value in table.items():
            flat[key] = value
    return flat


def _value(opt: Any) -> st.SearchStrategy:
    if opt.is_flag:
        return st.booleans()
    if opt.choices:
        base: st.SearchStrategy = st.sampled_from([c for c in opt.choices if c is not None])
    elif opt.type == "int":
        base = st.integers(-(2**31), 2**31)
    elif opt.type == "float":
        base = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000)
    elif opt.type in ("str", "path"):
        base = TEXT
    else:
        base = st.integers(0, 1000) | st.floats(0.001, 0.999)
    if opt.is_list:
        return st.lists(base, max_size=3)
    return base


OPTIONS = sorted(n for n, o in INV.options.items()
                 if n not in MANAGED and (o.type in ("int", "float", "str", "path", "bool")
                                          or o.is_flag or "int_or_float" in o.type))


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(OPTIONS), max_size=12, unique=True))
    sections: dict[str, dict[str, Any]] = {}
    for name in names:
        section = draw(st.sampled_from(["model", "network", "training"]))
        sections.setdefault(section, {})[name] = draw(_value(INV.options[name]))
    return sections


def _write(root: Path, sections: dict[str, dict[str, Any]]) -> Path:
    path = root / "profiles" / "p.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"profile": {"family": "flux1-dev"}, **sections}
    # written with the emitter's own TOML writer; a value holding "${" would be interpolated
    # by lorac, so such strings are escaped as "$${"
    path.write_text(_dump(_escape(body)), encoding="utf-8")
    return path


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    return value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles())
def test_config_toml_reads_back_as_the_options(sections: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        res = resolve(_write(Path(tmp), sections), env={})
        assert res.profile is not None
        art = KohyaBackend().emit(res.profile, "toml")
        assert read_config_like_sd_scripts(art.files["config.toml"]) == art.options
        expected = {k: v for table in sections.values() for k, v in table.items()}
        assert art.options.keys() == expected.keys()


FAKE = "#!/usr/bin/env python3\nimport json, os, sys\n" \
       "json.dump(sys.argv[1:], open(os.environ['ARGV_OUT'], 'w'))\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles(), TEXT)
@example({}, "/")
def test_train_sh_runs_exactly_the_argv(sections: dict, checkout: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        res = resolve(_write(root, sections), env={})
        assert res.profile is not None
        art = KohyaBackend().emit(res.profile, "cli")
        build = root / "bu'ild $x"
        build.mkdir()
        for name, text in art.files.items():
            (build / name).write_text(text, encoding="utf-8")
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "accelerate").write_text(FAKE)
        (bin_dir / "accelerate").chmod(0o755)
        sd = "/opt/" + (checkout.replace("\n", "_").replace("\r", "_") or "sd")
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "LORAC_SD_SCRIPTS": sd, "ARGV_OUT": str(root / "argv.json")}
        subprocess.run(["bash", str(build / "train.sh")], check=True, env=env, cwd=root)
        got = ["accelerate", *json.loads((root / "argv.json").read_text(encoding="utf-8"))]
        want = launch_argv(art.argv, sd, build.resolve())
        # the shell joins "$LORAC_SD_SCRIPTS/<script>" as text, lorac as a path: with a
        # checkout of "/" that is "/opt///x.py" against "/opt/x.py", the same file
        script = next(i for i, a in enumerate(want) if a.endswith("train_network.py"))
        assert os.path.normpath(got[script]) == os.path.normpath(want[script])
        assert got[:script] + got[script + 1:] == want[:script] + want[script + 1:]
