"""``backends/parsed.json``: current, equal to parsing each TOML file, used only for the very
bytes it was made from."""

from __future__ import annotations

import shutil
from pathlib import Path

import tomllib

from lorac.config import inventory, parsed_gen


def test_committed_copy_is_current() -> None:
    assert parsed_gen.main(["--check"]) == 0, "run python -m lorac.config.parsed_gen"


def test_every_backend_toml_file_is_in_it_and_parses_to_its_data() -> None:
    root = inventory.backends_dir()
    content = parsed_gen.generate()
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.toml"))
    assert sorted(content["files"]) == names
    for name, digest in content["files"].items():
        assert digest is not None, f"{name} is left out"
        assert parsed_gen._same(content["parsed"][digest],
                                tomllib.loads((root / name).read_text(encoding="utf-8")))


def test_reader_takes_the_parsed_copy_of_an_unchanged_file(tmp_path: Path) -> None:
    copy = tmp_path / "network_modules.toml"  # same bytes, another place: the same parse
    shutil.copyfile(inventory.backends_dir() / "kohya" / "network_modules.toml", copy)
    digest = parsed_gen.generate()["files"]["kohya/network_modules.toml"]
    assert inventory._read_toml(copy) is inventory._parsed()[digest]


def test_reader_parses_a_changed_file(tmp_path: Path) -> None:
    source = (inventory.backends_dir() / "kohya" / "network_modules.toml").read_text("utf-8")
    changed = tmp_path / "network_modules.toml"
    changed.write_text(source.replace('commit = "', 'commit = "changed-', 1), encoding="utf-8")
    data = inventory._read_toml(changed)
    assert data["source"]["commit"].startswith("changed-")
    assert parsed_gen._same(data, tomllib.loads(changed.read_text(encoding="utf-8")))


def test_values_json_cannot_carry_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "pin.toml").write_text('[trainer]\ndate = 2026-07-23\n', encoding="utf-8")
    (tmp_path / "plain.toml").write_text('[trainer]\ndate = "2026-07-23"\nn = 1.0\n',
                                         encoding="utf-8")
    content = parsed_gen.generate(tmp_path)
    assert content["files"]["pin.toml"] is None
    digest = content["files"]["plain.toml"]
    assert content["parsed"] == {digest: {"trainer": {"date": "2026-07-23", "n": 1.0}}}
    assert isinstance(content["parsed"][digest]["trainer"]["n"], float)


def test_same_tells_types_apart() -> None:
    assert parsed_gen._same({"a": [1, 2.5]}, {"a": [1, 2.5]})
    assert not parsed_gen._same({"a": 1}, {"a": 1.0})
    assert not parsed_gen._same({"a": 1}, {"a": True})
    assert not parsed_gen._same({"a": 1, "b": 2}, {"b": 2, "a": 1})  # order is data too
    assert parsed_gen._same(float("nan"), float("nan"))


def test_crlf_line_ends_read_as_lf(tmp_path: Path) -> None:
    """A checkout that converts line ends to CRLF still reads the parsed copy: TOML reads CRLF
    as LF, multi-line strings included, so the data is the same."""
    source = inventory.backends_dir() / "kohya" / "network_modules.toml"
    crlf = tmp_path / "network_modules.toml"
    crlf.write_bytes(source.read_bytes().replace(b"\n", b"\r\n"))
    digest = parsed_gen.generate()["files"]["kohya/network_modules.toml"]
    assert inventory.parsed_key(crlf.read_bytes()) == digest
    assert inventory._read_toml(crlf) is inventory._parsed()[digest]
    assert parsed_gen._same(inventory._read_toml(crlf),
                            tomllib.loads(crlf.read_bytes().decode("utf-8")))
