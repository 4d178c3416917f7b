"""``runs/<id>/report.html``: one self-contained page that shows a run.

The page is built from what the run folder holds: ``manifest.json`` (status, profile, trainer,
versions, the card, GPU memory over time by phase, ``lorac vram``'s prediction, the lint
findings of the gate, the check of each saved LoRA), the trainer's TensorBoard event files
(loss, its moving average and the learning rate per step — through the ``tensorboard``
package of the ``report`` extra) or, without them, the loss the trainer printed in
``train.log``, and the sample images it saved (sd-scripts' and musubi-tuner's
``output/sample/``, ai-toolkit's ``samples/``), with the perceptual-hash distance between
consecutive samples of each prompt.

Charts are inline SVG drawn here and images are embedded as ``data:`` URIs, so the page opens
from disk with no network and no server. :func:`write_report` writes it atomically; during a
run it carries a ``<meta http-equiv="refresh">`` so a browser on a pod's file browser or a
forwarded port follows the run.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import LoracError

REPORT_NAME = "report.html"
#: Seconds between rewrites of the page during a run, and the page's refresh.
REFRESH_S = 5
#: Moving-average window of the loss chart (steps).
AVERAGE_WINDOW = 20
#: Perceptual-hash distance (of 64 bits) at or below which two samples count as the same picture.
SAME_PICTURE = 4
#: Most samples embedded per prompt (evenly spaced steps, the last always kept).
MAX_SAMPLES_PER_PROMPT = 8
THUMB_PX = 256
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: sd-scripts / musubi-tuner: ``{output_name}_{step:06d}_{prompt:02d}_{YYYYmmddHHMMSS}[_seed].png``
#: (``e{epoch:06d}`` for samples at an epoch's end); ai-toolkit: ``{time}__{step:09d}_{prompt}``.
_SAMPLE_NAMES = (re.compile(r"_(e?)(\d{6})_(\d{2})_\d{14}(?:_\d+)?$"),
                 re.compile(r"__()(\d{9})_(\d+)$"))
_CONSOLE_STEP = re.compile(r"(?:^|\|\s*)(\d+)/(\d+)\s*\[[^\]]*?avr_loss=([-+0-9.eE]+|nan)")
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


# --------------------------------------------------------------------------- collecting


def read_run_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoracError(f"{run_dir}: no manifest.json (not a run folder)") from None
    except (OSError, ValueError) as exc:
        raise LoracError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(data, dict):
        raise LoracError(f"{path}: unreadable manifest: not a JSON object")
    return data


def scalars(run_dir: Path) -> dict[str, Any]:
    """Loss and learning rate per step: ``{"loss": [(step, value)], "lr": {tag: [...]},
    "source": text, "missing": text or None}``."""

    events = sorted(p for p in run_dir.rglob("events.out.tfevents.*") if p.is_file())
    missing = None
    if events:
        try:
            from tensorboard.backend.event_processing.event_accumulator import (
                EventAccumulator,
            )
        except ImportError:
            missing = ("The TensorBoard reader is not installed (pip install 'lorac[report]'): "
                       "the loss below comes from the trainer's console output and the "
                       "learning rate is not shown.")
        else:
            loss: dict[int, float] = {}
            lrs: dict[str, dict[int, float]] = {}
            for path in events:
                acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
                try:
                    acc.Reload()
                except Exception as exc:  # a file the trainer is still writing, or damaged
                    missing = f"{path.name}: unreadable ({exc.__class__.__name__})"
                    continue
                tags = acc.Tags().get("scalars", [])
                loss_tags = [t for t in tags if t in ("loss/current", "loss", "train/loss")] \
                    or [t for t in tags if "loss" in t and "average" not in t]
                for tag in loss_tags[:1]:
                    loss.update((e.step, e.value) for e in acc.Scalars(tag))
                for tag in tags:
                    if tag.startswith("lr") or "learning_rate" in tag:
                        lrs.setdefault(tag, {}).update((e.step, e.value) for e in acc.Scalars(tag))
            if loss or lrs:
                return {"loss": sorted(loss.items()),
                        "lr": {t: sorted(v.items()) for t, v in lrs.items()},
                        "source": "TensorBoard event files", "missing": missing}
    elif missing is None:
        missing = ("No TensorBoard event files in the run folder (the trainer logs them with "
                   "log_with = \"tensorboard\"): the loss below comes from the console output "
                   "and the learning rate is not shown.")
    return {"loss": console_loss(run_dir / "train.log"), "lr": {},
            "source": "the trainer's console output (train.log)", "missing": missing}


def console_loss(log: Path) -> list[tuple[int, float]]:
    """(step, average loss) from the ``steps`` progress bar sd-scripts prints."""

    found: dict[int, float] = {}
    try:
        with open(log, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                for line in raw.split("\r"):
                    m = _CONSOLE_STEP.search(line)
                    if m and m.group(3) != "nan":
                        found[int(m.group(1))] = float(m.group(3))
    except OSError:
        return []
    return sorted(found.items())


def moving_average(points: Sequence[tuple[int, float]], window: int = AVERAGE_WINDOW
                   ) -> list[tuple[int, float]]:
    out, total = [], 0.0
    for i, (step, value) in enumerate(points):
        total += value
        if i >= window:
            total -= points[i - window][1]
        out.append((step, total / min(i + 1, window)))
    return out


def samples(run_dir: Path) -> dict[str, Any]:
    """Sample images by prompt and step, with hash distances and flags."""

    found: dict[int, dict[int, Path]] = {}
    for path in sorted(run_dir.rglob("*")):
        if path.suffix.lower() not in _IMAGE_SUFFIXES or not path.is_file() or \
                path.parent.name not in ("sample", "samples"):
            continue
        for pattern in _SAMPLE_NAMES:
            m = pattern.search(path.stem)
            if m:
                step = int(m.group(2))
                found.setdefault(int(m.group(3)), {})[step] = path
                break
    prompts: list[dict[str, Any]] = []
    flags: list[str] = []
    hashes: dict[tuple[int, int], Any] = {}
    for prompt, by_step in sorted(found.items()):
        steps = sorted(by_step)
        rows = []
        previous = None
        for step in steps:
            h = _phash(by_step[step])
            hashes[(prompt, step)] = h
            distance = None if h is None or previous is None else int(h - previous)
            rows.append({"step": step, "path": by_step[step], "distance": distance})
            previous = h
        dists = [r["distance"] for r in rows if r["distance"] is not None]
        if len(dists) >= 2 and all(d <= SAME_PICTURE for d in dists[-2:]):
            flags.append(f"prompt {prompt}: the last {len(dists[-2:]) + 1} samples are the same "
                         f"picture (hash distance ≤ {SAME_PICTURE}): training stopped changing "
                         "it")
        prompts.append({"prompt": prompt, "rows": _spread(rows)})
    by_step: dict[int, list[int]] = {}
    for (prompt, step) in hashes:
        by_step.setdefault(step, []).append(prompt)
    for step, ps in sorted(by_step.items()):
        same = [(a, b) for i, a in enumerate(sorted(ps)) for b in sorted(ps)[i + 1:]
                if hashes[(a, step)] is not None and hashes[(b, step)] is not None
                and hashes[(a, step)] - hashes[(b, step)] <= SAME_PICTURE]
        for a, b in same:
            flags.append(f"step {step}: prompts {a} and {b} give the same picture")
    return {"prompts": prompts, "flags": flags}


def _spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(rows) <= MAX_SAMPLES_PER_PROMPT:
        return rows
    n = MAX_SAMPLES_PER_PROMPT
    picks = sorted({round(i * (len(rows) - 1) / (n - 1)) for i in range(n)})
    return [rows[i] for i in picks]


def _phash(path: Path) -> Any:
    """The perceptual hash of ``path``, computed once per file version (the page is rewritten
    every few seconds during a run)."""

    try:
        st = path.stat()
    except OSError:
        return None
    return _phash_of(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4096)
def _phash_of(path: str, mtime_ns: int, size: int) -> Any:
    try:
        import imagehash
        from PIL import Image

        with Image.open(path) as img:
            return imagehash.phash(img)
    except Exception:  # an image the trainer is still writing, or damaged
        return None


def _thumbnail(path: Path) -> str | None:
    try:
        from PIL import Image

        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=80)
    except Exception:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- drawing


def line_chart(name: str, lines: Sequence[tuple[str, Sequence[tuple[float, float]]]], *,
               x_label: str, y_label: str, limits: Sequence[tuple[str, float]] = (),
               bands: Sequence[tuple[str, float, float]] = (), width: int = 760,
               height: int = 260) -> str:
    """An SVG line chart: ``lines`` as (label, points), ``limits`` as dashed horizontal lines,
    ``bands`` as shaded (label, low, high) intervals. Marked ``data-chart=name`` with the
    number of points drawn in ``data-points``."""

    pts = [p for _, ps in lines for p in ps]
    if not pts:
        return (f'<p class="empty" data-chart-empty="{html.escape(name)}">No data for this '
                "chart yet.</p>")
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + [v for _, v in limits] + [b for _, lo, hi in bands
                                                           for b in (lo, hi)]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pad = (y1 - y0) * 0.05
    # memory and learning rates are never negative: the padding must not invent a negative axis
    y0, y1 = (max(y0 - pad, 0.0) if y0 >= 0 else y0 - pad), y1 + pad
    left, right, top, bottom = 64, 12, 12, 36
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * h

    out = [f'<svg class="chart" data-chart="{html.escape(name)}" data-points="{len(pts)}" '
           f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(y_label)}">']
    out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fff" '
               'stroke="#999"/>')
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        xv = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{left - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">'
                   f"{_tick(yv)}</text>")
        out.append(f'<text x="{sx(xv):.1f}" y="{height - 20}" text-anchor="middle">'
                   f"{_tick(xv)}</text>")
    out.append(f'<text x="{left + w / 2}" y="{height - 4}" text-anchor="middle">'
               f"{html.escape(x_label)}</text>")
    for label, lo, hi in bands:
        out.append(f'<rect x="{left}" y="{sy(hi):.1f}" width="{w}" '
                   f'height="{max(sy(lo) - sy(hi), 1):.1f}" fill="#ffbf00" opacity="0.2">'
                   f"<title>{html.escape(label)}</title></rect>")
    for i, (label, value) in enumerate(limits):
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{sy(value):.1f}" '
                   f'y2="{sy(value):.1f}" stroke="{_COLORS[(i + 3) % len(_COLORS)]}" '
                   f'stroke-dasharray="6 4"><title>{html.escape(label)}</title></line>')
    legend = []
    for i, (label, ps) in enumerate(lines):
        color = _COLORS[i % len(_COLORS)]
        if ps:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                       f'points="{coords}"><title>{html.escape(label)}</title></polyline>')
        legend.append(f'<span style="color:{color}">━ {html.escape(label)}</span>')
    for i, (label, _) in enumerate(limits):
        legend.append(f'<span style="color:{_COLORS[(i + 3) % len(_COLORS)]}">'
                      f"┅ {html.escape(label)}</span>")
    for label, _, _ in bands:
        legend.append(f'<span style="color:#b08000">▮ {html.escape(label)}</span>')
    out.append("</svg>")
    return (f'<figure><figcaption>{html.escape(y_label)}</figcaption>{"".join(out)}'
            f'<div class="legend">{" ".join(legend)}</div></figure>')


def _tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


# --------------------------------------------------------------------------- the page


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
.status{font-weight:bold}.bad{color:#b00020}.ok{color:#16803c}.note{background:#fff6d6;
padding:6px 10px;border-left:4px solid #e0b000}svg text{font-size:11px;fill:#333}
figure{margin:0 0 1em}figcaption{font-weight:bold}.legend span{margin-right:1em}
.samples td{text-align:center;font-size:12px}.samples img{display:block;max-width:200px}
code{background:#f3f3f3;padding:0 3px}.cols{display:flex;gap:2em;flex-wrap:wrap}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                               for k, v in pairs if v not in (None, "", {})) + "</table>"


def _memory_section(m: dict[str, Any]) -> str:
    tel = m.get("telemetry") or {}
    parts = []
    if tel and not tel.get("available", False):
        parts.append(f'<p class="note">No GPU telemetry: {_e(tel.get("reason"))}</p>')
    series = tel.get("series") or {}
    gpus = tel.get("gpus") or []
    limits = [(f"gpu{i} {g.get('name', '')} limit", float(g["memory_total_mib"]))
              for i, g in enumerate(gpus) if g.get("memory_total_mib")][:1]
    pred = m.get("vram_prediction") or {}
    bands = []
    if pred.get("peak_mib"):
        limits.append((f"lorac vram prediction ({pred.get('peak_phase', 'peak')})",
                       float(pred["peak_mib"])))
        if pred.get("interval_mib"):
            lo, hi = pred["interval_mib"]
            bands.append(("prediction interval", float(lo), float(hi)))
    lines = []
    for gpu, pts in sorted(series.items()):
        by_phase: dict[str, list[tuple[float, float]]] = {}
        for t, mib, phase in pts:
            by_phase.setdefault(phase, []).append((t, mib))
        for phase, ps in by_phase.items():
            lines.append((f"gpu{gpu} {phase}", ps))
    if lines or limits:
        parts.append(line_chart("memory", lines, x_label="seconds since start",
                                y_label="GPU memory used (MiB) by phase", limits=limits,
                                bands=bands))
    peaks = tel.get("phases") or {}
    if peaks:
        rows = "".join(f"<tr><td>{_e(phase)}</td><td>{_e(gpu)}</td>"
                       f"<td>{_e(v.get('memory_used_mib'))}</td>"
                       f"<td>{_e((pred.get('phases') or {}).get(phase))}</td></tr>"
                       for phase, per in peaks.items() for gpu, v in per.items())
        parts.append("<table><tr><th>phase</th><th>gpu</th><th>peak MiB</th>"
                     f"<th>predicted MiB</th></tr>{rows}</table>")
    return "".join(parts) or "<p>No memory readings.</p>"


def _loss_section(run_dir: Path) -> str:
    data = scalars(run_dir)
    parts = []
    if data["missing"]:
        parts.append(f'<p class="note" data-missing="scalars">{_e(data["missing"])}</p>')
    parts.append(f"<p>Source: {_e(data['source'])}.</p>")
    loss = data["loss"]
    parts.append(line_chart("loss", [("loss", loss),
                                     (f"moving average ({AVERAGE_WINDOW} steps)",
                                      moving_average(loss))],
                            x_label="step", y_label="loss"))
    if data["lr"]:
        parts.append(line_chart("lr", list(data["lr"].items()), x_label="step",
                                y_label="learning rate"))
    return "".join(parts)


def _samples_section(run_dir: Path) -> str:
    found = samples(run_dir)
    if not found["prompts"]:
        return "<p>No sample images (sample_every_n_steps and sample_prompts make them).</p>"
    parts = []
    for flag in found["flags"]:
        parts.append(f'<p class="note bad" data-flag="samples">{_e(flag)}</p>')
    for prompt in found["prompts"]:
        cells = []
        for row in prompt["rows"]:
            src = _thumbnail(row["path"])
            dist = "" if row["distance"] is None else f" · Δ{row['distance']}"
            img = f'<img src="{src}" alt="prompt {prompt["prompt"]} step {row["step"]}">' \
                if src else '<span class="bad">unreadable image</span>'
            cells.append(f"<td>{img}step {row['step']}{dist}</td>")
        parts.append(f"<h3>prompt {prompt['prompt']}</h3><table class=\"samples\"><tr>"
                     f"{''.join(cells)}</tr></table>")
    parts.append(f"<p>Δ: perceptual-hash distance to the previous sample of the prompt (0–64; "
                 f"≤ {SAME_PICTURE} is the same picture).</p>")
    return "".join(parts)


def _lora_section(m: dict[str, Any]) -> str:
    check = m.get("lora_check")
    if not check:
        return "<p>Not checked yet (the check runs when the trainer has finished).</p>"
    if not check.get("files"):
        return "<p>The run saved no LoRA under <code>output/</code>.</p>"
    parts = []
    for f in check["files"]:
        state = ('<span class="ok">matches the profile</span>' if not f.get("problems")
                 else "<br>".join(f'<span class="bad">{_e(p)}</span>' for p in f["problems"]))
        health = f.get("health") or {}
        parts.append(f"<h3><code>{_e(f.get('path'))}</code></h3>" + _rows([
            ("format", f"{f.get('key_format')} (trainer {f.get('trainer')})"
             if f.get("key_format") else None),
            ("network module", f.get("network_module")), ("modules", f.get("modules")),
            ("rank", f.get("rank") if f.get("rank") is not None else f.get("ranks")),
            ("alpha", f.get("alpha")),
            ("expected modules", check.get("expected_modules")
             if check.get("expected_modules") is not None else
             f"unknown count: {check['expected_modules_unknown']}"
             if check.get("expected_modules_unknown") else None),
        ]) + f"<p>{state}</p>")
        norms = health.get("block_norms") or {}
        if norms:
            parts.append("<details><summary>up-weight norm by block</summary>" + _rows(
                [(k, f"{v:.4g}") for k, v in norms.items()]) + "</details>")
    return "".join(parts)


def _lint_section(m: dict[str, Any]) -> str:
    found = (m.get("lint") or {}).get("findings") or []
    if not found:
        return "<p>The lint gate found nothing.</p>"
    rows = "".join(f"<tr><td>{_e(d.get('path'))}:{_e(d.get('line'))}:{_e(d.get('col'))}</td>"
                   f"<td>{_e(d.get('code'))}</td><td>{_e(d.get('severity'))}</td>"
                   f"<td>{_e(d.get('message'))}</td></tr>" for d in found)
    return f"<table>{rows}</table>"


def _summary(m: dict[str, Any]) -> str:
    prof = m.get("profile") or {}
    trainer = m.get("trainer") or {}
    prog = m.get("progress") or {}
    gpus = (m.get("telemetry") or {}).get("gpus") or []
    versions = m.get("versions") or {}
    status = str(m.get("status", "?"))
    cls = "ok" if status == "succeeded" else "bad" if status in (
        "failed", "check failed", "interrupted") else ""
    code = m.get("exit_code")
    exit_text = "" if code is None else f" (exit {_e(code)})"
    return (f'<p class="status {cls}" data-status="{_e(status)}">Status: {_e(status)}'
            f"{exit_text}"
            "</p>" + _rows([
                ("profile", f"{prof.get('name')} ({prof.get('path')})" if prof else None),
                ("trainer", f"{trainer.get('backend')} ({trainer.get('format')}), commit "
                 f"{trainer.get('commit')}" if trainer else None),
                ("card", ", ".join(f"{g.get('name')} ({g.get('memory_total_mib')} MiB)"
                                   for g in gpus) or "no GPU seen"),
                ("step", f"{prog.get('step')}/{prog.get('total')}" if prog.get("step")
                 else None),
                ("phase", prog.get("phase")), ("started", m.get("started_at")),
                ("ended", m.get("ended_at")), ("duration", f"{m.get('duration_s')} s"
                                               if m.get("duration_s") is not None else None),
                ("error", prog.get("error")),
                ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)),
                ("lorac", m.get("lorac_version")),
            ]))


def body(run_dir: Path, m: dict[str, Any]) -> str:
    """The page's sections for one run."""

    return (f"{_summary(m)}<h2>GPU memory</h2>{_memory_section(m)}"
            f"<h2>Loss and learning rate</h2>{_loss_section(run_dir)}"
            f"<h2>Samples</h2>{_samples_section(run_dir)}"
            f"<h2>Saved LoRA</h2>{_lora_section(m)}"
            f"<h2>Lint findings of the gate</h2>{_lint_section(m)}")


def page(title: str, content: str, *, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"{meta}<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(title)}</h1>{content}</body></html>\n")


def render(run_dir: Path, manifest: dict[str, Any] | None = None) -> str:
    m = manifest if manifest is not None else read_run_manifest(run_dir)
    running = m.get("status") == "running"
    return page(f"lorac run {run_dir.name}", body(run_dir, m), refresh=running)


def render_compare(a: Path, b: Path) -> str:
    ma, mb = read_run_manifest(a), read_run_manifest(b)
    content = ('<div class="cols">'
               f"<section><h1>{_e(a.name)}</h1>{body(a, ma)}</section>"
               f"<section><h1>{_e(b.name)}</h1>{body(b, mb)}</section></div>")
    return page(f"lorac runs {a.name} and {b.name}", content, refresh=False)


def write_report(run_dir: Path, manifest: dict[str, Any] | None = None,
                 target: Path | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``target``) atomically; returns the path."""

    from lorac.core.outputs import write_file

    path = target or run_dir / REPORT_NAME
    write_file(path, render(run_dir, manifest))
    return path
