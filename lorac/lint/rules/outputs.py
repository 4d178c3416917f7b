"""LRC008 — a trainer output name that leads out of the run folder.

The options and the test are :data:`lorac.core.outputs.OUTPUT_NAMES` and
:func:`lorac.core.outputs.output_name_problem`, which ``lorac run`` applies again before it
launches (so ``--force`` cannot get past it). The output folders themselves
(:data:`lorac.core.outputs.RUN_FOLDER_PATHS`) are not judged: ``lorac run`` replaces them with
folders inside the run folder, and an absolute ``output_dir`` is an ordinary choice for the
``train.sh`` of ``lorac build``.
"""

from __future__ import annotations

from collections.abc import Iterator

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.core.outputs import OUTPUT_NAMES, output_name_problem, quoted
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule


class OutputNameLeavesRunFolder(Rule):
    """What it does
    Reports an ``output_name`` or ``log_prefix`` that is not a plain name: an absolute path,
    a ``..`` component, or a path separator. The finding is at the value, in the file that
    sets it. ``lorac run`` refuses such a name before it launches, even with ``--force``.

    Why is this bad?
    ``lorac run`` puts every run's outputs in its own ``runs/PROFILE-TIME/output`` (it
    replaces ``output_dir``, ``logging_dir`` and ``console_log_file``), but the trainer joins
    the name onto that folder: kohya with ``os.path.join(output_dir, output_name +
    ".safetensors")`` (an absolute name replaces the folder, ``..`` climbs out) and
    ``logging_dir + "/" + log_prefix``, ai-toolkit with ``training_folder/name``. So
    ``output_name = "../../final-20250101-120000/output/flux_final"`` makes a second run
    overwrite the first run's LoRA, and ``"/workspace/loras/flux"`` overwrites whatever is
    there. A name with ``/`` writes into a subfolder the trainer may not create.

    Example
        [saving]
        output_name = "../elsewhere/flux_final"

    Use instead
        [saving]
        output_name = "flux_final"

    ``[run] runs_dir`` moves ``runs/`` elsewhere (another disk) when that was the intent.

    Fix safety
    No fix: only a person knows which name was meant.
    """

    code = "LRC008"
    name = "output-name-leaves-run-folder"
    severity = Severity.ERROR
    groups = ("outputs",)

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        profile = ctx.profile
        options = profile.options()
        for option in OUTPUT_NAMES:
            if option in options:
                value, kp = options[option]
                why = output_name_problem(option, value)
                if why is not None:
                    yield self.at(profile, kp, f"{option} = {quoted(value)} {why}")


@hookimpl
def lorac_rules() -> list[Rule]:
    return [OutputNameLeavesRunFolder()]
