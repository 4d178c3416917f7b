"""Validating a resolved profile against ``lorac/schema/profile.schema.json``.

The schema is generated (:mod:`lorac.config.schema_gen`) and uses only keywords that JSON Schema
draft 4 has. Validation reports *every* error, each at its file:line:col and key path, with a
sentence of lorac's own (never a library's raw message), the best-matching alternative for
``anyOf``/``oneOf`` and a did-you-mean for unknown keys.

lorac validates its own schema with the small evaluator below rather than importing
``jsonschema`` on every lint (that import alone costs about 150 ms, a third of the cold-start
budget). The evaluator covers exactly the keywords the generated schema uses and raises on any
other; a property test checks that its verdicts equal ``jsonschema``'s Draft 4 validator on
generated documents.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, KeyPath, format_key_path

SCHEMA_PATH = Path(__file__).parent.parent / "schema" / "profile.schema.json"
SUPPORTED = {
    "$schema", "title", "description", "type", "enum", "properties", "additionalProperties",
    "patternProperties", "items", "$ref", "definitions", "anyOf", "oneOf", "minimum", "maximum",
    "pattern", "required", "minItems", "maxItems", "default", "minLength",
}


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        return json.load(fh)


@dataclass(frozen=True)
class SchemaError:
    """One violation: where (key path), which keyword failed, and a sentence for people."""

    path: KeyPath
    keyword: str
    message: str
    unknown_key: str | None = None
    suggestion: str | None = None


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "a boolean (true/false)", "array": "a list", "object": "a table"}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # dates and times from TOML


def type_name(value: Any) -> str:
    """``"an integer"``, ``"a table"``…: the value's TOML type, for messages."""

    kind = _type_of(value)
    return _TYPE_NAMES.get(kind, kind).replace(" (true/false)", "")


def _same(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _describe(value: Any) -> str:
    from lorac.core.secrets import shorten

    return shorten(repr(value) if not isinstance(value, (dict, list)) else _type_of(value), 60)


class _Where:
    """A key path as a message names it, formatted only when a message is written (most
    values are valid: a profile with 100,000 keys formats none)."""

    __slots__ = ("path",)

    def __init__(self, path: KeyPath) -> None:
        self.path = path

    def __str__(self) -> str:
        return format_key_path(self.path) or "the profile"


class Evaluator:
    """A draft-4 subset evaluator producing :class:`SchemaError` values."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema
        self._check_keywords(schema)

    def _check_keywords(self, node: Any) -> None:
        if isinstance(node, dict):
            unknown = set(node) - SUPPORTED
            if unknown:
                raise ValueError(f"schema keyword(s) not supported: {sorted(unknown)}")
            for key, value in node.items():
                if key in ("properties", "definitions", "patternProperties"):
                    for sub in value.values():
                        self._check_keywords(sub)
                elif key in ("items", "additionalProperties") and isinstance(value, dict):
                    self._check_keywords(value)
                elif key in ("anyOf", "oneOf"):
                    for sub in value:
                        self._check_keywords(sub)

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local $ref is supported: {ref}")
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
        return node

    def errors(self, instance: Any, schema: dict[str, Any] | None = None,
               path: KeyPath = ()) -> Iterator[SchemaError]:
        node = self.resolve(self.root if schema is None else schema)
        where = _Where(path)
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            actual = _type_of(instance)
            if actual not in types and not (actual == "integer" and "number" in types):
                wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
                yield SchemaError(path, "type", f"{where} must be {wanted}, not "
                                  f"{_TYPE_NAMES.get(_type_of(instance), _type_of(instance))} "
                                  f"({_describe(instance)})")
                return
        if "enum" in node and not any(_same(instance, c) for c in node["enum"]):
            choices = ", ".join(repr(c) for c in node["enum"])
            close = (get_close_matches(instance, [c for c in node["enum"] if isinstance(c, str)],
                                       n=1) if isinstance(instance, str) else [])
            yield SchemaError(path, "enum", f"{where} is {_describe(instance)}; expected one "
                              f"of: {choices}", suggestion=close[0] if close else None)
        if isinstance(instance, (int, float)) and not isinstance(instance, bool):
            if "minimum" in node and instance < node["minimum"]:
                yield SchemaError(path, "minimum",
                                  f"{where} is {instance}; it must be at least {node['minimum']}")
            if "maximum" in node and instance > node["maximum"]:
                yield SchemaError(path, "maximum",
                                  f"{where} is {instance}; it must be at most {node['maximum']}")
        if isinstance(instance, str):
            if "pattern" in node and not re.search(node["pattern"], instance):
                yield SchemaError(path, "pattern", f"{where} is {_describe(instance)}, which is "
                                  f"not of the form {node['pattern']}")
            if "minLength" in node and len(instance) < node["minLength"]:
                yield SchemaError(path, "minLength", f"{where} must not be empty")
        if isinstance(instance, list):
            if "minItems" in node and len(instance) < node["minItems"]:
                yield SchemaError(path, "minItems",
                                  f"{where} needs at least {node['minItems']} item(s)")
            if "maxItems" in node and len(instance) > node["maxItems"]:
                yield SchemaError(path, "maxItems",
                                  f"{where} takes at most {node['maxItems']} item(s)")
            if isinstance(node.get("items"), dict):
                for i, item in enumerate(instance):
                    yield from self.errors(item, node["items"], (*path, i))
        if isinstance(instance, dict):
            yield from self._object(instance, node, path, where)
        for keyword in ("anyOf", "oneOf"):
            if keyword in node:
                yield from self._alternatives(instance, node[keyword], path, keyword, where)

    def _object(self, instance: dict, node: dict, path: KeyPath,
                where: _Where) -> Iterator[SchemaError]:
        for key in node.get("required", ()):
            if key not in instance:
                yield SchemaError(path, "required", f"{where} needs the key {key!r}")
        props = node.get("properties", {})
        patterns = node.get("patternProperties", {})
        additional = node.get("additionalProperties", True)
        suggest = 100  # "did you mean" for this many unknown keys (each costs a fuzzy search)
        for key, value in instance.items():
            matched = False
            if key in props:
                matched = True
                yield from self.errors(value, props[key], (*path, key))
            for pattern, sub in patterns.items():
                if _pattern(pattern).search(key):
                    matched = True
                    yield from self.errors(value, sub, (*path, key))
            if matched:
                continue
            if additional is False:
                suggest -= 1
                close = get_close_matches(key, list(props), n=1, cutoff=0.6) if suggest >= 0 \
                    else []
                yield SchemaError((*path, key), "additionalProperties",
                                  f"unknown key {key!r} in {where}", unknown_key=key,
                                  suggestion=close[0] if close else None)
            elif isinstance(additional, dict):
                yield from self.errors(value, additional, (*path, key))

    def _alternatives(self, instance: Any, options: list, path: KeyPath, keyword: str,
                      where: _Where) -> Iterator[SchemaError]:
        results = [list(self.errors(instance, sub, path)) for sub in options]
        passing = sum(1 for r in results if not r)
        if keyword == "anyOf" and passing:
            return
        if keyword == "oneOf" and passing == 1:
            return
        if passing > 1:
            yield SchemaError(path, keyword, f"{where} matches more than one allowed form")
            return
        # best match: the alternative whose type fits and that fails deepest, fewest times
        def rank(errs: list[SchemaError]) -> tuple[int, int, int]:
            type_miss = any(e.keyword == "type" and e.path == path for e in errs)
            depth = max(len(e.path) for e in errs)
            return (1 if type_miss else 0, -depth, len(errs))

        yield from min(results, key=rank)


def _odd_numbers(node: Any, path: KeyPath) -> Iterator[tuple[KeyPath, Any]]:
    """NaN, infinities (TOML allows them) and integers beyond 64 bits, anywhere in ``node``."""

    non_finite = isinstance(node, float) and not math.isfinite(node)
    too_big = isinstance(node, int) and not isinstance(node, bool) and not -2**63 <= node < 2**63
    if non_finite or too_big:
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _odd_numbers(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _odd_numbers(value, (*path, i))


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=1)
def _evaluator() -> Evaluator:
    return Evaluator(load_schema())


def schema_errors(data: dict[str, Any], schema: dict[str, Any] | None = None) -> list[SchemaError]:
    evaluator = _evaluator() if schema is None else Evaluator(schema)
    return list(evaluator.errors(data))


def validate(profile: Profile, *, skip: set[KeyPath] | None = None) -> list[Diagnostic]:
    """Every schema violation of ``profile`` as diagnostics (LRC004 unknown key, LRC005 other).

    Key paths in ``skip`` (values whose interpolation already failed) are not reported again.
    """

    skip = skip or set()
    out: list[Diagnostic] = []
    for path, value in _odd_numbers(profile.data, ()):
        out.append(profile.diagnostic("LRC005", _odd_reason(path, value), path,
                                      rule="schema-violation"))
    for err in schema_errors(profile.data):
        if any(err.path[: len(s)] == s for s in skip):
            continue
        hint = f"did you mean {err.suggestion!r}?" if err.suggestion else None
        if err.unknown_key is not None:
            out.append(profile.diagnostic("LRC004", err.message, err.path, rule="unknown-key",
                                          hint=hint))
        else:
            out.append(profile.diagnostic("LRC005", err.message, err.path,
                                          rule="schema-violation", hint=hint))
    return out


def _odd_reason(path: KeyPath, value: Any) -> str:
    where = format_key_path(path)
    return (f"{where} is {value!r}, not a finite number" if isinstance(value, float)
            else f"{where} is {value}, beyond the 64-bit integers the trainer can read")


def run_section(profile: Profile) -> dict[str, Any]:
    """``[run]`` of ``profile`` (empty when absent), checked against its part of the schema:
    every key it holds has the schema's type. Otherwise a :class:`LoracError` (exit 2) that
    names the first wrong key at its file:line:col, so that ``lorac run --force`` cannot
    launch accelerate with ``gpus = "abc"``. Everything that launches reads ``[run]`` here."""

    from lorac.core.diagnostics import LoracError

    run = profile.data.get("run", {})
    problems = [(path, _odd_reason(path, value)) for path, value in _odd_numbers(run, ("run",))]
    schema = load_schema()["properties"]["run"]
    problems += [(e.path, e.message) for e in _evaluator().errors(run, schema, ("run",))]
    if problems:
        path, message = problems[0]
        others = len({p for p, _ in problems} - {path})
        more = f" (and {others} more: lorac lint lists them)" if others else ""
        raise LoracError(f"{profile.where(path).location()}: {message}{more}")
    return run
