"""``lorac build``: resolve and validate a profile, emit it with a backend, write the files.

:func:`compile_profile` is the emit stage (``lorac run`` shares :func:`choose_backend`);
:func:`build` writes its artifacts atomically into ``build/<profile>/`` with a
``lorac-build.json`` that records what was built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from lorac.core.console import Io
from lorac.core.diagnostics import (
    ExitCode,
    LoracError,
    Severity,
    printable,
    render_text,
    sort_diagnostics,
)


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

    from lorac.lint.driver import resolve_named
    from lorac.lint.plugins import get_plugins

    res, diags = resolve_named(name)
    profile = res.profile
    if profile is None or any(d.severity >= Severity.ERROR for d in diags):
        io.err.write(render_text(diags))
        raise LoracError(f"profile {name!r} has errors; nothing was built", ExitCode.FINDINGS)
    backend, fmt = choose_backend(get_plugins(), profile, backend_name, fmt)
    from lorac.config.trainer_values import for_trainer

    artifacts = backend.emit(for_trainer(profile, backend.name), fmt)
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
