"""LRC3xx rules and the Markdown scanner (case files hold the pass/fail/fix cases)."""

from __future__ import annotations

from pathlib import Path

from lorac.scan import markdown
from tests.conftest import lorac, write_files

GUIDE = """# Guide

## Fast profile (`train_flux_fast.sh`)

| Parameter | Value |
|-----------|-------|
| Rank/Alpha | 32/32 |

- **Dropout**: 0.1
Learning rate: 1e-4

```bash
Steps: 99
```

| Profile | Rank | Steps |
|---------|------|-------|
| final | 64 | 3000 |
"""


def test_parse_claims_with_context() -> None:
    md = markdown.parse(GUIDE)
    claims = [(c.label, c.value, c.line) for c in md.claims]
    assert ("Rank/Alpha", "32/32", 7) in claims
    assert ("Dropout", "0.1", 9) in claims
    assert ("Learning rate", "1e-4", 10) in claims
    assert ("Steps", "3000", 18) in claims
    assert not any(c.line == 13 for c in md.claims)  # inside a code fence
    rank = next(c for c in md.claims if c.label == "Rank")
    assert rank.context[-1] == "final"
    assert "Fast profile (train_flux_fast.sh)" in md.claims[0].context


def test_blocks_and_rendering() -> None:
    md = markdown.parse("<!-- lorac:begin profile=p keys=a,b format=list -->\nold\n"
                        "<!-- lorac:end -->\n<!-- lorac:begin nonsense -->\n")
    assert md.blocks[0].params == {"profile": "p", "keys": "a,b", "format": "list"}
    assert (md.blocks[0].begin, md.blocks[0].end, md.blocks[0].body) == (1, 3, "old")
    assert md.blocks[1].error
    assert markdown.render_block({"a": 1, "b": True}, ["a", "b", "c"], "list") == \
        "- `a`: 1\n- `b`: true\n- `c`: not set"


def test_claims_bind_to_profiles_after_migration(project: Path) -> None:
    write_files(project, {
        "profiles/fast.toml": '[profile]\nfamily = "flux1-dev"\n\n[network]\n'
                              'network_module = "networks.lora_flux"\nnetwork_dim = 32\n'
                              'network_alpha = 16\n',
        "profiles/final.toml": '[profile]\nfamily = "flux1-dev"\n\n[network]\n'
                               'network_module = "networks.lora_flux"\nnetwork_dim = 64\n'
                               'network_alpha = 64\n',
        "docs/G.md": "## Fast\n\n- Rank/Alpha: 32/32\n\n## Both fast and final\n\n"
                     "- Alpha: 99\n",
    })
    _, out, _ = lorac("lint", ".", "--select", "LRC302")
    assert "docs/G.md:3:3: LRC302 docs say network_alpha = 32 but profiles/fast.toml has 16 " \
           "(profiles/fast.toml:7:1)" in out
    assert "docs/G.md:7" not in out  # "fast and final" names no single subject


def test_malformed_markdown_never_crashes(project: Path) -> None:
    write_files(project, {"README.md": "| a |\n|---|\n| `x/` | [l](<>) |\n"
                          "<!-- lorac:end -->\n- **: :\n" + "|" * 500 + "\n",
                          "docs/b.md": b"\xff\xfe binary \x00"})
    code, _, err = lorac("lint", ".")
    assert "Traceback" not in err and code in (0, 1)
