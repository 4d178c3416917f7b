"""LRC673: musubi-tuner's DDP options where they do nothing.

File:line references are to musubi-tuner at the commit of ``backends/musubi/pin.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule

#: musubi's DDP options (src/musubi_tuner/training/parser_common.py:258-275).
DDP_OPTIONS = ("ddp_timeout", "ddp_gradient_as_bucket_view", "ddp_static_graph")
SETUP = "src/musubi_tuner/training/accelerator_setup.py"


def _count(profile: Profile, key: str) -> int:
    value = profile.get("run", key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


class MusubiDdpOptionIdle(Rule):
    """What it does
    Reports musubi-tuner's ``ddp_timeout``, ``ddp_gradient_as_bucket_view`` and
    ``ddp_static_graph`` in a run of one process (``[run] gpus × num_machines`` = 1), and
    ``ddp_timeout`` with ``gpus = 1`` on each of several machines.

    Why is this bad?
    musubi hands the three options to accelerate's process-group and DistributedDataParallel
    settings (``src/musubi_tuner/training/accelerator_setup.py:82-102``); a run of one process
    has neither, so the options change nothing although the profile says they are tuned. The
    timeout (and the process-group settings with it) is passed only where the machine sees
    more than one GPU (``accelerator_setup.py:91``): a machine of one GPU in a job of several
    machines waits with accelerate's default timeout.

    Example
        [training]
        ddp_timeout = 60
        [run]
        gpus = 1

    Use instead
    Drop the options from a one-GPU profile; set them where ``[run] gpus`` is above 1.

    Fix safety
    No fix.
    """

    code = "LRC673"
    name = "musubi-ddp-option-idle"
    severity = Severity.WARNING
    groups = ("musubi",)

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        profile = ctx.profile
        if profile.backend != "musubi":
            return
        gpus, machines = _count(profile, "gpus"), _count(profile, "num_machines")
        options = profile.options()
        for name in DDP_OPTIONS:
            if name not in options:
                continue
            value, kp = options[name]
            if value is None or value is False:
                continue
            if gpus * machines == 1:
                yield self.at(profile, kp, f"{name} does nothing in a run of one process: "
                              "musubi-tuner passes it to the process group and DDP settings "
                              f"({SETUP}:82-102), which a one-GPU run does not have",
                              hint="remove it, or set [run] gpus above 1")
            elif name == "ddp_timeout" and gpus == 1:
                yield self.at(profile, kp, "ddp_timeout applies only on a machine that sees "
                              f"more than one GPU ({SETUP}:91); with gpus = 1 on each "
                              "machine, accelerate's default timeout may apply")


RULES = (MusubiDdpOptionIdle,)


@hookimpl
def lorac_rules() -> list[Rule]:
    """musubi-tuner's DDP options."""

    return [cls() for cls in RULES]
