"""What ``[trainers.ai-toolkit]`` may hold (see :mod:`lorac.config.trainer_values`), checked
against ai-toolkit: its plain keys are profile options that ai-toolkit has an equivalent for
(``mapping.toml`` ``[options]``); its sub-tables are ai-toolkit's own keys, by process section
(``model``, ``train``, ``network``, ``save``, ``sample``, ``datasets`` — each key one that the
section's config class reads, ``backends/ai-toolkit/inventory/config_keys.json`` — and
``process``, the keys of the process entry itself)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any, NamedTuple

from lorac.config.profile import Profile
from lorac.config.trainer_values import SECTION, native, overrides
from lorac.core.diagnostics import KeyPath, LoracError

TRAINER = "ai-toolkit"


class Problem(NamedTuple):
    """One finding about ``[trainers.ai-toolkit]``: ``code`` is LRC680 (no meaning for
    ai-toolkit) or LRC684 (a key a profile option already writes)."""

    code: str
    key_path: KeyPath
    message: str
    hint: str | None = None


def mapped_targets(profile: Profile, mapping: dict[str, Any]) -> dict[str, KeyPath]:
    """``section.key`` of the job → the profile option that writes it (set options only)."""

    out: dict[str, KeyPath] = {}
    for name, (_value, kp) in profile.options().items():
        spec = mapping["options"].get(name)
        if spec is not None and "to" in spec:
            section, _, rest = spec["to"].partition(".")
            out[f"{section}.{rest.split('.')[0]}"] = kp
    return out


def _close(word: str, candidates: Any) -> str | None:
    found = difflib.get_close_matches(word, list(candidates), n=2, cutoff=0.6)
    return f"did you mean {' or '.join(found)}?" if found else None


def problems(profile: Profile, mapping: dict[str, Any], *,
             options: bool = True) -> Iterator[Problem]:
    """Every key of ``[trainers.ai-toolkit]`` ai-toolkit would not read, and every value that
    is also given somewhere else; ``options=False`` leaves out the plain (option) keys (the
    emitter sees them already in place)."""

    from lorac.config.inventory import load_ai_toolkit_keys
    from lorac.trainers.ai_toolkit.archs import arch

    base: KeyPath = (SECTION, TRAINER)
    for key in (overrides(profile, TRAINER) if options else {}):
        kp = (*base, key)
        if "to" not in mapping["options"].get(key, {}):
            yield Problem("LRC680", kp, f"{key} has no ai-toolkit equivalent: a value for "
                          "ai-toolkit only is never used", _close(key, mapping["options"]))
    keys = load_ai_toolkit_keys()
    sections = mapping["sections"]
    produced = mapped_targets(profile, mapping)
    for section, table in native(profile, TRAINER).items():
        if section != "process" and section not in sections:
            yield Problem("LRC680", (*base, section), f"[trainers.ai-toolkit.{section}] is not "
                          "a section of an ai-toolkit process",
                          _close(section, [*sections, "process"]))
            continue
        for key, value in table.items():
            kp = (*base, section, key)
            if section == "process":
                known = key in mapping["process"]
                candidates: Any = mapping["process"]
            else:
                known = keys.get(sections[section], key) is not None
                candidates = keys.classes.get(sections[section], {})
            if not known:
                yield Problem("LRC680", kp, f"{section}.{key} is not a key ai-toolkit reads "
                              f"({sections.get(section, 'the process entry')})",
                              _close(key, candidates))
                continue
            if section == "model" and key == "arch" and isinstance(value, str):
                try:
                    arch(value)
                except LoracError as exc:
                    yield Problem("LRC680", kp, str(exc))
                continue
            if f"{section}.{key}" in produced:
                other = produced[f"{section}.{key}"]
                yield Problem("LRC684", kp, f"{section}.{key} is also written from "
                              f"{other[-1]} ({profile.where(other)}): one value, one place",
                              f"remove one of them (a value for ai-toolkit only goes in "
                              f"[trainers.ai-toolkit] as {other[-1]})")
