"""Resolving a profile: ``extends`` chains, ``[vars]``, ``${env:X}``, with provenance.

A profile file may extend another profile in the same folder (``[profile] extends = "base"``).
Tables merge key by key, child over parent; arrays (``[[dataset.subsets]]``) replace as a
whole. Then strings are interpolated: ``${name}`` reads ``[vars]``, ``${env:NAME}`` and
``${env:NAME:-default}`` read the environment, ``$${`` writes a literal ``${``. A string that
is exactly one reference keeps the referenced value's type (``"${rank}"`` → ``32``); an
environment reference gives text. A default may hold references of its own
(``${env:MODEL_DIR:-${models}}``), expanded when the default is used; its variables count as
used either way. A ``${`` that does not resolve is a finding (LRC201/LRC202), so no emitted
file carries one unnoticed.

Every resolved leaf keeps a :class:`Provenance`: the file, line and column it was written at,
and how its value came to be (written, from a variable, from the environment, a default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.config import document
from lorac.core.diagnostics import Diagnostic, KeyPath, LoracError, Severity

#: Sections that belong to lorac; every other table holds trainer options.
OWN_SECTIONS = ("profile", "vars", "dataset", "run", "trainers")
#: the most text one value may expand to through ``${...}`` references
MAX_EXPANSION = 1024 * 1024

REFERENCE = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
#: how many references may lead through one another (variables, defaults of defaults)
MAX_NESTING = 64
_OPEN = re.compile(r"\$\$?\{")
_TOKEN = re.compile(r"\$\$?\{|\}")
ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.S)
VAR_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def parse_resolution(value: Any) -> tuple[int, int] | None:
    """A ``resolution`` value as sd-scripts reads it: ``1024`` / ``[1024, 768]`` /
    ``"1024,768"`` / ``"1024x768"`` → (width, height); None when unreadable or when a side is
    not positive. (Here, not in :mod:`lorac.scan.dataset`, so the VRAM rules on the lint path can
    read it without importing the dataset scanner.)"""

    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            parts = [value]
        elif isinstance(value, str):
            parts = [int(p) for p in value.replace("x", ",").split(",") if p.strip()]
        elif isinstance(value, (list, tuple)):
            parts = [int(p) for p in value]
        else:
            return None
    except (TypeError, ValueError):
        return None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        return None
    return (parts[0], parts[1])

@dataclass(frozen=True)
class Provenance:
    """Where a resolved value came from."""

    path: str
    line: int
    col: int
    kind: str = "file"  # file | var | env | env-default | default
    detail: str = ""

    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"

    def __str__(self) -> str:
        if self.kind == "file":
            return self.location()
        return f"{self.location()} ({self.kind} {self.detail})".rstrip()


@dataclass(frozen=True)
class Reference:
    """One ``${…}`` occurrence in a profile, for the variable and environment rules."""

    kind: str  # "var" | "env"
    name: str
    default: str | None
    where: Provenance
    key_path: KeyPath
    resolved: bool


@dataclass
class Profile:
    """A resolved profile: plain data plus the provenance of every leaf."""

    name: str
    path: str
    chain: tuple[str, ...]
    data: dict[str, Any]
    provenance: dict[KeyPath, Provenance]
    documents: dict[str, document.Document]
    references: list[Reference] = field(default_factory=list)
    _options: dict[str, tuple[Any, KeyPath]] | None = field(default=None, repr=False,
                                                             compare=False)

    # -- access
    def get(self, *keys: str | int, default: Any = None) -> Any:
        node: Any = self.data
        for k in keys:
            try:
                node = node[k]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def where(self, key_path: KeyPath) -> Provenance:
        """Provenance of ``key_path``, or of its nearest ancestor, or of the file itself."""

        path = tuple(key_path)
        while path:
            if path in self.provenance:
                return self.provenance[path]
            path = path[:-1]
        return Provenance(self.path, 1, 1)

    @property
    def family(self) -> str | None:
        value = self.get("profile", "family")
        return value if isinstance(value, str) else None

    @property
    def backend(self) -> str:
        """``[profile] backend``; kohya when unset or empty (or not a string: a schema error)."""
        value = self.get("profile", "backend")
        return value if isinstance(value, str) and value else "kohya"

    @property
    def description(self) -> str:
        return str(self.get("profile", "description", default=""))

    @property
    def gpus(self) -> list[str]:
        value = self.get("profile", "gpu")
        if isinstance(value, str):
            return [value]
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def option_sections(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for section, table in self.data.items():
            if section not in OWN_SECTIONS and isinstance(table, dict):
                yield section, table

    def options(self) -> dict[str, tuple[Any, KeyPath]]:
        """Trainer options, flattened the way kohya flattens ``--config_file`` sections.

        Later sections win on a duplicate name (the duplicate itself is a lint finding). The
        result is computed once; code that changes :attr:`data` calls :meth:`changed`.
        """

        if self._options is None:
            out: dict[str, tuple[Any, KeyPath]] = {}
            for section, table in self.option_sections():
                for key, value in table.items():
                    out[key] = (value, (section, key))
            self._options = out
        return dict(self._options)

    def changed(self) -> None:
        """Forget what was derived from :attr:`data` (call after editing it)."""

        self._options = None

    def option(self, name: str, default: Any = None) -> Any:
        found = self.options().get(name)
        return default if found is None else found[0]

    def diagnostic(self, code: str, message: str, key_path: KeyPath, *, rule: str = "",
                   severity: Severity = Severity.ERROR, hint: str | None = None,
                   **extra: Any) -> Diagnostic:
        """A diagnostic placed where ``key_path``'s value was written."""

        where = self.where(key_path)
        return Diagnostic(code=code, message=message, path=where.path, line=where.line,
                          col=where.col, severity=severity, rule=rule, key_path=tuple(key_path),
                          hint=hint, **extra)


@dataclass
class Resolution:
    """The outcome of resolving one profile: the profile (None when impossible) + findings."""

    profile: Profile | None
    diagnostics: list[Diagnostic]
    files: list[str]


def display_path(path: Path, base: Path | None = None) -> str:
    base = base or Path.cwd()
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def find_profile(name_or_path: str, folder: Path | None = None) -> Path:
    """``final`` → ``profiles/final.toml``; an existing path is taken as it is."""

    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists() or "/" in name_or_path:
        return candidate
    return (folder or Path("profiles")) / f"{name_or_path}.toml"


def resolve(path: Path, *, env: Mapping[str, str] | None = None,
            cache: dict[Path, document.Document | Diagnostic] | None = None,
            chains: dict[ChainKey, _Merged | None] | None = None) -> Resolution:
    """Resolve the profile file at ``path`` (see the module docstring).

    ``cache`` holds the loaded documents by real path; ``chains`` the files already merged
    over their ancestors (before interpolation), so that linting every file of a long
    ``extends`` chain merges each file once. Pass the same dictionaries for every profile of
    one lint run.
    """

    env = os.environ if env is None else env
    cache = {} if cache is None else cache
    chains = {} if chains is None else chains
    merged = _merged(path, cache, chains)
    if merged is None:  # the chain cannot be resolved: say why, as seen from this file
        diags, files = _chain_failure(path, cache)
        return Resolution(None, diags, files)
    diags = list(merged.diags)
    profile = Profile(name=path.stem, path=merged.chain[0], chain=merged.chain,
                      data=dict(merged.data), provenance=dict(merged.provenance),
                      documents=merged.documents)
    _interpolate(profile, env, diags)
    from lorac.core.secrets import credential_values, remember

    remember(credential_values(profile.data))  # a credential reached through [vars] too
    return Resolution(profile, diags, list(profile.chain))


@dataclass(frozen=True)
class _Merged:
    """A profile file merged over its ancestors, before interpolation (never mutated)."""

    chain: tuple[str, ...]  # the files (display paths): this one first, the root last
    data: dict[str, Any]
    provenance: dict[KeyPath, Provenance]
    documents: dict[str, document.Document]
    diags: tuple[Diagnostic, ...]  # findings that leave the chain resolvable


@dataclass(frozen=True)
class _Step:
    """One file of an ``extends`` chain: where its parent is, or why it has none."""

    doc: document.Document
    parent: Path | None = None
    finding: Diagnostic | None = None
    fatal: bool = False  # the finding stops the chain from resolving


def _step(current: Path, folder: Path, doc: document.Document) -> _Step:
    """Where the parent of ``doc`` (the file ``current``, in the real folder ``folder``) is."""

    table = doc.data.get("profile")
    parent = table.get("extends") if isinstance(table, dict) else None
    if parent is None:
        return _Step(doc)
    kp = ("profile", "extends")
    if not isinstance(parent, str) or not parent.strip() or "\x00" in parent:
        return _Step(doc, finding=_at(doc, kp, "LRC005", "extends must be a profile name "
                                      "(a string)", "schema-violation"))
    target = current.parent / (parent if parent.endswith(".toml") else f"{parent}.toml")
    real = _real(target)  # symbolic links followed: a link may not lead out of the folder
    if not real.is_relative_to(folder):
        return _Step(doc, finding=_at(doc, kp, "LRC011", f"extends target {parent!r} is outside "
                                      f"the profile's folder (it resolves to "
                                      f"{display_path(real)})", "extends-not-found"),
                     fatal=True)
    return _Step(doc, parent=target)


#: a file by its real path and the real folder its ``extends`` is looked up in
ChainKey = tuple[Path, Path]


def _key(current: Path) -> ChainKey:
    return _real(current), _real(current.parent)


def _merged(path: Path, cache: dict, chains: dict[ChainKey, _Merged | None]) -> _Merged | None:
    """``path`` merged over its ancestors (memoized in ``chains``), or None when the chain does
    not resolve. Iterative, so that a chain of any depth walks each new file once."""

    pending: list[tuple[ChainKey, _Step]] = []  # from ``path`` up to the first known file
    seen: set[Path] = set()
    base: _Merged | None = None
    current: Path | None = path
    while current is not None:
        key = _key(current)
        if key in chains:
            base = chains[key]
            if base is None:
                break
            current = None
            continue
        loaded = None if key[0] in seen else load_cached(current, cache)
        if not isinstance(loaded, document.Document):  # a cycle, or a file that does not load
            break
        seen.add(key[0])
        step = _step(current, key[1], loaded)
        pending.append((key, step))
        if step.fatal:
            break
        current = step.parent
    else:
        for key, step in reversed(pending):
            data = _copy_tree(base.data) if base else {}
            prov = dict(base.provenance) if base else {}
            _merge(data, prov, step.doc.plain(), step.doc, ())
            own = (step.finding,) if step.finding else ()
            base = _Merged(chain=(step.doc.path, *(base.chain if base else ())), data=data,
                           provenance=prov,
                           documents={step.doc.path: step.doc,
                                      **(base.documents if base else {})},
                           diags=(*(base.diags if base else ()), *own))
            chains[key] = base
        return base
    for key, _ in pending:
        chains[key] = None
    return None


def _chain_failure(path: Path, cache: dict) -> tuple[list[Diagnostic], list[str]]:
    """Why the chain from ``path`` does not resolve (the messages name the chain as seen from
    ``path``), and the files read on the way."""

    docs: list[document.Document] = []
    seen: list[Path] = []
    known: set[Path] = set()
    current = path
    child: tuple[document.Document, KeyPath] | None = None
    while True:
        real = _real(current)
        if real in known:
            names = " → ".join(display_path(p) for p in [*seen, real])
            return [_at(docs[0], ("profile", "extends"), "LRC012", f"extends cycle: {names}",
                        "extends-cycle")], [d.path for d in docs]
        seen.append(real)
        known.add(real)
        loaded = load_cached(current, cache)
        if isinstance(loaded, Diagnostic):
            if child is not None and loaded.code == "LRC003" and not _exists(current):
                names = " → ".join([*(display_path(p) for p in seen[:-1]),
                                    display_path(current)])
                loaded = _at(*child, "LRC011", f"extends target not found: "
                             f"{display_path(current)} (chain: {names})", "extends-not-found")
            return [loaded], [d.path for d in docs]
        docs.append(loaded)
        step = _step(current, _real(current.parent), loaded)
        if step.parent is None:  # a fatal finding (the end of a chain that resolves has none)
            return [step.finding] if step.finding else [], [d.path for d in docs]
        child = (loaded, ("profile", "extends"))
        current = step.parent


def _at(doc: document.Document, kp: KeyPath, code: str, message: str,
        rule: str) -> Diagnostic:
    line, col = doc.position(kp)
    return Diagnostic(code, message, doc.path, line, col, rule=rule, key_path=kp)


def _real(path: Path) -> Path:
    """``path`` with symlinks resolved, never raising (symlink loops, NUL bytes, long names
    leave it as it is, made absolute; reading it then reports why)."""

    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def load_cached(path: Path, cache: dict) -> document.Document | Diagnostic:
    """The document at ``path``, or the diagnostic saying why it does not load; ``cache`` is
    keyed on the real path (symlinks resolved, never raising), so each file is read once."""

    key = _real(path)
    if key not in cache:
        try:
            cache[key] = document.load(path, display_path(path))
        except document.LoadError as exc:
            cache[key] = exc.diagnostic
    return cache[key]


def _merge(dst: dict, prov: dict, src: dict, doc: document.Document, base: KeyPath) -> None:
    """Merge ``src`` (``doc``'s data at ``base``) over ``dst``; ``prov`` follows. Linear in the
    size of ``src`` and of the values it replaces."""

    for key, value in src.items():
        kp = (*base, key)
        old = dst.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(old, dict):
            line, col = doc.position(kp)
            prov[kp] = Provenance(doc.path, line, col)
            _merge(old, prov, value, doc, kp)
            continue
        if old is not _MISSING:
            _forget(prov, old, kp)
        if isinstance(value, (dict, list)):
            dst[key] = _copy_tree(value)
            _record(prov, value, doc, kp)
        else:  # the common case, a scalar
            dst[key] = value
            line, col = doc.position(kp)
            prov[kp] = Provenance(doc.path, line, col)


_MISSING = object()


def _forget(prov: dict, value: Any, kp: KeyPath) -> None:
    """Drop the provenance of ``value`` (at ``kp``) and of everything inside it."""

    prov.pop(kp, None)
    if isinstance(value, dict):
        for k, v in value.items():
            _forget(prov, v, (*kp, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _forget(prov, v, (*kp, i))


def _copy_tree(value: Any) -> Any:
    """A copy of ``value``'s tables and arrays (the leaves TOML gives are immutable)."""

    if isinstance(value, dict):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


def _record(prov: dict, value: Any, doc: document.Document, kp: KeyPath) -> None:
    line, col = doc.position(kp)
    prov[kp] = Provenance(doc.path, line, col)
    if isinstance(value, dict):
        for k, v in value.items():
            _record(prov, v, doc, (*kp, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _record(prov, v, doc, (*kp, i))


# --------------------------------------------------------------------------- interpolation


class _BadReference(Exception):
    """Text whose ``${…}`` cannot be read: an unclosed ``${``, or nesting that is too deep."""


def _references(text: str) -> list[tuple[int, int, str | None]]:
    """The ``${…}`` references in ``text`` as ``(start, end, body)``, ``body`` None for the
    ``$${`` escape. A body may hold references of its own (``${env:X:-${name}}``: braces
    nest; inside a body an escaped ``$${x}`` is closed by its own brace too).
    :class:`_BadReference` for a ``${`` never closed or nested beyond :data:`MAX_NESTING`
    (found in one pass, before anything is expanded)."""

    out: list[tuple[int, int, str | None]] = []
    pos = 0
    while True:
        m = _OPEN.search(text, pos)
        if m is None:
            return out
        if m.group() == "$${":
            out.append((m.start(), m.end(), None))
            pos = m.end()
            continue
        depth, j = 1, m.end()
        while depth:
            t = _TOKEN.search(text, j)
            if t is None:
                raise _BadReference(f"the '${{' at offset {m.start()} is never closed",
                                    "close it with '}', or write $${ for a literal '${'")
            depth += -1 if t.group() == "}" else 1
            if depth > MAX_NESTING:
                raise _BadReference(f"references nested more than {MAX_NESTING} deep",
                                    "refer to fewer variables in turn")
            j = t.end()
        out.append((m.start(), j, text[m.end():j - 1]))
        pos = j


class _Unresolved(Exception):
    pass


def _interpolate(profile: Profile, env: Mapping[str, str], diags: list[Diagnostic]) -> None:
    raw_vars = profile.data.get("vars", {})
    raw_vars = raw_vars if isinstance(raw_vars, dict) else {}
    done: dict[str, Any] = {}

    def var(name: str, stack: tuple[str, ...], at: KeyPath) -> Any:
        if name in done:
            return done[name]
        if name in stack:
            cycle = " → ".join((*stack, name))
            diags.append(profile.diagnostic("LRC203", f"variable cycle: {cycle}", at,
                                            rule="variable-cycle"))
            raise _Unresolved
        if name not in raw_vars:
            raise KeyError(name)
        value = walk(raw_vars[name], ("vars", name), (*stack, name))
        done[name] = value
        return value

    def expand(text: str, kp: KeyPath, stack: tuple[str, ...], nest: int = 0,
               live: bool = True) -> tuple[Any, bool]:
        """``text`` with its references replaced, and whether all of them resolved. Not
        ``live``: the default of an environment variable that is set; its variable references
        are still looked up (they count as used; a misspelt one is reported), nothing else."""

        try:
            found = _references(text)
        except _BadReference as exc:
            message, hint = exc.args
            diags.append(profile.diagnostic("LRC201", f"malformed reference: {message}", kp,
                                            rule="undefined-variable", hint=hint))
            return text, False
        if not found:
            return text, True
        whole = len(found) == 1 and found[0][2] is not None and found[0][:2] == (0, len(text))
        parts: list[str] = []
        last = 0
        ok = True
        size = len(text)
        for start, end, body in found:
            parts.append(text[last:start])
            last = end
            if body is None:
                parts.append("${")
                continue
            value, good = lookup(body, kp, stack, nest, live)
            ok = ok and good
            if whole and good:
                return value, True
            parts.append(text[start:end] if not good else _as_text(value))
            size += len(parts[-1])
            if size > MAX_EXPANSION:
                raise LoracError(f"{profile.where(kp).location()}: "
                                 f"{'.'.join(str(k) for k in kp)} expands to more than "
                                 f"{MAX_EXPANSION // 1048576} MiB of text; refusing to "
                                 "expand it (variables that double each other?)")
        parts.append(text[last:])
        return "".join(parts), ok

    def lookup(ref: str, kp: KeyPath, stack: tuple[str, ...], nest: int,
               live: bool) -> tuple[Any, bool]:
        where = profile.where(kp)
        if len(stack) + nest >= MAX_NESTING:
            if VAR_REF.match(ref):  # still a use of the variable (LRC204)
                profile.references.append(Reference("var", ref, None, where, kp, False))
            shown = ref if len(ref) <= 60 else ref[:60] + "…"
            diags.append(profile.diagnostic(
                "LRC201", f"references nested more than {MAX_NESTING} deep: ${{{shown}}}",
                kp, rule="undefined-variable", hint="refer to fewer variables in turn"))
            return None, False
        env_match = ENV_REF.match(ref)
        if env_match:
            name, default = env_match.group(1), env_match.group(2)
            good = True
            if default is not None and "${" in default:  # ${env:X:-${name}}: expanded too
                text, good = expand(default, kp, stack, nest + 1, live and name not in env)
                default = _as_text(text) if good else default
            if not live:
                return None, True
            if name in env:
                profile.references.append(Reference("env", name, default, where, kp, True))
                if not nest:
                    _mark(kp, "env", name)
                return env[name], True
            if default is not None:
                profile.references.append(Reference("env", name, default, where, kp, good))
                if not good:  # the default's own reference failed and said why
                    return None, False
                if not nest:
                    _mark(kp, "env-default", f"{name} unset")
                return default, True
            profile.references.append(Reference("env", name, None, where, kp, False))
            diags.append(profile.diagnostic(
                "LRC202", f"environment variable {name} is not set and has no default",
                kp, rule="undefined-env-var",
                hint=f"export {name}=… or write ${{env:{name}:-default}}"))
            return None, False
        if VAR_REF.match(ref):
            try:
                value = var(ref, stack, kp)
            except KeyError:
                profile.references.append(Reference("var", ref, None, where, kp, False))
                known = sorted(raw_vars)
                from difflib import get_close_matches

                close = get_close_matches(ref, known, n=1)
                diags.append(profile.diagnostic(
                    "LRC201", f"undefined variable ${{{ref}}}", kp, rule="undefined-variable",
                    hint=f"did you mean ${{{close[0]}}}?" if close else
                    "define it under [vars]"))
                return None, False
            except _Unresolved:
                return None, False
            profile.references.append(Reference("var", ref, None, where, kp, True))
            if not nest:  # (a reference in a default: the default's reference is marked)
                _mark(kp, "var", ref)
            return value, True
        diags.append(profile.diagnostic(
            "LRC201", f"malformed reference ${{{ref}}}", kp, rule="undefined-variable",
            hint="write ${name} for a [vars] entry or ${env:NAME} / ${env:NAME:-default}"))
        return None, False

    def _mark(kp: KeyPath, kind: str, detail: str) -> None:
        old = profile.where(kp)
        if kp in profile.provenance and old.kind == "file":
            profile.provenance[kp] = Provenance(old.path, old.line, old.col, kind, detail)

    def walk(value: Any, kp: KeyPath, stack: tuple[str, ...] = ()) -> Any:
        if isinstance(value, str):
            return expand(value, kp, stack)[0]
        if isinstance(value, dict):
            return {k: walk(v, (*kp, k), stack) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*kp, i), stack) for i, v in enumerate(value)]
        return value

    resolved: dict[str, Any] = {}
    for section, table in profile.data.items():
        if section == "vars":
            continue
        resolved[section] = walk(table, (section,))
    for name in raw_vars:
        try:
            var(name, (), ("vars", name))
        except (KeyError, _Unresolved):
            pass
    if "vars" in profile.data:  # (walk() built every other value afresh)
        resolved["vars"] = {k: done[k] if k in done else _copy_tree(v)
                            for k, v in raw_vars.items()}
    order = list(profile.data)
    profile.data.clear()
    profile.data.update({k: resolved[k] for k in order})
    profile.changed()


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
