"""A resolved profile's values as people read them: TOML literals, every leaf with where it was
written, credentials masked. Used by ``lorac show``, ``lorac diff``, the run manifest and the
findings that quote a value."""

from __future__ import annotations

import json
import re
from typing import Any

from lorac.core.diagnostics import format_key_path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    return str(value)


def toml_key(key: str) -> str:
    """``key`` as a TOML key: bare when it can be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def leaves(data: Any, base: tuple = ()) -> dict[tuple, Any]:
    """Every leaf of ``data`` by key path (a list of scalars is one leaf)."""
    out: dict[tuple, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, (dict, list)) and v and not (
                    isinstance(v, list) and not any(isinstance(i, dict) for i in v)):
                out.update(leaves(v, (*base, k)))
            else:
                out[(*base, k)] = v
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.update(leaves(v, (*base, i)))
    return out


def leaves_with_provenance(profile: Any) -> dict[str, str]:
    """Every leaf of ``profile.data`` (as a dotted key path) and where its value was written."""

    return {format_key_path(k): str(profile.where(k)) for k in leaves(profile.data)}


def masked_provenance(profile: Any) -> dict[str, str]:
    """:func:`leaves_with_provenance` with keys and places fit to print (credentials masked)."""

    from lorac.core.secrets import scrub_message

    return {scrub_message(k): scrub_message(v) for k, v in leaves_with_provenance(profile).items()}


def masked(data: Any) -> Any:
    """``data`` with credentials masked (``*** (hf_a… (37 chars))``), for printing."""

    from lorac.core.secrets import known_secrets, redact_data

    return redact_data(data, known_secrets())
