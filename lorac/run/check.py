"""After a run: inspect every LoRA it saved against the profile that made it.

Each ``*.safetensors`` under the run's ``output/`` folder is read with
:func:`lorac.scan.lora.inspect_file`: its rank, alpha and network module must be the profile's,
its module count the one the trainer creates for the profile (where lorac can compute it:
FLUX.1 with ``networks.lora_flux``; ai-toolkit's LoRA of FLUX.1 and Wan 2.1 1.3B with its
default module choice), no tensor may hold NaN or inf and its up-weights may not
all be zero. :func:`check_run_outputs` returns what goes into the manifest's ``lora_check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import LoracError

#: Profile options compared with what the saved file carries.
CHECKED = ("network_dim", "network_alpha", "network_module")


#: ai-toolkit network keys that change which modules get a LoRA (toolkit/config_modules.py).
AITK_MODULE_KEYS = ("transformer_only", "only_if_contains", "ignore_if_contains",
                    "network_kwargs", "conv", "full_if_contains", "all_layers", "lorm_config")


def aitk_expected_modules(profile: Profile, job: Any, *, tiny: bool = False) -> int | None:
    """How many modules ai-toolkit's LoRA wraps for ``profile`` built into ``job`` (the
    emitted YAML as data): :func:`lorac.trainers.ai_toolkit.synth.lora_modules` for its
    families, with a plain ``lora`` network of default module choice; else None. ``tiny``:
    the count for lorac's tiny synthetic set of the family."""

    from lorac.trainers.ai_toolkit.synth import FAMILIES, lora_modules

    try:
        network = job["config"]["process"][0]["network"]
    except (KeyError, IndexError, TypeError):
        return None
    if profile.family not in FAMILIES or not isinstance(network, dict) or \
            network.get("type", "lora") != "lora" or any(k in network for k in AITK_MODULE_KEYS):
        return None
    return len(lora_modules(profile.family, tiny=tiny))


def expected_modules(profile: Profile) -> int | None:
    """How many modules the trainer wraps for ``profile``; None where lorac cannot tell."""

    if profile.backend != "kohya" or not (profile.family or "").startswith("flux1") or \
            profile.option("network_module", "networks.lora_flux") != "networks.lora_flux":
        return None
    try:
        from lorac.trainers.kohya import vram

        return len(vram.lora_modules(vram.config_from_profile(profile)))
    except (LoracError, OSError, ValueError, KeyError):
        return None


def check_file(path: Path, profile: Profile, run_dir: Path, expected: int | None
               ) -> dict[str, Any]:
    """The check of one saved file: what it is and the problems found (reasons as text)."""

    from lorac.lint.rules.docs import LoraFileContradicts, lora_findings
    from lorac.scan.lora import inspect_file

    shown = str(path.relative_to(run_dir))
    try:
        found = inspect_file(path)
    except LoracError as exc:
        return {"path": shown, "problems": [exc.message.replace(str(path), shown)]}
    problems = [d.message for d in lora_findings(LoraFileContradicts(), profile, found, shown)
                if d.key_path and d.key_path[-1] in CHECKED]
    if expected is not None and len(found.modules) != expected:
        problems.append(f"{shown} has {len(found.modules)} modules; the profile makes "
                        f"{expected}")
    health = found.health
    if health is not None and health.nonfinite:
        problems.append(f"{shown}: NaN or inf in {len(health.nonfinite)} tensors "
                        f"(first {health.nonfinite[0]})")
    if health is not None and health.never_trained:
        problems.append(f"{shown}: every up-weight is zero: the LoRA never trained")
    return {"path": shown, "key_format": found.key_format, "trainer": found.trainer,
            "network_module": found.network_module, "modules": len(found.modules),
            "rank": found.rank, "alpha": found.alpha, "ranks": found.to_json()["ranks"],
            "health": found.to_json().get("health"), "problems": problems}


def check_run_outputs(profile: Profile, run_dir: Path, expected: int | str | None = "profile",
                      ) -> dict[str, Any]:
    """``{"files": [...], "problems": [...], "expected_modules": N}`` for the run's LoRAs.
    ``expected``: the module count, None where it is not known, or ``"profile"`` (kohya's
    count for the profile, :func:`expected_modules`)."""

    output = run_dir / "output"
    files = sorted(p for p in output.rglob("*.safetensors") if p.is_file()) \
        if output.is_dir() else []
    if expected == "profile":
        expected = expected_modules(profile) if files else None
    assert expected is None or isinstance(expected, int)
    checked = [check_file(p, profile, run_dir, expected) for p in files]
    return {"files": checked, "expected_modules": expected,
            "problems": [p for c in checked for p in c["problems"]]}
