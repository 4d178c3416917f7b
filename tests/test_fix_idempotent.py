"""``lorac lint --fix`` is idempotent and leaves no finding of a fixed code (hypothesis).

Profiles are drawn with the patterns the network and compatibility rules fix: an unset or
literal alpha, ``network_args`` with mis-spelt booleans and spaces around ``=``, options FLUX
ignores, ``split_mode``, ``v2`` on SDXL — with comments that must survive.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import lorac

SAFE_CODES = ("LRC101", "LRC106", "LRC108", "LRC617", "LRC618", "LRC622")
ARGS = st.sampled_from(["split_qkv=false", "verbose=0", "verbose=no", "train_blocks = single",
                        "split_qkv=True", "train_blocks=all", "split_qkv=OFF"])


@st.composite
def profiles(draw: st.DrawFn) -> str:
    family = draw(st.sampled_from(["flux1-dev", "sdxl"]))
    module = "networks.lora_flux" if family == "flux1-dev" else "networks.lora"
    lines = ["# generated", "[profile]", f'family = "{family}"', "", "[network]",
             f'network_module = "{module}"  # module']
    if draw(st.booleans()):
        lines.append(f"network_dim = {draw(st.sampled_from([4, 16, 32]))}")
    if draw(st.booleans()):
        lines.append(f"network_alpha = {draw(st.sampled_from([1, 16, 32]))}")
    if family == "flux1-dev":
        args = draw(st.lists(ARGS, max_size=3, unique=True))
        if args:
            lines.append("network_args = [" + ", ".join(f'"{a}"' for a in args) + "]")
    lines += ["", "[training]", 'mixed_precision = "bf16"']
    optional = {"noise_offset = 0.1  # docs promise it": 1, "min_snr_gamma = 5.0": 1,
                "split_mode = true": 1, "v2 = true": 1, "seed = 42": 1}
    for line in optional:
        if draw(st.booleans()):
            lines.append(line)
    return "\n".join(lines) + "\n"


def _codes(out: str) -> set[str]:
    return {line.split(": ")[1].split()[0] for line in out.splitlines() if ": LRC" in line}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=profiles())
def test_fix_twice_changes_nothing_the_second_time(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        path = Path("profiles/p.toml")
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
        lorac("lint", "profiles", "--fix")
        once = path.read_text(encoding="utf-8")
        _, out, _ = lorac("lint", "profiles")
        assert not _codes(out) & set(SAFE_CODES), out
        lorac("lint", "profiles", "--fix")
        assert path.read_text(encoding="utf-8") == once
        assert "# generated" in once and "# module" in once
