"""Turn kohya sd-scripts' console output into progress events.

sd-scripts writes three kinds of lines that matter, all quoted from the checkout at 37a1cbbc:

* log messages (through ``rich.logging.RichHandler`` when rich is installed, so a line looks like
  ``2026-02-16 10:00:00 INFO     caching latents...     library/dataset.py:802``; matched as
  substrings, never by position) and ``accelerator.print`` lines;
* tqdm bars, redrawn with ``\\r`` (the caller splits on both ``\\r`` and ``\\n``):
  ``steps:  45%|████▌     | 9/20 [00:12<00:15,  1.40s/it, avr_loss=0.123]`` — the training bar is
  ``tqdm(..., desc="steps")`` (train_network.py:1529-1530) with ``avr_loss`` set through
  ``progress_bar.set_postfix`` (train_network.py:1694-1696); caching bars have no description;
* Python tracebacks.

The phase markers, in the order a FLUX LoRA run meets them:

==================  ==============================================================================
phase               marker (file:line)
==================  ==============================================================================
``load``            "Building Flux model" (library/flux_utils.py:107), "Loading state dict from"
                    (flux_utils.py:124, 157, 184, 200, 350, 405), "Building CLIP-L" (:254),
                    "Building AutoEncoder" (:179)
``cache_latents``   "caching latents" (library/dataset.py:752, 802)
``cache_text_encoder`` "move vae and unet to cpu to save memory", "move text encoders to gpu"
                    (flux_train_network.py:237, 245: T5-XXL and CLIP-L reach the GPU *before*
                    the caching message, so the phase starts here), "caching Text Encoder
                    outputs" (library/dataset.py:863, 905), "cache Text Encoder outputs for"
                    (flux_train_network.py:261, 272)
``prepare``         "import network module:" (train_network.py:1050),
                    "prepare optimizer, data loader etc." (train_network.py:1137)
``train``           "running training / 学習開始" (train_network.py:1394), or the ``steps`` bar
``save``            "saving checkpoint:" (train_network.py:879)
``done``            "model saved." (train_network.py:1863)
==================  ==============================================================================

ai-toolkit (``python run.py job.yaml``, :data:`AI_TOOLKIT_MARKERS`, quoted from 27a03a91) meets
them in another order: it loads the models, makes the LoRA, caches latents and text embeddings,
draws baseline samples (in ``prepare``) and trains; its training bar is a ``ToolkitProgressBar``
(a tqdm) whose description is the job's name (jobs/process/BaseSDTrainProcess.py:2484-2490), with
the postfix ``lr: 1.0e-04 loss: 1.234e-01`` (:2694-2698). It prints nothing before its final
save, so ``save`` starts at "Saved checkpoint to" and holds the closing samples; nor anything
after a job that succeeded (run.py:111-134), so its runs never reach ``done``.

Before any marker the phase is ``startup`` (accelerate and imports). A phase's memory is what was
seen between its marker and the next one, so a marker logged after the memory moved would shift the
peak into the phase before: the markers above are the first line of each phase in a FLUX run.
``train`` includes sd-scripts' SHA-256 of the base checkpoint (no log line; ~30 s before step 1).
Phases only move forward, except ``save`` (a checkpoint mid-run), which returns to ``train`` with
the next step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["AI_TOOLKIT_MARKERS", "PHASES", "ProgressEvent", "ProgressParser", "split_lines"]

PHASES = (
    "startup",
    "load",
    "cache_latents",
    "cache_text_encoder",
    "prepare",
    "train",
    "save",
    "done",
)

_MARKERS: tuple[tuple[str, str], ...] = (
    # lorac.run.steps, before each step of a run of several commands (musubi-tuner)
    ("lorac: step cache latents", "cache_latents"),
    ("lorac: step cache text-encoder outputs", "cache_text_encoder"),
    ("lorac: step train", "prepare"),
    ("lorac: step convert for ComfyUI", "save"),
    ("Building Flux model", "load"),
    ("Loading state dict from", "load"),
    ("Building CLIP-L", "load"),
    ("Building AutoEncoder", "load"),
    ("caching latents", "cache_latents"),
    ("move vae and unet to cpu to save memory", "cache_text_encoder"),
    ("move text encoders to gpu", "cache_text_encoder"),
    ("caching Text Encoder outputs", "cache_text_encoder"),
    ("cache Text Encoder outputs for", "cache_text_encoder"),
    ("import network module:", "prepare"),
    ("prepare optimizer, data loader etc.", "prepare"),
    ("running training / 学習開始", "train"),
    ("saving checkpoint:", "save"),
    ("model saved.", "done"),
)

#: ai-toolkit's markers (file:line at 27a03a91).
AI_TOOLKIT_MARKERS: tuple[tuple[str, str], ...] = (
    # toolkit/stable_diffusion_model.py:650 (FLUX), toolkit/models/wan21/wan21.py:397; both
    # print "Loading transformer" before their first weights (:652, wan21.py:345)
    ("Loading Flux model", "load"),
    ("Loading Wan model", "load"),
    ("Loading transformer", "load"),
    ("Caching latents for", "cache_latents"),  # toolkit/dataloader_mixins.py:1912
    ("Caching text_embeddings for", "cache_text_encoder"),  # dataloader_mixins.py:2277
    ("Generating baseline samples before training", "prepare"),  # BaseSDTrainProcess.py:2480
    ("Skipping first sample due to config setting", "prepare"),  # BaseSDTrainProcess.py:2478
    ("Saving at step", "save"),  # BaseSDTrainProcess.py:2715
    ("Saved checkpoint to", "save"),  # BaseSDTrainProcess.py:699
)
_AITK_POSTFIX = re.compile(r"\bloss:\s*(?P<v>[-+0-9.eE]+|nan|inf)")

# tqdm's default bar:
#   "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
# where l_bar is "{desc}: {percentage:3.0f}%|" (desc and its colon absent without a description).
_TQDM = re.compile(
    r"(?:(?P<desc>[^\r\n|:]*):\s*)?(?P<pct>\d{1,3})%\|[^|]*\|\s*"
    r"(?P<n>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[^<\]]*)<(?P<remaining>[^,\]]*),\s*(?P<rate>[^,\]]*)(?:,\s*(?P<postfix>[^\]]*))?\]"
)
_RATE = re.compile(r"(?P<v>[0-9.]+)\s*(?P<unit>s/it|it/s)")
_POSTFIX_ITEM = re.compile(r"(?P<k>[^=,]+)=(?P<v>[^,]*)")
_EXC_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)|[A-Z]\w*Error)\b.*")


@dataclass(frozen=True)
class ProgressEvent:
    """One thing the parser understood in a line.

    kind: ``phase`` (the run entered ``phase``), ``step`` (a ``steps`` bar update: step/total,
    sec_per_it, loss), ``bar`` (another tqdm bar, e.g. caching: step/total within ``phase``),
    ``traceback`` (a traceback began), ``error`` (the exception line that ends a traceback:
    ``message``).
    """

    kind: str
    phase: str
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    sec_per_it: float | None = None
    message: str | None = None


def split_lines(buffer: str) -> tuple[list[str], str]:
    """Split ``buffer`` on ``\\r`` and ``\\n``: the complete lines, and the unfinished rest."""
    parts = re.split(r"\r\n|\r|\n", buffer)
    rest = parts.pop()
    return [p for p in parts if p], rest


def _float(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


class ProgressParser:
    """Stateful: feed it lines in order, get events. ``phase`` is the current phase."""

    def __init__(self, trainer: str = "kohya", step_desc: str = "steps") -> None:
        """``trainer``: ``kohya`` (also musubi-tuner's output) or ``ai-toolkit``;
        ``step_desc``: the description of the training bar (ai-toolkit: the job's name)."""
        self.markers = AI_TOOLKIT_MARKERS if trainer == "ai-toolkit" else _MARKERS
        self.step_desc = step_desc
        self.trainer = trainer
        self.phase = "startup"
        self.step: int | None = None
        self.total: int | None = None
        self.loss: float | None = None
        self.sec_per_it: float | None = None
        self.error: str | None = None
        self._in_traceback = False

    def _enter(self, phase: str) -> ProgressEvent | None:
        if phase == self.phase:
            return None
        if PHASES.index(phase) < PHASES.index(self.phase) and self.phase != "save":
            return None  # phases only move forward (a late "Loading state dict" stays in train)
        self.phase = phase
        return ProgressEvent("phase", phase)

    def feed(self, line: str) -> list[ProgressEvent]:
        events: list[ProgressEvent] = []
        stripped = line.strip()
        if not stripped:
            return events
        if stripped.startswith("Traceback (most recent call last):"):
            self._in_traceback = True
            events.append(ProgressEvent("traceback", self.phase))
            return events
        if self._in_traceback and _EXC_LINE.match(stripped):
            self._in_traceback = False
            self.error = stripped
            events.append(ProgressEvent("error", self.phase, message=stripped))
            return events

        bar = _TQDM.search(line) if "%|" in line else None  # cheap test first
        if bar:
            events.extend(self._bar(bar))
            return events
        for marker, phase in self.markers:
            if marker in line:
                ev = self._enter(phase)
                if ev:
                    events.append(ev)
                break
        return events

    def _bar(self, m: re.Match[str]) -> Iterator[ProgressEvent]:
        desc = (m.group("desc") or "").strip()
        n, total = int(m.group("n")), int(m.group("total"))
        rate = _RATE.search(m.group("rate") or "")
        spi: float | None = None
        if rate:
            v = float(rate.group("v"))
            spi = v if rate.group("unit") == "s/it" else (1.0 / v if v else None)
        if desc != self.step_desc:
            yield ProgressEvent("bar", self.phase, step=n, total=total, sec_per_it=spi)
            return
        ev = self._enter("train")
        if ev:
            yield ev
        loss = None
        if self.trainer == "ai-toolkit":
            found = _AITK_POSTFIX.search(m.group("postfix") or "")
            loss = _float(found.group("v")) if found else None
        for item in _POSTFIX_ITEM.finditer(m.group("postfix") or ""):
            if item.group("k").strip() == "avr_loss":
                loss = _float(item.group("v"))
        self.step, self.total = n, total
        if spi is not None:
            self.sec_per_it = spi
        if loss is not None:
            self.loss = loss
        yield ProgressEvent("step", "train", step=n, total=total, loss=loss, sec_per_it=spi)

    def feed_all(self, lines: Iterable[str]) -> list[ProgressEvent]:
        return [ev for line in lines for ev in self.feed(line)]
