"""LRC2xx: variables and the environment — ``[vars]`` nobody reads, environment variables
defined nowhere, env-file variables nothing reads, one variable with two defaults, and one
setting defined in several files. (LRC201–203 are reported by the resolver; see core.py.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lorac.core.diagnostics import DELETE, Diagnostic, Edit, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProjectContext, Rule
from lorac.lint.rules.hygiene import _sh, model, references

if TYPE_CHECKING:
    from lorac.config.document import Document
    from lorac.scan.shell import Assignment

#: Variables read by programs (not by scripts): exporting them is their use.
RUNTIME_PREFIXES = (
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "DIFFUSERS_", "TORCH", "PYTORCH_", "CUDA_",
    "NCCL_", "ACCELERATE_", "OMP_", "MKL_", "WANDB_", "PYTHON", "LD_", "XDG_", "TOKENIZERS_",
    "BNB_", "TF_", "LC_", "NVIDIA_", "SAFETENSORS_", "XFORMERS_", "TRITON_", "PIP_",
    "LORAC_",
)
RUNTIME_NAMES = {"PATH", "HOME", "LANG", "TZ", "TERM", "SHELL", "USER", "TMPDIR"}


def runtime_variable(name: str) -> bool:
    """True for variables that programs read from the environment (HF_HOME, CUDA_…)."""

    return name in RUNTIME_NAMES or name.startswith(RUNTIME_PREFIXES)


def _env_default(a: Assignment) -> str | None:
    """The default an env-file assignment gives its variable: ``X=${X:-d}`` → ``d``,
    ``X=value`` → ``value``; None for anything else."""

    return a.fallback[1] if a.fallback and a.fallback[0] == a.name else a.literal


def readers(project: ProjectContext) -> dict[str, list[tuple[str, int]]]:
    """Variable name → places that read it: shell/env references (not a variable's own
    ``X=${X:-d}`` definition) and profile ``${env:X}`` references; once per lint run."""

    return project.memo("lorac.variables.readers", lambda: _readers(project))


def _readers(project: ProjectContext) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for path, sc in model(project).scans.items():
        own = {(a.name, a.line) for a in sc.assignments}
        for ref in sc.refs:
            if (ref.name, ref.line) in own:
                continue
            out.setdefault(ref.name, []).append((path, ref.line))
    for profile in project.profiles:
        for ref in profile.references:
            if ref.kind == "env":
                out.setdefault(ref.name, []).append((ref.where.path, ref.where.line))
    if any(model(project).env_files.values()):
        for name, places in references(project).variables.items():
            out.setdefault(name, []).extend(places)
    return out


class UnusedVariable(Rule):
    """What it does
    Reports a ``[vars]`` entry that no profile using its file references.

    Why is this bad?
    A variable that nothing reads looks like a knob; changing it does nothing.

    Example
        [vars]
        rank = 32
        lr = 1e-4          # nothing says "${lr}"

    Use instead
    Delete it, or reference it: ``learning_rate = "${lr}"``.

    Fix safety
    Safe: the entry is removed; no resolved value of a linted profile changes.
    """

    code = "LRC204"
    name = "unused-variable"
    severity = Severity.WARNING
    fix = "safe"
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        used: dict[str, set[str]] = {}
        files: dict[str, Document] = {}
        for profile in ctx.profiles:
            names = {r.name for r in profile.references if r.kind == "var"}
            for path in profile.chain:
                used.setdefault(path, set()).update(names)
                files[path] = profile.documents[path]  # built from the same chain
        for path, doc in sorted(files.items()):
            table = doc.data.get("vars")
            if not isinstance(table, dict):
                continue
            for name in table:
                if name in used.get(path, set()):
                    continue
                line, col = doc.position(("vars", name))
                yield self.in_file(path, line, col,
                                   f"variable {name!r} is defined but never referenced",
                                   key_path=("vars", name),
                                   fix=[Edit(path, ("vars", name), DELETE)],
                                   hint=f"delete it or reference it as \"${{{name}}}\"")


class EnvVarDefinedNowhere(Rule):
    """What it does
    Reports ``${env:NAME}`` without a default when ``NAME`` is set in lorac's own environment
    but no env file in the linted tree (or named in ``env-files``) defines it.

    Why is this bad?
    The profile works on one machine because someone's shell exports ``NAME``; on the
    training pod or in CI it stops (LRC202) or, in a script, trains on an empty path.

    Example
        pretrained_model_name_or_path = "${env:MODEL_DIR}/flux1-dev.safetensors"

    Use instead
    Define it in the project's env file (``export MODEL_DIR=/models``) or give a default:
    ``${env:MODEL_DIR:-/models}``.

    Fix safety
    No fix.
    """

    code = "LRC205"
    name = "env-var-defined-nowhere"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        defined = {a.name for sc in model(ctx).env_files.values() for a in sc.assignments}
        seen: set[tuple[str, int, int]] = set()
        for profile in ctx.profiles:
            for ref in profile.references:
                if ref.kind != "env" or ref.default is not None or not ref.resolved:
                    continue
                if ref.name in defined or runtime_variable(ref.name):
                    continue
                where = (ref.where.path, ref.where.line, ref.where.col)
                if where in seen:
                    continue
                seen.add(where)
                yield self.in_file(*where,
                                   f"environment variable {ref.name} has no default and no env "
                                   "file in the repository defines it (it is set only in "
                                   "this shell)", key_path=ref.key_path,
                                   hint=f"define {ref.name} in an env file or write "
                                   f"${{env:{ref.name}:-default}}")


class UnusedEnvFileVariable(Rule):
    """What it does
    Reports a variable that an env file (``docker/env.sh``, ``.env``) defines and that no
    script, env file or profile reads, and that no Python code (``os.environ["X"]``,
    ``os.getenv("X")``), compose file (``${X}``, an ``environment:`` entry passed through),
    Makefile, Dockerfile or CI workflow of the tree names — one finding per variable, at its
    line. Variables read by programs themselves (``HF_HOME``, ``CUDA_VISIBLE_DEVICES``,
    ``PYTORCH_…``) are exempt.

    Why is this bad?
    It looks like configuration and is not: the audited ``env.sh`` set
    ``FINAL_DROPOUT=0.1`` and ``FINAL_SNR_GAMMA=5.0``, the docs promised them, and no
    training command passed them.

    Example
        export FINAL_DROPOUT="${FINAL_DROPOUT:-0.1}"    # no script says $FINAL_DROPOUT

    Use instead
    Pass it to the trainer (``--network_dropout=${FINAL_DROPOUT}``), move it into a profile,
    or delete it.

    Fix safety
    No fix.
    """

    code = "LRC206"
    name = "unused-env-file-variable"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        read = readers(ctx)
        for path, sc in model(ctx).env_files.items():
            reported: set[str] = set()
            for a in sc.assignments:
                if a.name in reported or a.name in read or runtime_variable(a.name):
                    continue
                reported.add(a.name)
                option = guess_option(a.name)
                hint = (f"pass it to the trainer (--{option}=${{{a.name}}}) or delete it"
                        if option else "reference it or delete it")
                yield self.in_file(path, a.line, a.col,
                                   f"{a.name} is defined here but nothing reads it (no script, "
                                   "env file, profile, Python code, compose file, Makefile or "
                                   "workflow references it)", hint=hint)


_ALIASES = {
    "NOISE_OFFSET": "noise_offset", "DROPOUT": "network_dropout", "SNR_GAMMA": "min_snr_gamma",
    "MIN_SNR_GAMMA": "min_snr_gamma", "GRAD_ACCUM": "gradient_accumulation_steps",
    "RANK": "network_dim", "DIM": "network_dim", "ALPHA": "network_alpha",
    "LR": "learning_rate", "STEPS": "max_train_steps", "EPOCHS": "max_train_epochs",
    "BATCH_SIZE": "train_batch_size", "OPTIMIZER": "optimizer_type",
}


def guess_option(name: str) -> str | None:
    """The trainer option an env variable most likely meant (``FAST_NOISE_OFFSET`` →
    ``noise_offset``), or None."""

    from lorac.config.inventory import load_kohya_inventory

    try:
        inventory = load_kohya_inventory("train_network")
    except (OSError, ValueError, KeyError):
        inventory = None
    parts = name.split("_")
    for i in range(len(parts)):
        tail = "_".join(parts[i:])
        if tail in _ALIASES:
            return _ALIASES[tail]
        if inventory is not None and tail.lower() in inventory.options:
            return tail.lower()
    return None


def _norm(value: str) -> str:
    text = value.strip().strip("\"'")
    try:
        return repr(float(text))
    except ValueError:
        return text


class ConflictingDefaults(Rule):
    """What it does
    Reports a variable given different defaults in two places: an env file's value, a
    script's ``${X:-default}``, a profile's ``${env:X:-default}``.

    Why is this bad?
    Which value a run gets depends on which file happened to be sourced first; the two
    places will be "fixed" one at a time.

    Example
        # docker/env.sh
        export FAST_RANK="${FAST_RANK:-32}"
        # scripts/train.sh
        RANK="${FAST_RANK:-16}"

    Use instead
    Define the default once (in the env file or the profile) and reference it without a
    fallback elsewhere.

    Fix safety
    No fix.
    """

    code = "LRC207"
    name = "conflicting-defaults"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        m = model(ctx)
        sites: dict[str, list[tuple[str, str, int, int]]] = {}
        for path, sc in m.env_files.items():
            for a in sc.assignments:
                value = _env_default(a)
                if value is not None:
                    sites.setdefault(a.name, []).append((value, path, a.line, a.col))
        for path, sc in m.scans.items():
            for ref in sc.refs:
                if ref.default:
                    sites.setdefault(ref.name, []).append((ref.default, path, ref.line, ref.col))
        for profile in ctx.profiles:
            for ref in profile.references:
                if ref.kind == "env" and ref.default:
                    w = ref.where
                    sites.setdefault(ref.name, []).append((ref.default, w.path, w.line, w.col))
        known = None
        for name, found in sorted(sites.items()):
            distinct = list(dict.fromkeys(found))
            if len(distinct) < 2:
                continue  # one definition cannot conflict (and needs no shell evaluation)
            if known is None:
                known = _sh().definitions(m.env_files.values())
            unique = [(_sh().evaluate(v, known) or v, p, ln, c) for v, p, ln, c in distinct]
            first = unique[0]
            seen_lines = {(first[1], first[2])}
            for value, path, line, col in unique[1:]:
                if (path, line) in seen_lines:
                    continue
                seen_lines.add((path, line))
                if _norm(value) != _norm(first[0]):
                    yield self.in_file(path, line, col,
                                       f"{name} defaults to {value!r} here but to "
                                       f"{first[0]!r} at {first[1]}:{first[2]}",
                                       hint="define the default once and reference it "
                                       "without a fallback elsewhere")


class DuplicatedDefinition(Rule):
    """What it does
    Reports a variable that feeds a trainer option in a training script and is defined again
    there although an env file or another script already defines it: a fallback that
    repeats the env file's default (``RANK="${FAST_RANK:-32}"`` when ``env.sh`` already sets
    ``FAST_RANK`` to 32), a definition in a file the script sources (or that sources it,
    directly or through others), or the same value written in another script
    (``RANK=32`` twice). Independent recipe scripts that each set their own value
    (``RANK=16`` in one, ``RANK=64`` in another) are not duplicates.

    Why is this bad?
    The value lives in several places; the next change updates one of them. The audited
    repository defined the rank in ``env.sh`` and again in each of its three scripts.

    Example
        # docker/env.sh:  export FAST_RANK="${FAST_RANK:-32}"
        RANK="${FAST_RANK:-32}"           # scripts/train_flux_fast.sh
        RANK=32                           # scripts/train_dashboard.sh

    Use instead
    Define it once (a profile's ``[vars]``, or the env file) and reference it:
    ``RANK="${FAST_RANK}"``.

    Fix safety
    No fix.
    """

    code = "LRC208"
    name = "duplicated-definition"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        m = model(ctx)
        where: dict[str, list[tuple[str, int, str]]] = {}
        for path, sc in m.scans.items():
            for a in sc.assignments:
                value = _defined_value(a)
                if not a.append and value is not None:
                    where.setdefault(a.name, []).append((path, a.line, value))
        if not m.scripts:
            return
        chain = _sh().source_closure(m.scans)
        env_defaults = {}
        for path, sc in m.env_files.items():
            for a in sc.assignments:
                value = _env_default(a)
                if value is not None:
                    env_defaults.setdefault(a.name, (value, path, a.line))
        for script in m.scripts:
            feeding = set()
            for option in script.invocation.options:
                if option.raw:
                    feeding |= set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", option.raw))
            for a in script.scan.assignments:
                if a.name not in feeding or a.append:
                    continue
                if a.literal is None and not a.fallback:
                    continue
                reasons = []
                if a.fallback and a.fallback[0] in env_defaults:
                    value, path, line = env_defaults[a.fallback[0]]
                    if _norm(value) == _norm(a.fallback[1]):
                        reasons.append(f"its fallback {a.fallback[1]} repeats {a.fallback[0]} "
                                       f"from {path}:{line}")
                mine = _norm(_defined_value(a) or "")
                linked = sorted({f"{p}:{ln}" for p, ln, _ in where.get(a.name, [])
                                 if p != script.path and _linked(chain, script.path, p)})
                same = sorted({f"{p}:{ln}" for p, ln, v in where.get(a.name, [])
                               if p != script.path and not _linked(chain, script.path, p)
                               and _norm(v) == mine})
                if linked:
                    reasons.append(f"{a.name} is also defined in {', '.join(linked)}, in the "
                                   "chain of files this script sources")
                if same:
                    reasons.append(f"{a.name} is also defined in {', '.join(same)} with the "
                                   f"same value {mine}")
                if reasons:
                    yield self.in_file(
                        script.path, a.line, a.col,
                        f"{a.name} (used for the trainer's options) is defined again here: "
                        + "; ".join(reasons),
                        hint="define the value once and reference it everywhere else")


def _defined_value(a: Assignment) -> str | None:
    """What an assignment gives its variable when it is written out: the literal, or the
    default of ``X="${OTHER:-default}"``."""

    if a.literal is not None:
        return a.literal
    return a.fallback[1] if a.fallback else None


def _linked(chain: dict[str, set[str]], one: str, other: str) -> bool:
    """True when one file sources the other, directly or through others."""

    return other in chain.get(one, set()) or one in chain.get(other, set())


RULES = (UnusedVariable, EnvVarDefinedNowhere, UnusedEnvFileVariable, ConflictingDefaults,
         DuplicatedDefinition)


@hookimpl
def lorac_rules() -> list[Rule]:
    return [cls() for cls in RULES]
