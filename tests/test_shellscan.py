"""Tests of :mod:`lorac.scan.shell` beyond what the variable rules exercise."""

from __future__ import annotations

from lorac.scan.shell import ShellScan, scan, sourced_env_files


def test_refs_after_a_double_quote_inside_single_quotes() -> None:
    # the '"' inside '…' must not flip the quote state: $X is outside any quotes
    refs = scan("echo 'a\"b' $X\n").refs
    assert [(r.name, r.line, r.col) for r in refs] == [("X", 1, 12)]
    # and a "'" inside "…" does not open a single-quoted string
    assert [r.name for r in scan("echo \"it's $Y\" '$Z' $W\n").refs] == ["Y", "W"]


def test_source_of_a_dot_file_matches_that_file() -> None:
    script = scan("source ./.env\n", "train.sh")
    env_files = {"docker/env": ShellScan("docker/env"), ".env": ShellScan(".env")}
    assert sourced_env_files(script, env_files) == [env_files[".env"]]
