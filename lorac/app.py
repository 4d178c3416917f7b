"""The commands as plain functions: options in, exit code out.

:mod:`lorac.cli` parses the command line into the frozen option objects below and calls these
functions; nothing here imports click. Reports go to ``out`` (stdout), chatter to ``err``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from lorac.core.diagnostics import (
    Diagnostic,
    ExitCode,
    LoracError,
    Severity,
    exit_code_for,
    format_key_path,
    printable,
    render_github,
    render_json,
    render_sarif,
    render_text,
    sort_diagnostics,
)


@dataclass(frozen=True)
class Io:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


def guarded(call: Any, verbose: bool = False) -> int:
    """Run ``call()`` under the one top-level error policy: a :class:`LoracError` is one line
    and its exit code, Ctrl-C is 130, anything else is an internal error (exit 3) whose
    traceback only ``-v`` shows. Bad input never prints a traceback."""

    try:
        return int(call() or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LoracError as exc:
        sys.stderr.write(f"lorac: error: {printable(exc.message)}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("lorac: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if verbose:
            raise
        sys.stderr.write(f"lorac: internal error: {exc.__class__.__name__}: {printable(exc)} "
                         "(rerun with -v for the traceback)\n")
        return int(ExitCode.INTERNAL)


def _settings(overrides: dict[str, Any] | None = None):
    from lorac.config.settings import load_settings

    return load_settings(Path.cwd(), overrides)


def _plugins():
    from lorac.lint.plugins import get_plugins

    return get_plugins()


def render(diags: list[Diagnostic], fmt: str, rules: Any = ()) -> str:
    from lorac import __version__

    if fmt == "json":
        return render_json(diags)
    if fmt == "sarif":
        return render_sarif(diags, rules, __version__)
    if fmt == "github":
        return render_github(diags)
    return render_text(diags)


# --------------------------------------------------------------------------- lint


class LintOptions(NamedTuple):
    paths: tuple[str, ...] = ()
    fmt: str = "text"
    fail_on: str | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    fix: bool = False
    unsafe_fixes: bool = False
    dataset: bool = True
    argv: tuple[str, ...] | None = None  # the command line after ``lint``, for the cache


def lint(opts: LintOptions, io: Io) -> int:
    from lorac.lint import cache as lint_cache
    from lorac.lint.driver import lint as run_lint

    overrides: dict[str, Any] = {}
    if opts.select:
        overrides["select"] = list(opts.select)
    if opts.ignore:
        overrides["ignore"] = list(opts.ignore)
    if opts.fail_on:
        overrides["fail-on"] = opts.fail_on
    settings = _settings(overrides)
    plugins = _plugins()
    paths = [Path(p) for p in opts.paths] or [settings.profiles if settings.profiles.exists()
                                               else Path("profiles")]
    options = {"dataset": opts.dataset}
    report = run_lint(paths, settings, plugins, options=options)
    diags = report.diagnostics
    if opts.fix or opts.unsafe_fixes:
        from lorac.lint.fix import apply_fixes

        fixed = apply_fixes(diags, unsafe=opts.unsafe_fixes)
        if fixed:
            io.err.write(f"fixed {fixed} finding(s)\n")
            report = run_lint(paths, settings, plugins, options=options)
            diags = report.diagnostics
    text = render(diags, opts.fmt, list(plugins.rules.values()))
    io.out.write(text)
    code = report.exit_code(settings.fail_on)
    if opts.fmt == "text":
        _summary(diags, io)
    if opts.argv is not None and not (opts.fix or opts.unsafe_fixes):
        lint_cache.store(list(opts.argv), [str(p) for p in paths], report, text, int(code))
    return int(code)


def _summary(diags: list[Diagnostic], io: Io) -> None:
    if not diags:
        io.err.write("All checks passed.\n")
        return
    counts = {s: sum(1 for d in diags if d.severity == s) for s in Severity}
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in sorted(counts.items(), reverse=True)
             if n]
    fixable = sum(1 for d in diags if d.fixable and d.fix_safe)
    tail = f"; {fixable} fixable with --fix" if fixable else ""
    io.err.write(f"Found {', '.join(parts)}{tail}.\n")


# --------------------------------------------------------------------------- show / diff


def profile_path(name: str, settings: Any = None) -> Path:
    """The file of profile ``name`` (under ``settings.profiles``), or a :class:`LoracError`."""
    from lorac.config.profile import find_profile

    settings = settings if settings is not None else _settings()
    path = find_profile(name, settings.profiles)
    if not path.exists():
        raise LoracError(f"no profile {name!r} (looked for {path})")
    return path


def load_profile(name: str, settings: Any = None) -> Any:
    """Profile ``name`` resolved, or a :class:`LoracError` naming the first error that stops it
    resolving. Validation runs only on that failure."""
    from lorac.config.profile import resolve
    from lorac.lint.driver import check_profile

    res = resolve(profile_path(name, settings))
    if res.profile is None:
        errors = [d for d in check_profile(res) if d.severity >= Severity.ERROR]
        first = errors[0] if errors else None
        why = f": {first.path}:{first.line}: {first.message}" if first else ""
        raise LoracError(f"profile {name!r} cannot be resolved{why}")
    return res.profile


def _resolve_named(name: str):
    from lorac.config.profile import resolve
    from lorac.lint.driver import check_profile

    res = resolve(profile_path(name))
    return res, sort_diagnostics(check_profile(res))


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
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _leaves(data: Any, base: tuple = ()) -> dict[tuple, Any]:
    out: dict[tuple, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, (dict, list)) and v and not (
                    isinstance(v, list) and not any(isinstance(i, dict) for i in v)):
                out.update(_leaves(v, (*base, k)))
            else:
                out[(*base, k)] = v
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.update(_leaves(v, (*base, i)))
    return out


def leaves_with_provenance(profile: Any) -> dict[str, str]:
    """Every leaf of ``profile.data`` (as a dotted key path) and where its value was written."""

    return {format_key_path(k): str(profile.where(k)) for k in _leaves(profile.data)}


def _printable_provenance(profile: Any) -> dict[str, str]:
    """:func:`leaves_with_provenance` with keys and places fit to print (credentials masked)."""

    from lorac.core.secrets import scrub_message

    return {scrub_message(k): scrub_message(v) for k, v in leaves_with_provenance(profile).items()}


def _printable(data: Any) -> Any:
    """``data`` with credentials masked (``*** (hf_a… (37 chars))``), for printing."""

    from lorac.core.secrets import known_secrets, redact_data

    return redact_data(data, known_secrets())


class ShowOptions(NamedTuple):
    profile: str
    fmt: str = "text"


def show(opts: ShowOptions, io: Io) -> int:
    from lorac.core.secrets import scrub_message

    res, diags = _resolve_named(opts.profile)
    if res.profile is None:
        io.err.write(render_text(diags))
        return int(ExitCode.FINDINGS)
    profile = res.profile
    if opts.fmt == "json":
        body = {
            "profile": scrub_message(profile.name), "path": scrub_message(profile.path),
            "chain": [scrub_message(p) for p in profile.chain],
            "data": _printable(profile.data), "provenance": _printable_provenance(profile),
        }
        io.out.write(json.dumps(body, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        chain = " → ".join(printable(p) for p in profile.chain)
        io.out.write(f"# {printable(profile.name)}: {chain}\n")
        # (a top-level key that should be a table is shown as written)
        _show_table(io, profile, (), profile.data)
    if diags:
        io.err.write(render_text(diags))
    return int(exit_code_for(diags, Severity.ERROR))


def _show_table(io: Io, profile: Any, path: tuple, table: dict, header: str | None = None) -> None:
    """``table`` (of the resolved profile) as TOML lines, each with where it was written: keys
    and values masked (:func:`_printable`) and escaped (:func:`printable`); positions are
    looked up with the real keys."""

    if path:
        io.out.write(f"\n{printable(header or '[' + format_key_path(path) + ']')}\n")
    lines = {}
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            ((shown_key, shown),) = _printable({key: value}).items()
            lines[key] = printable(f"{toml_key(shown_key)} = {toml_value(shown)}")
    width = max((len(line) for line in lines.values()), default=0)
    for key, line in lines.items():
        io.out.write(f"{line.ljust(width)}  # {printable(profile.where((*path, key)))}\n")
    for key, value in table.items():
        if isinstance(value, dict):
            _show_table(io, profile, (*path, key), value)
        elif _is_table_array(value):
            for i, item in enumerate(value):
                _show_table(io, profile, (*path, key, i), item,
                            f"[[{format_key_path((*path, key))}]]")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


class DiffOptions(NamedTuple):
    a: str
    b: str
    fmt: str = "text"


def diff(opts: DiffOptions, io: Io) -> int:
    from lorac.core.secrets import scrub_message

    left, ldiags = _resolve_named(opts.a)
    right, rdiags = _resolve_named(opts.b)
    if left.profile is None or right.profile is None:
        io.err.write(render_text(sort_diagnostics(ldiags + rdiags)))
        return int(ExitCode.FINDINGS)
    la, lb = _leaves(left.profile.data), _leaves(right.profile.data)
    # compared as they are, shown with credentials masked
    pa, pb = _leaves(_printable(left.profile.data)), _leaves(_printable(right.profile.data))
    skip = {("profile", "extends"), ("profile", "description")}
    rows = []
    for key in sorted(set(la) | set(lb), key=lambda k: [str(p) for p in k]):
        if key in skip or la.get(key, _MISSING) == lb.get(key, _MISSING):
            continue
        rows.append({
            "key": scrub_message(format_key_path(key)),
            opts.a: pa.get(key, None), opts.b: pb.get(key, None),
            "only": opts.a if key not in lb else opts.b if key not in la else None,
            "where": {opts.a: scrub_message(str(left.profile.where(key))) if key in la else None,
                      opts.b: scrub_message(str(right.profile.where(key))) if key in lb
                      else None},
        })
    if opts.fmt == "json":
        io.out.write(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n")
        return 0
    if not rows:
        io.out.write(f"{printable(opts.a)} and {printable(opts.b)} resolve to the same values\n")
        return 0
    for row in rows:
        a = "(unset)" if row["only"] == opts.b else toml_value(row[opts.a])
        b = "(unset)" if row["only"] == opts.a else toml_value(row[opts.b])
        io.out.write(printable(f"{row['key']}: {a} → {b}") + "\n")
        where_a, where_b = row["where"][opts.a], row["where"][opts.b]
        io.out.write(f"    {printable(opts.a)}: {printable(where_a or '-')}\n"
                     f"    {printable(opts.b)}: {printable(where_b or '-')}\n")
    return 0


_MISSING = object()


# --------------------------------------------------------------------------- rules / explain


def rules(fmt: str, io: Io) -> int:
    plugins = _plugins()
    rows = [{"code": r.code, "name": r.name, "family": r.family, "severity": str(r.severity),
             "fix": r.fix, "summary": r.summary} for r in plugins.rules.values()]
    if fmt == "json":
        io.out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    for r in rows:
        fix = {"safe": "fix", "unsafe": "unsafe-fix", "none": ""}[r["fix"]]
        io.out.write(f"{r['code']}  {r['name']:<34} {r['family']:<22} {r['severity']:<8} "
                     f"{fix}\n")
    return 0


def explain(code: str, io: Io) -> int:
    plugins = _plugins()
    key = code.strip().upper()
    rule = plugins.rules.get(key)
    if rule is None:
        by_name = {r.name: r for r in plugins.rules.values()}
        rule = by_name.get(code.strip())
    if rule is None:
        raise LoracError(f"unknown rule {code!r} (see `lorac rules`)")
    fix = {"safe": "safe fix available (--fix)", "unsafe": "fix available with --unsafe-fixes",
           "none": "no automatic fix"}[rule.fix]
    io.out.write(f"{rule.code} {rule.name} ({rule.family}; default {rule.severity}; {fix})\n\n")
    io.out.write(rule.doc + "\n")
    return 0


def plugins_list(io: Io) -> int:
    plugins = _plugins()
    for info in plugins.infos:
        kind = "built-in" if info.builtin else "entry point"
        io.out.write(f"{info.name:<34} {info.version:<10} {kind:<12} {info.module}\n")
    io.out.write(f"\n{len(plugins.rules)} rules, backends: "
                 f"{', '.join(sorted(plugins.backends))}\n")
    return 0


def schema(write: bool, check: bool, io: Io) -> int:
    from lorac.config import schema_gen

    if write:
        return schema_gen.main([])
    if check:
        return schema_gen.main(["--check"])
    io.out.write(schema_gen.SCHEMA_FILE.read_text(encoding="utf-8"))
    return 0


# --------------------------------------------------------------------------- build


class BuildOptions(NamedTuple):
    profile: str
    backend: str | None = None
    fmt: str | None = None
    out: str | None = None


def choose_backend(plugins: Any, profile: Any, backend_name: str | None,
                   fmt: str | None) -> tuple[Any, str]:
    """The backend (``backend_name``, else ``[profile] backend``, else kohya) and its format
    (``fmt``, else the backend's first), or a :class:`LoracError` for an unknown format."""

    backend = plugins.backend(backend_name or profile.backend)
    fmt = fmt or backend.formats[0]
    if fmt not in backend.formats:
        raise LoracError(f"backend {backend.name} has no format {fmt!r} "
                         f"(available: {', '.join(backend.formats)})")
    return backend, fmt


def compile_profile(name: str, backend_name: str | None, fmt: str | None, io: Io):
    """Resolve, validate and emit (what ``build`` does before writing): returns the profile,
    backend, format, artifacts and every diagnostic. ``run`` lints instead of validating,
    and shares :func:`choose_backend`."""

    res, diags = _resolve_named(name)
    profile = res.profile
    if profile is None or any(d.severity >= Severity.ERROR for d in diags):
        io.err.write(render_text(diags))
        raise LoracError(f"profile {name!r} has errors; nothing was built", ExitCode.FINDINGS)
    backend, fmt = choose_backend(_plugins(), profile, backend_name, fmt)
    artifacts = backend.emit(profile, fmt)
    all_diags = sort_diagnostics(diags + artifacts.diagnostics)
    return profile, backend, fmt, artifacts, all_diags


def build(opts: BuildOptions, io: Io) -> int:
    from lorac.core.outputs import write_tree

    profile, backend, fmt, artifacts, diags = compile_profile(
        opts.profile, opts.backend, opts.fmt, io)
    if diags:
        io.err.write(render_text(diags))
    if any(d.severity >= Severity.ERROR for d in diags):
        io.err.write("lorac: nothing was written\n")
        return int(ExitCode.FINDINGS)
    from lorac.core.secrets import environment_secrets, scrub, secret_values

    out = Path(opts.out) if opts.out else Path("build") / profile.name
    files = dict(artifacts.files)
    known = secret_values(profile.data) | environment_secrets()
    files["lorac-build.json"] = json.dumps({
        "profile": profile.name, "chain": list(profile.chain), "backend": backend.name,
        "format": fmt, "argv": None if artifacts.argv is None
        else [scrub(str(a), known) for a in artifacts.argv],
        "files": sorted(artifacts.files),
    }, indent=2, ensure_ascii=False) + "\n"
    carried = sorted(n for n, t in artifacts.files.items()
                     if any(len(v) >= 8 and v in t for v in known))
    if carried:  # the trainer needs them there (LRC703 says how to avoid it); never echoed
        io.err.write(f"lorac: warning: {', '.join(carried)} hold(s) a credential from the "
                     f"profile (see LRC703); keep {printable(out)}{os.sep} private\n")
    write_tree(out, files, executable=artifacts.executable)
    io.out.write(f"built {printable(profile.name)} for {backend.name} ({fmt}) in "
                 f"{printable(out)}{os.sep}\n")
    for name in sorted(files):
        io.out.write(f"  {printable(out / name)}\n")
    return 0
