"""After a run: inspect every LoRA it saved against the profile that made it.

Each ``*.safetensors`` under the run's ``output/`` folder is read with
:func:`lorac.scan.lora.inspect_file`: its rank, alpha and network module must be the profile's,
its module count the one the trainer creates for the profile where the backend can compute it
(sd-scripts FLUX.1 ``networks.lora_flux``, musubi-tuner Wan 2.1 T2V 1.3B ``networks.lora_wan``,
ai-toolkit's LoRA of FLUX.1 and Wan 2.1 1.3B with its default module choice; elsewhere the
check says "unknown count" and why), no tensor may hold NaN or inf and its up-weights may
not all be zero. :func:`check_run_outputs` returns what goes into the manifest's
``lora_check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import LoracError

#: Profile options compared with what the saved file carries.
CHECKED = ("network_dim", "network_alpha", "network_module")


def expected_modules(profile: Profile, backend: Any = None) -> tuple[int | None, str | None]:
    """How many modules the trainer wraps for ``profile`` and, where lorac cannot tell, why:
    the backend's ``expected_modules`` (:mod:`lorac.trainers.module_count`), computed from what
    lorac knows of that trainer, never guessed."""

    counter = getattr(backend, "expected_modules", None)
    if counter is None:
        name = getattr(backend, "name", None) or profile.backend
        return None, f"backend {name} does not say how many modules it makes"
    try:
        return counter(profile)
    except (LoracError, OSError, ValueError, KeyError) as exc:
        return None, f"the count failed: {exc.__class__.__name__}"


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


def check_run_outputs(profile: Profile, run_dir: Path, backend: Any = None,
                      expected: tuple[int | None, str | None] | None = None) -> dict[str, Any]:
    """``{"files": [...], "problems": [...], "expected_modules": N or None,
    "expected_modules_unknown": why N is None}`` for the run's LoRAs; ``profile`` as
    ``backend`` built it (its ``[trainers.<backend>]`` values in place). ``expected``: the
    module count and its reason where the run knows better than the backend (a tiny synthetic
    set), else the backend's :func:`expected_modules`."""

    output = run_dir / "output"
    files = sorted(p for p in output.rglob("*.safetensors") if p.is_file()) \
        if output.is_dir() else []
    expected, why = (expected or expected_modules(profile, backend)) if files else (None, None)
    checked = [check_file(p, profile, run_dir, expected) for p in files]
    return {"files": checked, "expected_modules": expected, "expected_modules_unknown": why,
            "problems": [p for c in checked for p in c["problems"]]}
