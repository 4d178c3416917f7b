from __future__ import annotations

import string
from pathlib import Path

import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st

from lorac.config import document

SAMPLE = '''#:schema ../lorac/schema/profile.schema.json
# a comment
[profile]   # trailing
extends = "base"
"quoted key" = 'literal'

[network]
network_args = [
  "train_blocks=all",   # why
  "split_qkv=True",
]
inline = { a = 1, b.c = [1, 2] }
multi = """
line "one"
"""

[[dataset.subsets]]
image_dir = "a"

[[dataset.subsets]]
image_dir = "b"
'''


def test_locator_positions() -> None:
    doc = document.parse(SAMPLE, "p.toml")
    pos = doc.locator.positions
    assert pos[("profile",)] == (3, 2)
    assert pos[("profile", "extends")] == (4, 1)
    assert pos[("profile", "quoted key")] == (5, 1)
    assert pos[("network", "network_args", 1)] == (10, 3)
    assert pos[("network", "inline", "b", "c", 1)] == (12, 29)
    assert pos[("dataset", "subsets", 1, "image_dir")] == (21, 1)
    assert doc.position(("dataset", "subsets", 1, "missing")) == (20, 3)
    assert doc.locator.comments[9] == "# why"


def test_untouched_round_trip_is_byte_identical() -> None:
    doc = document.parse(SAMPLE, "p.toml")
    assert doc.dumps() == SAMPLE


_keys = st.text(alphabet=string.ascii_letters + "_-", min_size=1, max_size=8)
_scalars = st.one_of(st.integers(-10**6, 10**6), st.booleans(),
                     st.floats(allow_nan=False, allow_infinity=False, width=32),
                     st.text(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, st.dictionaries(_keys, _values, max_size=4), max_size=3))
def test_round_trip_and_locator_on_generated_documents(data: dict) -> None:
    text = tomlkit.dumps(data)
    doc = document.parse(text, "g.toml")
    assert doc.dumps() == text
    assert doc.data == tomlkit.parse(text).unwrap()
    lines = text.split("\n")
    for section, table in data.items():
        for key in table:
            line, _col = doc.position((section, key))
            assert key in lines[line - 1] or repr(key)[1:-1] in lines[line - 1]


def test_invalid_toml_has_position() -> None:
    with pytest.raises(document.LoadError) as exc:
        document.parse("[a]\nb = [1,\n", "x.toml")
    d = exc.value.diagnostic
    assert d.code == "LRC001" and d.line >= 2 and d.path == "x.toml"


@pytest.mark.parametrize(("content", "code"), [
    (b"\x00\x01\x02", "LRC002"),
    (b"a = \"caf\xe9\"\n", "LRC002"),
    (b"\xef\xbb\xbf[profile]\n", None),
])
def test_read_text(tmp_path: Path, content: bytes, code: str | None) -> None:
    path = tmp_path / "f.toml"
    path.write_bytes(content)
    if code is None:
        assert document.load(path).data == {"profile": {}}
    else:
        with pytest.raises(document.LoadError) as exc:
            document.load(path)
        assert exc.value.diagnostic.code == code


def test_suppressions() -> None:
    doc = document.parse('a = 1  # lorac: ignore[LRC101, LRC102]\ns = "# lorac: ignore[X]"\n',
                         "s.toml")
    assert document.suppressions(doc) == {1: {"LRC101", "LRC102"}}


_NO_FAST_PATH = document.re.compile(r"(?!)")  # a pattern that never matches


def _positions(text: str, monkeypatch: pytest.MonkeyPatch, fast: bool) -> tuple[dict, dict]:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(document, "_SIMPLE_KEYVAL", _NO_FAST_PATH)
        locator = document.Locator(text)
    return locator.positions, locator.comments


_TRICKY = SAMPLE + "\n".join([
    "[x]",
    "a = 1979-05-27 07:32:00",
    'b = "quoted \\\\" # with an escape',
    "c = 'lit' # comment",
    "d.e = 1",
    'f = """',
    "g = 1",
    '"""',
    "h = [1,",
    "  2]",
    '"i" = 1',
    "j = -1_000.5e3",
    "k = inf   # c",
    "l = \'\'\'x = 1\'\'\'",
    "m = 1",
    "",
])


def test_the_locators_fast_path_finds_what_the_scanner_finds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [_TRICKY, _TRICKY.replace("\n", "\r\n")]
    texts += [p.read_text(encoding="utf-8") for p in sorted(
        Path(__file__).resolve().parent.parent.glob("profiles/**/*.toml"))]
    assert len(texts) > 3
    for text in texts:
        assert _positions(text, monkeypatch, True) == _positions(text, monkeypatch, False)
    pos, _ = _positions(_TRICKY, monkeypatch, True)
    assert ("x", "g") not in pos  # inside a multi-line string: not a key
    assert pos[("x", "m")] == (SAMPLE.count("\n") + 15, 1)
    assert document.parse(_TRICKY, "t.toml").data["x"]["l"] == "x = 1"


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, st.dictionaries(_keys, _values, max_size=4), max_size=3))
def test_fast_path_on_generated_documents(data: dict) -> None:
    text = tomlkit.dumps(data)
    slow = pytest.MonkeyPatch()
    try:
        fast_result = document.Locator(text)
        slow.setattr(document, "_SIMPLE_KEYVAL", _NO_FAST_PATH)
        slow_result = document.Locator(text)
    finally:
        slow.undo()
    assert (fast_result.positions, fast_result.comments) == \
        (slow_result.positions, slow_result.comments)
