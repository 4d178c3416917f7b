"""Run lorac on the real-world corpus ``tests/corpus/wild/`` the way a new user would.

For each configuration file: ``lorac import`` it, ``lorac build`` the profile it wrote and
``lorac lint`` that profile (without the dataset rules: the corpus ships no images), with the
environment variables its ``[[file]]`` entry gives in ``env`` set — those a launcher's own
environment sets from a file the corpus does not hold, which the imported profile keeps as
``${env:NAME}`` and the build needs, as its user would set them. What comes out is one
:class:`Outcome` per file, compared by ``tests/test_wild_corpus.py`` with the
expectations of ``tests/corpus/wild/expected.toml`` and scored by ``bench/wild_corpus.py``.

A finding is named by a string, so that expectations are plain data:

* ``"LRC093:9"``: an import finding at line 9 of the source file (``:0`` is the whole file);
* ``"LRC101@network.network_alpha"``: a lint finding on the imported profile, at that key.

Only findings of severity warning or error count; info notes (``LRC095``) are not findings.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

WILD = Path(__file__).resolve().parent / "corpus" / "wild"
EXPECTED = WILD / "expected.toml"
#: the suffixes of the configuration files (SOURCES.md, expected.toml and LICENSES/ are not)
CONFIG_SUFFIXES = (".toml", ".json", ".yaml", ".yml", ".sh", ".bat", ".cmd")


@dataclass
class Outcome:
    """What lorac did with one corpus file."""

    file: str
    imported: bool
    kind: str = ""  # the importer that read it (kohya-toml, kohya-gui, shell, ai-toolkit, musubi)
    family: str | None = None
    reason: str = ""  # the one-line error when it did not import
    built: bool | None = None  # None: nothing to build
    build_error: str = ""
    findings: set[str] = field(default_factory=set)
    messages: dict[str, str] = field(default_factory=dict)  # finding → its message


def corpus_files() -> list[str]:
    """The configuration files of the corpus, as paths relative to :data:`WILD`."""

    names = []
    for path in sorted(WILD.rglob("*")):
        rel = path.relative_to(WILD).as_posix()
        if (path.is_file() and path.suffix.lower() in CONFIG_SUFFIXES
                and not rel.startswith("LICENSES/") and rel != "expected.toml"):
            names.append(rel)
    return names


def load_expected() -> dict:
    """``expected.toml`` as plain data."""

    import tomlkit

    return tomlkit.parse(EXPECTED.read_text(encoding="utf-8")).unwrap()


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def _name(rel: str) -> str:
    stem = "".join(c if c.isalnum() else "-" for c in rel.rsplit(".", 1)[0].lower())
    return stem.strip("-")[:80]


def _shown(message: str) -> str:
    """``message`` with the corpus files named relative to the corpus folder."""

    return re.sub(r"\S*corpus/wild/", "", message)


def run_file(rel: str, workdir: Path, env: dict[str, str] | None = None) -> Outcome:
    """Import, build and lint ``WILD/rel`` in a fresh project under ``workdir`` (building and
    linting with the variables ``env`` set)."""

    from click.testing import CliRunner

    from lorac import importers
    from lorac.cli import cli
    from lorac.core.diagnostics import LoracError, Severity

    project = workdir / _name(rel)
    (project / "profiles").mkdir(parents=True)
    source_path = WILD / rel
    with _inside(project):
        kind = ""
        try:
            source = importers.read_source(source_path)
            kind = importers.detect(source)
            draft = importers.read(source, kind, importers.Settings())
            text = importers.render(draft, schema_header=True)
        except LoracError as exc:
            return Outcome(rel, imported=False, kind=kind, reason=_shown(exc.message))
        outcome = Outcome(rel, imported=True, kind=kind, family=draft.family)
        for diag in draft.diagnostics:
            if diag.severity >= Severity.WARNING:
                outcome.findings.add(f"{diag.code}:{diag.line}")
                outcome.messages[f"{diag.code}:{diag.line}"] = diag.message
        profile = Path("profiles") / f"{_name(rel)}.toml"
        profile.write_text(text, encoding="utf-8")
        runner = CliRunner()
        built = runner.invoke(cli, ["build", profile.stem, "-o", "build"], env=env)
        outcome.built = built.exit_code == 0
        if not outcome.built:
            outcome.build_error = _shown(getattr(built.exception, "message", None)
                                         or (built.output.strip().splitlines() or ["?"])[-1])
        linted = runner.invoke(cli, ["lint", "--no-dataset", "-f", "json", str(profile)],
                               env=env)
        try:
            found = json.loads(linted.stdout or "[]")
        except ValueError:
            found = [{"code": "LINT-CRASH", "severity": "error", "key_path": [],
                      "message": linted.output}]
        for diag in found:
            if diag["severity"] in ("warning", "error"):
                key = ".".join(str(k) for k in diag.get("key_path") or ())
                outcome.findings.add(f"{diag['code']}@{key}")
                outcome.messages[f"{diag['code']}@{key}"] = diag["message"]
    return outcome


def run_corpus(files: list[str] | None = None) -> dict[str, Outcome]:
    """:func:`run_file` on every corpus file (or ``files``), each in its own project."""

    envs = {e["path"]: e.get("env") for e in load_expected()["file"]}
    with tempfile.TemporaryDirectory(prefix="lorac-wild-") as tmp, \
            contextlib.redirect_stderr(io.StringIO()):
        return {rel: run_file(rel, Path(tmp), envs.get(rel))
                for rel in (files or corpus_files())}


def expected_findings(entry: dict) -> set[str]:
    """The true findings of one ``[[file]]`` entry."""

    return set(entry.get("findings", ()))


def gaps_of(expected: dict, rel: str) -> tuple[set[str], set[str]]:
    """(true findings lorac misses, false findings lorac gives) listed as known gaps of ``rel``."""

    missed, false = set(), set()
    for gap in expected.get("known_gaps", ()):
        if gap["file"] == rel and gap["kind"] in ("missed", "false"):
            (missed if gap["kind"] == "missed" else false).add(gap["finding"])
    return missed, false
