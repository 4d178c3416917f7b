"""``runs/<id>/report.html`` (:mod:`lorac.run.report`) from a recorded run folder: telemetry,
console output, TensorBoard event files, sample images and the manifest's findings."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lorac.run import report

STEPS_LOG = "".join(
    f"\rsteps:  {10 * i}%|█         | {i}/10 [00:01<00:02, 0.30s/it, avr_loss={0.5 - 0.02 * i:.4g}]"
    for i in range(1, 11)) + "\n"


def _image(path: Path, seed: int) -> None:
    img = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(img)
    for k in range(6):  # shapes that differ from seed to seed
        x, y = (seed * 17 + k * 23) % 50, (seed * 29 + k * 11) % 50
        draw.rectangle([x, y, x + 12, y + 12], fill=(seed * 40 % 255, k * 40, 120))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def make_run(root: Path, status: str = "succeeded") -> Path:
    run = root / "runs" / "fast-20260101-000000"
    run.mkdir(parents=True)
    manifest = {
        "status": status, "exit_code": 0 if status != "running" else None,
        "started_at": "2026-01-01T00:00:00Z", "duration_s": 30.0,
        "profile": {"name": "fast", "path": "profiles/fast.toml"},
        "trainer": {"backend": "kohya", "format": "toml", "commit": "abc123"},
        "versions": {"python": "3.11", "torch": "2.13.0"},
        "progress": {"phase": "done", "step": 10, "total": 10},
        "telemetry": {"available": True, "gpus": [{"name": "H100", "memory_total_mib": 81559}],
                      "phases": {"train": {"0": {"memory_used_mib": 21000.0}}},
                      "series": {"0": [[0.0, 500.0, "startup"], [5.0, 9000.0, "load"],
                                       [10.0, 21000.0, "train"], [20.0, 20500.0, "train"]]}},
        "vram_prediction": {"peak_mib": 22000.0, "peak_phase": "train",
                            "phases": {"train": 22000.0}},
        "lint": {"findings": [{"path": "profiles/fast.toml", "line": 3, "col": 1,
                               "code": "LRC302", "severity": "warning",
                               "message": "docs say network_alpha = 32 but <b>1</b>"}]},
        "lora_check": {"expected_modules": 376, "problems": ["network_alpha = 32 but 1"],
                       "files": [{"path": "output/t.safetensors", "key_format": "kohya",
                                  "trainer": "kohya sd-scripts", "modules": 376, "rank": 4,
                                  "alpha": 1.0, "problems": ["network_alpha = 32 but 1"],
                                  "health": {"block_norms": {"unet.double_blocks_0": 1.5}}}]},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "train.log").write_text("starting\n" + STEPS_LOG)
    sample = run / "output" / "sample"
    for step, seeds in ((100, (1, 2)), (200, (3, 4)), (300, (3, 6)), (400, (3, 7))):
        for prompt, seed in enumerate(seeds):
            _image(sample / f"t_{step:06d}_{prompt:02d}_20260101000000_42.png", seed)
    return run


def test_page_shows_every_section_offline(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    text = report.write_report(run).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'http-equiv="refresh"' not in text
    assert 'data-status="succeeded"' in text and "kohya (toml), commit abc123" in text
    assert "H100 (81559 MiB)" in text
    charts = dict(re.findall(r'data-chart="(\w+)" data-points="(\d+)"', text))
    assert int(charts["memory"]) == 4 and int(charts["loss"]) == 20  # loss + moving average
    assert "lorac vram prediction (train)" in text and "gpu0 H100 limit" in text
    assert 'data-missing="scalars"' in text and "No TensorBoard event files" in text
    assert "the trainer&#x27;s console output (train.log)" in text
    # samples: 2 prompts x 4 steps embedded, nothing fetched from elsewhere
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', text)) == 8
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert "prompt 0: the last 3 samples are the same picture" in text
    assert "step 300: prompts 0 and 1 give the same picture" not in text
    assert "step 200: prompts 0 and 1" not in text
    assert "network_alpha = 32 but 1" in text and "up-weight norm by block" in text
    assert "LRC302" in text and "<b>1</b>" not in text  # escaped


def test_same_picture_for_two_prompts_is_flagged(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    _image(run / "output/sample/t_000200_01_20260101000000_42.png", 3)
    found = report.samples(run)
    assert "step 200: prompts 0 and 1 give the same picture" in found["flags"]


def test_running_page_refreshes_and_console_loss_is_parsed(tmp_path: Path) -> None:
    run = make_run(tmp_path, status="running")
    assert 'http-equiv="refresh"' in report.render(run)
    loss = report.console_loss(run / "train.log")
    assert loss[0] == (1, 0.48) and loss[-1] == (10, 0.3) and len(loss) == 10
    avg = report.moving_average([(1, 1.0), (2, 3.0), (3, 5.0)], window=2)
    assert avg == [(1, 1.0), (2, 2.0), (3, 4.0)]


def test_event_files_without_the_extra_say_so(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path)
    (run / "logs").mkdir()
    (run / "logs" / "events.out.tfevents.1.host").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing.event_accumulator",
                        None)
    text = report.render(run)
    assert "The TensorBoard reader is not installed (pip install &#x27;lorac[report]&#x27;)" \
        in text
    assert 'data-points="20"' in text  # the console loss is still drawn


def test_event_files_give_loss_and_learning_rate(tmp_path: Path) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    run = make_run(tmp_path)
    writer = EventFileWriter(str(run / "logs" / "network_train"))
    for step in range(1, 31):
        values = [summary_pb2.Summary.Value(tag="loss/current", simple_value=1.0 / step),
                  summary_pb2.Summary.Value(tag="lr/unet", simple_value=1e-4 * min(1, step / 10))]
        writer.add_event(event_pb2.Event(step=step, wall_time=float(step),
                                         summary=summary_pb2.Summary(value=values)))
    writer.close()
    data = report.scalars(run)
    assert data["source"] == "TensorBoard event files" and data["missing"] is None
    assert len(data["loss"]) == 30 and data["loss"][1] == (2, 0.5)
    assert data["lr"]["lr/unet"][-1][1] == pytest.approx(1e-4)
    text = report.render(run)
    assert re.search(r'data-chart="lr" data-points="30"', text)


def test_runs_report_and_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from lorac.cli import run as cli

    a = make_run(tmp_path)
    b = a.parent / "final-20260102-000000"
    b.mkdir()
    (b / "manifest.json").write_text(json.dumps({"status": "failed", "exit_code": 1}))
    monkeypatch.chdir(tmp_path)
    assert cli(["runs", "report", "fast"]) == 0
    assert (a / "report.html").is_file()
    assert cli(["runs", "compare", "fast", "final"]) == 0
    page = (tmp_path / "runs" / "compare-fast-20260101-000000-final-20260102-000000.html")
    text = page.read_text(encoding="utf-8")
    assert 'data-status="succeeded"' in text and 'data-status="failed"' in text
    assert cli(["runs", "report", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_axis_of_values_that_are_never_negative_starts_at_zero() -> None:
    """Padding below a learning rate that starts at 0 (warm-up) or a memory trace that starts
    at 0 MiB drew a negative first tick (-2e-06, -4,078 MiB) on the H100 run's page."""

    svg = report.line_chart("lr", [("lr/unet", [(0, 0.0), (40, 4e-5)])], x_label="step",
                            y_label="learning rate")
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert ticks and not any(t.startswith("-") for t in ticks)
    below = report.line_chart("x", [("a", [(0, -1.0), (1, 1.0)])], x_label="s", y_label="v")
    assert re.findall(r'text-anchor="end">([^<]+)</text>', below)[0].startswith("-")
