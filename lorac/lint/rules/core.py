"""Rules reported by the pipeline itself: loading, resolving and validating a profile.

These rules are never "checked": the stage that finds the problem reports it. They exist here
so that ``lorac explain``, ``lorac rules`` and rule selection treat them like every other rule.
"""

from __future__ import annotations

from lorac.core.diagnostics import Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import Rule


class _Pipeline(Rule):
    scope = "pipeline"


class InvalidToml(_Pipeline):
    """What it does
    Reports a profile that is not valid TOML, at the parser's line and column.

    Why is this bad?
    Nothing else can be checked in a file that does not parse; a trainer that reads it would
    stop at start-up, or worse, a hand-rolled loader would read half of it.

    Example
        network_dim = 32
        network_alpha = = 16

    Use instead
        network_alpha = 16

    Fix safety
    No fix: only a person knows what was meant.
    """

    code = "LRC001"
    name = "invalid-toml"


class NotUtf8Text(_Pipeline):
    """What it does
    Reports a file that is binary or not UTF-8, as TOML requires.

    Why is this bad?
    TOML is UTF-8 by definition; kohya's loader (the ``toml`` package) fails on other
    encodings, and a binary file named ``.toml`` is a mistake in the repository.

    Example
    A profile saved as Latin-1 with ``class_tokens = "café"``.

    Use instead
    Save the file as UTF-8.

    Fix safety
    No fix.
    """

    code = "LRC002"
    name = "not-utf8-text"


class UnreadableFile(_Pipeline):
    """What it does
    Reports a file that cannot be read (permissions, a broken link) or is too large to be a
    configuration file (over 4 MiB).

    Why is this bad?
    lorac cannot vouch for what it cannot read.

    Example
    ``profiles/final.toml`` with mode 000.

    Use instead
    Make the file readable, or move non-configuration data out of the linted paths.

    Fix safety
    No fix.
    """

    code = "LRC003"
    name = "unreadable-file"


class UnknownKey(_Pipeline):
    """What it does
    Reports a key that the profile schema does not know: a lorac section key or a trainer
    option that no supported trainer script has. It suggests the closest known key.

    Why is this bad?
    kohya's ``--config_file`` loader keeps unknown keys silently and ai-toolkit reads its
    YAML with ``kwargs.get``: a misspelt ``netwrok_alpha`` is ignored and the run trains with
    the default alpha of 1 — a 32× smaller update at rank 32, found out hours later.

    Example
        [network]
        netwrok_alpha = 32

    Use instead
        [network]
        network_alpha = 32

    Fix safety
    No automatic fix: the closest name is a guess; the hint names it.
    """

    code = "LRC004"
    name = "unknown-key"


class SchemaViolation(_Pipeline):
    """What it does
    Reports a value that does not match the profile schema: a wrong type, a value outside
    the allowed choices, a malformed ``[profile]`` entry.

    Why is this bad?
    kohya does not convert or check values read from ``--config_file``: a string where a float
    is wanted crashes deep inside the optimizer, after the model has loaded.

    Example
        learning_rate = "1e-4"

    Use instead
        learning_rate = 1e-4

    Fix safety
    No fix.
    """

    code = "LRC005"
    name = "schema-violation"


class UnusedSuppression(_Pipeline):
    """What it does
    Reports a ``# lorac: ignore[CODE]`` comment that silenced nothing.

    Why is this bad?
    A stale suppression hides the next real finding on that line.

    Example
        network_alpha = 32  # lorac: ignore[LRC104]   (alpha is fine now)

    Use instead
    Delete the comment.

    Fix safety
    No fix yet.
    """

    code = "LRC006"
    name = "unused-suppression"
    severity = Severity.WARNING


class DuplicateOption(_Pipeline):
    """What it does
    Reports a trainer option set in two sections of one resolved profile.

    Why is this bad?
    kohya flattens the sections of ``--config_file``: one of the two values is silently
    dropped, and which one depends on section order.

    Example
        [network]
        learning_rate = 1e-4
        [optimizer]
        learning_rate = 4e-4

    Use instead
    Set each option once.

    Fix safety
    No fix.
    """

    code = "LRC007"
    name = "duplicate-option"


class ExtendsNotFound(_Pipeline):
    """What it does
    Reports an ``extends`` that names no profile file in the same folder (or a path outside
    it), with the whole chain.

    Why is this bad?
    The profile cannot be resolved; every value it meant to inherit is missing.

    Example
        [profile]
        extends = "bsae"

    Use instead
        [profile]
        extends = "base"

    Fix safety
    No fix.
    """

    code = "LRC011"
    name = "extends-not-found"


class ExtendsCycle(_Pipeline):
    """What it does
    Reports ``extends`` chains that loop back on themselves, naming the loop.

    Why is this bad?
    A cycle has no root: there is no value the profile could resolve to.

    Example
    ``a.toml`` extends ``b``, ``b.toml`` extends ``a``.

    Use instead
    Move the shared values into a base profile that extends nothing.

    Fix safety
    No fix.
    """

    code = "LRC012"
    name = "extends-cycle"


class UndefinedVariable(_Pipeline):
    """What it does
    Reports a ``${name}`` reference to a variable that no ``[vars]`` table in the extends
    chain defines (with the closest defined name), or a malformed ``${…}``.

    Why is this bad?
    The value would reach the trainer as the literal text ``${rank}``.

    Example
        [vars]
        rank = 32
        [network]
        network_dim = "${rnak}"

    Use instead
        network_dim = "${rank}"

    Fix safety
    No fix.
    """

    code = "LRC201"
    name = "undefined-variable"


class UndefinedEnvVar(_Pipeline):
    """What it does
    Reports ``${env:NAME}`` when ``NAME`` is not set and the reference has no default.

    Why is this bad?
    Shell scripts that read ``$MODEL_DIR`` unset get an empty string and train on the wrong
    path, or fail after minutes of start-up. lorac stops before launching.

    Example
        pretrained_model_name_or_path = "${env:MODEL_DIR}/flux1-dev.safetensors"

    Use instead
        pretrained_model_name_or_path = "${env:MODEL_DIR:-/models}/flux1-dev.safetensors"

    Fix safety
    No fix.
    """

    code = "LRC202"
    name = "undefined-env-var"


class VariableCycle(_Pipeline):
    """What it does
    Reports ``[vars]`` entries that reference each other in a loop.

    Why is this bad?
    The variables have no value.

    Example
        [vars]
        a = "${b}"
        b = "${a}"

    Use instead
    Give one of them a literal value.

    Fix safety
    No fix.
    """

    code = "LRC203"
    name = "variable-cycle"


class ForbiddenRunEnvName(_Pipeline):
    """What it does
    Reports a ``[run.env]`` name that no environment can carry (``"BAD-NAME"``, ``"A=B"``), or
    that the shell, the launcher or lorac owns: bash's read-only and special variables
    (``SHELLOPTS``, ``BASHOPTS``, ``BASH_ENV``, ``IFS``, ``CDPATH``, ``EUID``, ``PPID``, every
    ``BASH*``), what ``accelerate launch`` and torchrun set for each process
    (``ACCELERATE_MIXED_PRECISION``, ``OMP_NUM_THREADS``, ``MASTER_ADDR``, ``RANK``,
    ``WORLD_SIZE``, ``TORCHELASTIC_*``), and lorac's own ``LORAC_*``.

    Why is this bad?
    ``[run.env]`` is the trainer's environment. ``SHELLOPTS = "braceexpand"`` stops a launch
    script (``SHELLOPTS: readonly variable``) and changes every shell the trainer starts;
    ``BASH_ENV`` makes each of them source a file; the launcher overwrites
    ``OMP_NUM_THREADS``, ``MASTER_PORT`` or ``RANK`` from its own options, so the value here
    never arrives; ``LORAC_SD_SCRIPTS`` here reaches only the trainer, not lorac, and chooses
    no checkout. ``lorac build`` and ``lorac run`` stop on it.

    Example
        [run.env]
        SHELLOPTS = "braceexpand"
        OMP_NUM_THREADS = "8"

    Use instead
        [run]
        num_cpu_threads_per_process = 8

    Fix safety
    No fix; the hint names the ``[run]`` key that sets the value, where there is one.
    """

    code = "LRC209"
    name = "forbidden-run-env-name"


RULES = (InvalidToml, NotUtf8Text, UnreadableFile, UnknownKey, SchemaViolation,
         UnusedSuppression, DuplicateOption, ExtendsNotFound, ExtendsCycle, UndefinedVariable,
         UndefinedEnvVar, VariableCycle, ForbiddenRunEnvName)


@hookimpl
def lorac_rules() -> list[Rule]:
    return [cls() for cls in RULES]
