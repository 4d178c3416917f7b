"""Every rule's case file (tests/rules/cases/<CODE>-<name>.toml), run by one test.

A case writes its ``files`` into a fresh project directory, lints ``lint`` (default
``profiles``) — or runs ``command`` (a list of arguments) for rules that another command
reports — and compares the text-format lines of the rule's code with ``expect``
(prefixes, in order; ``{n}`` in a prefix stands for any figure, for the figures of a fitted
model that each refit moves, while the words around them — the verdict, the phase, the card —
must match). ``kind = "fix"`` checks ``expect`` when one is given, else that some
finding of the code is there; then it runs ``lint --fix`` (``--unsafe-fixes`` when
``unsafe = true``), compares the files with ``fixed`` and re-lints: no finding of the code may
remain, and a second ``--fix`` changes nothing.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import REPO, lorac, write_files

CASES = Path(__file__).parent / "rules" / "cases"


def _load() -> list:
    params = []
    for path in sorted(CASES.glob("LRC*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for i, case in enumerate(data.get("case", [])):
            params.append(pytest.param(data["code"], case,
                                       id=f"{path.stem}[{i}:{case.get('kind')}]"))
    return params


def _starts_with(line: str, prefix: str) -> bool:
    """``line`` starts with ``prefix``, each ``{n}`` of which matches one figure (digits with
    thousands commas or a decimal point)."""
    pattern = re.escape(prefix).replace(re.escape("{n}"), r"[0-9][0-9,.]*")
    return re.match(pattern, line) is not None


def _lines(out: str, code: str) -> list[str]:
    return [line for line in out.splitlines() if f": {code}" in line.split(" [")[0]]


def _setup(project: Path, case: dict) -> None:
    write_files(project, case.get("files", {}))
    if "setup" in case:
        cmd = [part.replace("{tmp}", str(project)) for part in shlex.split(case["setup"])]
        if cmd and cmd[0] == "python":
            cmd[0] = sys.executable
        subprocess.run(cmd, check=True, cwd=REPO)


@pytest.mark.parametrize(("code", "case"), _load())
def test_case(code: str, case: dict, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "sd-scripts" in case.get("files", {}).get("pyproject.toml", ""):
        monkeypatch.delenv("LORAC_SD_SCRIPTS", raising=False)  # the case names its own checkout
    _setup(project, case)
    if "command" in case:  # a rule reported by another command (``lorac import``)
        _, out, err = lorac(*case["command"])
        assert "Traceback" not in err
        got = _lines(out + err, code)
        assert case["kind"] in ("pass", "fail"), "only lint cases can be fix cases"
        args: list[str] = []
    else:
        target = case.get("lint", "profiles")
        args = ["lint", target, *case.get("args", [])]
        _, out, err = lorac(*args)
        assert "Traceback" not in err
        got = _lines(out, code)
    if case["kind"] == "pass":
        assert got == [], f"expected no {code}, got:\n{out}"
        return
    if case["kind"] == "fail" or "expect" in case:
        expect = case.get("expect", [])
        assert len(got) == len(expect), f"expected {expect}, got:\n{out}"
        for line, prefix in zip(got, expect, strict=True):
            assert _starts_with(line, prefix), f"{line!r} does not start with {prefix!r}"
        if case["kind"] == "fail":
            return
    assert case["kind"] == "fix", case["kind"]
    assert got, f"a fix case must start with a finding of {code}:\n{out}"
    fix_flag = "--unsafe-fixes" if case.get("unsafe") else "--fix"
    lorac(*args, fix_flag)
    for name, content in case["fixed"].items():
        assert (project / name).read_text(encoding="utf-8") == content, name
    _, out2, _ = lorac(*args)
    assert _lines(out2, code) == [], out2
    before = {n: (project / n).read_text(encoding="utf-8") for n in case["fixed"]}
    lorac(*args, fix_flag)
    after = {n: (project / n).read_text(encoding="utf-8") for n in case["fixed"]}
    assert before == after, "a second --fix changed the files"


def test_every_rule_has_a_case_file() -> None:
    from lorac.lint.plugins import get_plugins

    rules = get_plugins(entry_points=False).rules
    covered = {p.name.split("-")[0] for p in CASES.glob("LRC*.toml")}
    missing = sorted(code for code, rule in rules.items()
                     if code not in covered)
    assert not missing, f"rules without a case file: {missing}"
