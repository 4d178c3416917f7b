"""Findings of ``lorac import`` (LRC090–LRC096).

The importer reports them while translating a kohya TOML, a kohya_ss GUI preset, an
ai-toolkit YAML or a shell script into a profile; they are registered here so that
``lorac explain`` and ``lorac rules`` know them.
"""

from __future__ import annotations

from lorac.core.diagnostics import Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import Rule


class _Import(Rule):
    scope = "pipeline"
    severity = Severity.WARNING
    groups = ("import",)


class ImportUnmappedKey(_Import):
    """What it does
    Reports a key of the imported file that has no sd-scripts equivalent (a kohya_ss GUI
    field such as ``LyCORIS_preset`` for a plain LoRA, an ai-toolkit key with no kohya option).

    Why is this bad?
    Dropping it silently would change the recipe without anyone noticing.

    Example
    ``"sample_every_n_epochs": 0`` in a GUI preset that has no sampling set up.

    Use instead
    The key is kept as a ``# not imported`` comment in the profile's section; decide whether
    it mattered and set the matching option by hand.

    Fix safety
    No fix.
    """

    code = "LRC090"
    name = "import-unmapped-key"


class ImportBadValue(_Import):
    """What it does
    Reports a value that does not convert to the type the trainer option wants
    (``--network_dim=abc``), or is none of its choices. A ``--config_file`` value outside the
    choices (also a kohya_ss GUI value: the GUI passes its options in a ``--config_file``) is
    judged by what sd-scripts does with it, since nothing checks it there
    (``library/args.py:1193-1194``): one that changes nothing (``max_token_length = 75``,
    ``dynamo_backend`` without ``torch_compile``) is an LRC095 note, not this finding.

    Why is this bad?
    sd-scripts would reject it at start-up, or worse take it as text from a config file.

    Example
        --learning_rate=1e-4x

    Use instead
        --learning_rate=1e-4

    Fix safety
    No fix.
    """

    code = "LRC091"
    name = "import-bad-value"
    severity = Severity.ERROR


class ImportUnknownValue(_Import):
    """What it does
    Reports a value lorac cannot know without running something: command substitution
    (``$(…)``, backticks) or a variable that nothing in the script or its env files sets.

    Why is this bad?
    Importing never executes the script; the value must be written into the profile.

    Example
        --output_name=$(date +%s)

    Use instead
        output_name = "flux_fast"

    Fix safety
    No fix.
    """

    code = "LRC092"
    name = "import-unknown-value"


class ImportUnknownOption(_Import):
    """What it does
    Reports an option the trainer script does not define, with the closest known name.

    Why is this bad?
    argparse stops on it when given on the command line; in a ``--config_file`` it is
    silently kept and ignored.

    Example
        --netwrok_alpha=16

    Use instead
        --network_alpha=16

    Fix safety
    No fix: the option is kept as a comment in the profile.
    """

    code = "LRC093"
    name = "import-unknown-option"


class ImportPlaceholder(_Import):
    """What it does
    Reports a value that is a placeholder rather than a setting (``"put the full path to
    the model here"``, an empty path in a GUI preset).

    Why is this bad?
    The run would fail after start-up, or train on the wrong files.

    Example
        "pretrained_model_name_or_path": ""

    Use instead
    Set the real path, ideally through ``${env:MODEL_DIR}``.

    Fix safety
    No fix.
    """

    code = "LRC094"
    name = "import-placeholder"


class ImportNote(_Import):
    """What it does
    Says how a value was translated when the translation involved a choice (the model family
    guessed from the script name, a GUI field mapped to two options).

    Why is this bad?
    It is not; it is information, so that the choice can be checked.

    Example
    ``model family flux1-dev (from flux_train_network.py)``

    Use instead
    Pass ``--family`` to import when the guess is wrong.

    Fix safety
    No fix.
    """

    code = "LRC095"
    name = "import-note"
    severity = Severity.INFO


class ImportUnsupportedSyntax(_Import):
    """What it does
    Reports shell constructs the importer reads past without evaluating them: heredocs, loops,
    both branches of an ``if``, function bodies.

    Why is this bad?
    The imported values may not be the ones the script uses at run time.

    Example
        if [ "$PROFILE" = fast ]; then RANK=16; else RANK=32; fi

    Use instead
    Check the imported values; keep one profile per branch.

    Fix safety
    No fix.
    """

    code = "LRC096"
    name = "import-unsupported-syntax"


RULES = (ImportUnmappedKey, ImportBadValue, ImportUnknownValue, ImportUnknownOption,
         ImportPlaceholder, ImportNote, ImportUnsupportedSyntax)


@hookimpl
def lorac_rules() -> list[Rule]:
    return [cls() for cls in RULES]
