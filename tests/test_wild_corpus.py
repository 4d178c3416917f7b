"""lorac on real configurations (``tests/corpus/wild``): every file imports or says in one true
line why not, every imported profile builds, and the findings are exactly the true ones of
``expected.toml`` — no false alarm, none missing — apart from the listed known gaps, each of
which must still occur (the list only shrinks)."""

from __future__ import annotations

import re

import pytest

from tests.wild_corpus import (
    WILD,
    Outcome,
    corpus_files,
    expected_findings,
    gaps_of,
    load_expected,
    run_corpus,
)

ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<repo>[\w.-]+/[\w.-]+) \| `(?P<path>[^`]+)` \| "
                 r"(?P<commit>[0-9a-f]{40}) \| (?P<licence>[^|]+?) \|$")
LICENCES = {"Apache-2.0": "Apache-2.0.txt", "MIT (ai-toolkit)": "MIT-ai-toolkit.txt",
            "MIT (musubi-tuner-docker)": "MIT-musubi-tuner-docker.txt",
            "MIT (lora-pilot)": "MIT-lora-pilot.txt"}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return run_corpus()


@pytest.fixture(scope="module")
def expected() -> dict:
    return load_expected()


def _entry(expected: dict, rel: str) -> dict:
    entries = [e for e in expected["file"] if e["path"] == rel]
    assert len(entries) == 1, f"expected.toml needs exactly one [[file]] for {rel}"
    return entries[0]


def test_the_corpus_is_what_sources_md_lists() -> None:
    text = (WILD / "SOURCES.md").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("| `")]
    rows = [ROW.match(line) for line in lines]
    assert all(rows), [line for line, row in zip(lines, rows, strict=True) if not row]
    listed = {row["file"]: row for row in rows if row}
    assert len(listed) == len(lines)
    assert set(listed) == set(corpus_files())
    assert len(listed) >= 40
    for row in listed.values():
        assert row["licence"] in LICENCES, row["licence"]
        assert (WILD / "LICENSES" / LICENCES[row["licence"]]).is_file()
        assert row["path"].rsplit("/", 1)[-1] == row["file"].rsplit("/", 1)[-1]


def test_every_file_has_one_expectation(expected: dict) -> None:
    paths = [e["path"] for e in expected["file"]]
    assert sorted(paths) == corpus_files()
    for entry in expected["file"]:  # env: what the launcher's own environment sets
        env = entry.get("env", {})
        assert isinstance(env, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()), entry["path"]
    for gap in expected.get("known_gaps", ()):
        assert gap["file"] in paths, gap
        assert gap["kind"] in ("false", "missed", "build"), gap
        assert gap["reason"].strip(), gap
        if gap["kind"] == "missed":
            assert gap["finding"] in _entry(expected, gap["file"])["findings"], gap
        if gap["kind"] == "false":
            assert gap["finding"] not in _entry(expected, gap["file"])["findings"], gap


@pytest.mark.parametrize("rel", corpus_files())
def test_file(rel: str, outcomes: dict[str, Outcome], expected: dict) -> None:
    entry = _entry(expected, rel)
    got = outcomes[rel]
    assert got.imported is entry["imports"], got.reason or "it imported"
    if not got.imported:
        assert entry["reason"] in got.reason, got.reason
        assert "\n" not in got.reason.strip() and "Traceback" not in got.reason
        return
    missed, false = gaps_of(expected, rel)
    build_gap = any(g["file"] == rel and g["kind"] == "build"
                    for g in expected.get("known_gaps", ()))
    if build_gap:
        assert got.built is False, "a listed build gap is fixed: remove it from known_gaps"
    else:
        assert got.built, f"the imported profile does not build: {got.build_error}"
    want = (expected_findings(entry) - missed) | false
    assert sorted(got.findings - want) == [], \
        "new findings: " + "; ".join(f"{f} {got.messages.get(f, '')}"
                                     for f in sorted(got.findings - want))
    gone = want - got.findings
    assert sorted(gone) == [], f"missing findings (or fixed known gaps to remove): {gone}"
