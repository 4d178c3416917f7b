"""LRC640–LRC643 — values sd-scripts takes without a word and then overrides, skips or fails on.

Each is something real configurations carry that the pinned sd-scripts (``backends/kohya/pin.toml``)
accepts at parse time — ``--config_file`` checks no choices, most options are plain strings —
and then ignores or trips over once training starts, read in its source and cited with file and
line. They apply to profiles built for the kohya backend (the default).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.trainers.kohya.rules.compat import _Compat
from lorac.trainers.kohya.rules.options import other_trainer


class _Silent(_Compat):
    def applies(self, ctx: ProfileContext) -> bool:
        return super().applies(ctx) and not other_trainer(ctx.profile)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


class MaxTrainStepsOverridden(_Silent):
    """What it does
    Reports ``max_train_steps`` written together with ``max_train_epochs``.

    Why is this bad?
    ``train_network.py:1206-1211`` replaces ``max_train_steps`` with ``max_train_epochs`` times
    the steps of one epoch whenever ``max_train_epochs`` is set: the step count written is never
    used (sd-scripts only logs "override steps"). A run meant to stop at 400 steps trains 50
    epochs instead — or stops far earlier than the steps promised.

    Example
        max_train_steps = 400
        max_train_epochs = 50

    Use instead
        max_train_steps = 400

    Fix safety
    No fix: which of the two was meant is the person's choice.
    """

    code = "LRC640"
    name = "max-train-steps-overridden"
    severity = Severity.WARNING
    any_family = True

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        found = p.options()
        steps, epochs = found.get("max_train_steps"), found.get("max_train_epochs")
        if steps is None or epochs is None or not _number(epochs[0]) or _number(steps[0]) is None:
            return
        yield self.at(p, steps[1], f"max_train_steps = {steps[0]} is overridden by "
                      f"max_train_epochs = {epochs[0]}: sd-scripts trains {epochs[0]} epochs "
                      "whatever the step count (train_network.py:1206-1211)",
                      hint="remove one of max_train_steps / max_train_epochs")


class SamplePromptsNotAFile(_Silent):
    """What it does
    Reports a ``sample_prompts`` value that is prompt text rather than the path of a prompt
    file (several lines, or words and commas without a ``.txt``/``.toml``/``.json`` ending).

    Why is this bad?
    sd-scripts reads ``sample_prompts`` as a file: ``library/sampling.py:282-284`` logs "No
    prompt file" and makes no sample image at all, and on FLUX with cached text-encoder outputs
    ``flux_train_network.py:266`` loads it at start-up, where ``library/sampling.py:218-230``
    knows only the three endings and fails. The kohya_ss GUI writes its prompt text to a file
    for you; a hand-written ``--config_file`` does not.

    Example
        sample_prompts = "ohwx woman, portrait photo --w 1024 --h 1024"

    Use instead
        sample_prompts = "prompts.txt"   # one prompt a line

    Fix safety
    No fix.
    """

    code = "LRC641"
    name = "sample-prompts-not-a-file"
    severity = Severity.WARNING
    any_family = True
    ENDINGS = (".txt", ".toml", ".json")

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        found = p.options().get("sample_prompts")
        if found is None or not isinstance(found[0], str):
            return
        text = found[0].strip()
        if not text or text.lower().endswith(self.ENDINGS):
            return
        if "\n" not in text and not re.search(r"[,\s]", text):
            return  # one word: a path without an ending, reported by sd-scripts itself
        first = text.splitlines()[0][:60]
        yield self.at(p, found[1], f"sample_prompts holds prompt text ({first!r}), not a "
                      "file: sd-scripts finds no prompt file and makes no sample "
                      "(library/sampling.py:282-284)",
                      hint="write the prompts to a .txt file, one a line, and name it here")


class FluxGuidanceScaleImplausible(_Silent):
    """What it does
    Reports a ``guidance_scale`` outside 1–10 when training FLUX.1-dev.

    Why is this bad?
    FLUX.1-dev is guidance-distilled: ``flux_train_network.py:355-356`` feeds
    ``guidance_scale`` (default 3.5, ``library/flux_train_utils.py:772-777``) to the model's
    guidance input at every training step. The model was distilled on values of a few units;
    a value like 85 trains the LoRA on an input the model never saw, and the result behaves
    differently at the guidance used for inference. (The sample images' guidance is set per
    prompt, ``library/flux_train_utils.py:160``, not by this option.)

    Example
        guidance_scale = 85

    Use instead
        guidance_scale = 1.0

    Fix safety
    No fix.
    """

    code = "LRC642"
    name = "flux-guidance-scale-implausible"
    severity = Severity.WARNING
    kinds = ("flux",)
    LOW, HIGH = 1.0, 10.0

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if p.family != "flux1-dev":
            return
        found = p.options().get("guidance_scale")
        value = _number(found[0]) if found is not None else None
        if value is None or self.LOW <= value <= self.HIGH:
            return
        yield self.at(p, found[1], f"guidance_scale = {found[0]} is outside {self.LOW:g}–"
                      f"{self.HIGH:g}: FLUX.1-dev trains with it as its guidance input at "
                      "every step (flux_train_network.py:355-356; default 3.5)",
                      hint="use 1.0 (or the default 3.5)")


#: ``optimizer_type`` names sd-scripts knows, lower-cased (library/optimizer.py:55-328)
KNOWN_OPTIMIZERS = frozenset(name.lower() for name in (
    "AdamW8bit", "SGDNesterov8bit", "Lion8bit", "PagedAdamW8bit", "PagedLion8bit", "Lion",
    "PagedAdamW", "PagedAdamW32bit", "SGDNesterov", "DAdaptation", "DAdaptAdamPreprint",
    "DAdaptAdaGrad", "DAdaptAdam", "DAdaptAdan", "DAdaptAdanIP", "DAdaptLion", "DAdaptSGD",
    "Prodigy", "Adafactor", "AdamW", "RAdamScheduleFree", "AdamWScheduleFree",
    "SGDScheduleFree"))
#: what ``getattr(torch.optim, name)`` finds (library/optimizer.py:335-342), case-sensitive
TORCH_OPTIMIZERS = frozenset((
    "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "Muon",
    "NAdam", "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam"))
#: ``lr_scheduler`` names ``get_scheduler_fix`` accepts (library/optimizer.py:522-535): the
#: transformers ``SchedulerType`` values, diffusers' piecewise_constant, ``adafactor:LR``
KNOWN_SCHEDULERS = frozenset((
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
    "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr",
    "cosine_warmup_with_min_lr", "warmup_stable_decay", "piecewise_constant"))


class UnknownOptimizerOrScheduler(_Silent):
    """What it does
    Reports an ``optimizer_type`` or ``lr_scheduler`` name the pinned sd-scripts does not
    know (often one a fork of sd-scripts added, such as ``REX`` or ``AdamMini``).

    Why is this bad?
    Neither option has choices, so the name passes the command line and the config file.
    Then ``library/optimizer.py:330-342`` looks an unknown optimizer up in ``torch.optim``
    (``AttributeError``), and ``library/optimizer.py:535`` turns an unknown scheduler into a
    ``SchedulerType`` (``ValueError``): the run stops after the models are loaded.

    Example
        optimizer_type = "adammini"
        lr_scheduler = "REX"

    Use instead
        optimizer_type = "AdamW8bit"
        lr_scheduler = "cosine"

    Fix safety
    No fix.
    """

    code = "LRC643"
    name = "unknown-optimizer-or-scheduler"
    severity = Severity.ERROR
    any_family = True

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        found = p.options()
        optimizer = found.get("optimizer_type")
        if optimizer is not None and isinstance(optimizer[0], str) and optimizer[0] \
                and "." not in optimizer[0] \
                and optimizer[0].lower() not in KNOWN_OPTIMIZERS \
                and optimizer[0] not in TORCH_OPTIMIZERS:
            yield self.at(p, optimizer[1], f"optimizer_type {optimizer[0]!r} is not an "
                          "optimizer of sd-scripts nor of torch.optim: training stops with "
                          "AttributeError (library/optimizer.py:330-342)",
                          hint="use a known name (AdamW8bit, Prodigy, …) or module.Class")
        scheduler = found.get("lr_scheduler")
        if scheduler is not None and isinstance(scheduler[0], str) and scheduler[0] \
                and not p.option("lr_scheduler_type") \
                and not scheduler[0].startswith("adafactor") \
                and scheduler[0] not in KNOWN_SCHEDULERS:
            yield self.at(p, scheduler[1], f"lr_scheduler {scheduler[0]!r} is not a scheduler "
                          "sd-scripts knows: training stops with ValueError "
                          "(library/optimizer.py:535)",
                          hint="use cosine, constant, … or name a class in lr_scheduler_type")


RULES = (MaxTrainStepsOverridden, SamplePromptsNotAFile, FluxGuidanceScaleImplausible,
         UnknownOptimizerOrScheduler)


@hookimpl
def lorac_rules() -> list[Rule]:
    """sd-scripts' silent overrides and late failures."""

    return [cls() for cls in RULES]
