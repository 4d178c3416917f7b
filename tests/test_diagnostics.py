from __future__ import annotations

import json

from lorac.core.diagnostics import (
    Diagnostic,
    Edit,
    Severity,
    render_github,
    render_json,
    render_sarif,
    render_text,
)

D = Diagnostic("LRC004", "unknown key 'netwrok_alpha' in network", "profiles/p.toml", 6, 1,
               Severity.ERROR, "unknown-key", ("network", "netwrok_alpha"),
               hint="did you mean 'network_alpha'?")


def test_text() -> None:
    assert render_text([D]) == (
        "profiles/p.toml:6:1: LRC004 unknown key 'netwrok_alpha' in network "
        "(network.netwrok_alpha) [unknown-key]\n    hint: did you mean 'network_alpha'?\n")
    fixable = Diagnostic("LRC101", "m", "p.toml", 1, 1, fix=(Edit("p.toml", ("a",), 1),))
    assert ": LRC101 [*] m" in render_text([fixable])


def test_json_round_trip() -> None:
    data = json.loads(render_json([D]))
    assert Diagnostic.from_json(data[0]) == D


def test_sarif_has_the_fields_code_scanning_requires() -> None:
    doc = json.loads(render_sarif([D], version="0.1.0"))
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "lorac"
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    result = run["results"][0]
    assert result["ruleId"] == "LRC004" and rule_ids[result["ruleIndex"]] == "LRC004"
    loc = result["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "profiles/p.toml"
    assert loc["region"] == {"startLine": 6, "startColumn": 1}
    assert result["level"] == "error" and result["message"]["text"]
    assert result["partialFingerprints"]


def test_github_annotations_escape() -> None:
    d = Diagnostic("LRC005", "bad, value: 100%\nnext", "a,b.toml", 2, 3, Severity.WARNING)
    assert render_github([d]) == (
        "::warning file=a%2Cb.toml,line=2,col=3,title=LRC005 ::bad, value: 100%25%0Anext\n")
