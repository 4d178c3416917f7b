"""Every file of the real-world corpus (``tests/fixtures/corpus``) says where it comes from:
``SOURCES.md`` lists exactly the files in the folder, each with its repository, path, commit and
a licence whose text is in ``LICENSES/``."""

from __future__ import annotations

import re

from tests.conftest import CORPUS

ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<repo>[\w.-]+/[\w.-]+) \| `(?P<path>[^`]+)` \| "
                 r"(?P<commit>[^|]+?) \| (?P<licence>[^|]+?) \|$")
LICENCE_FILES = {"Apache-2.0": "Apache-2.0.txt", "MIT": "MIT-ai-toolkit.txt"}


def _rows() -> list[dict[str, str]]:
    text = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("| `")]
    rows = [ROW.match(line) for line in lines]
    assert all(rows), [line for line, row in zip(lines, rows, strict=True) if not row]
    return [row.groupdict() for row in rows if row]


def test_sources_list_exactly_the_corpus_files() -> None:
    on_disk = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file()}
    on_disk -= {"SOURCES.md"}
    on_disk = {name for name in on_disk if not name.startswith("LICENSES/")}
    listed = [row["file"] for row in _rows()]
    assert len(listed) == len(set(listed))
    assert set(listed) == on_disk
    assert on_disk  # the importer tests parametrize over these folders


def test_every_source_names_a_commit_and_a_licence_shipped_beside_it() -> None:
    for row in _rows():
        assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]), row
        assert row["licence"] in LICENCE_FILES, row
        assert (CORPUS / "LICENSES" / LICENCE_FILES[row["licence"]]).is_file(), row
        assert row["path"].endswith(row["file"].rsplit("/", 1)[-1]), row
