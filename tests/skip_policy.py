"""Which tests may skip, and a one-line count of those that did (a pytest plugin; tests/conftest.py
loads it).

A plain clone of the repository must run every test except those that need what a clone cannot
bring: an NVIDIA GPU (marker ``gpu``) or a trainer checkout (marker ``trainer``). A test that
skips without one of these markers fails instead, with its skip reason, so that a missing file,
a missing tool of the dev extra or anything else the test depends on cannot hide behind a skip.
A skip while collecting a module (``pytest.importorskip`` at module level) is an error for the
same reason: the markers of a module that never imported are unknown.

At the end ``make test`` prints how many tests skipped for each allowed reason, on one line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Generator

import pytest

#: the markers that allow a test to skip, and how the summary names that reason
ALLOWED = {
    "gpu": "for a missing GPU",
    "trainer": "for a missing trainer checkout",
}
MARKERS = {
    "gpu": "needs an NVIDIA GPU; the only tests besides trainer ones that may skip",
    "trainer": "needs a trainer checkout (LORAC_SD_SCRIPTS, LORAC_AI_TOOLKIT); may skip without",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ").strip().splitlines()[0] if text.strip() else "no reason"


def _kind(keywords: Container[str]) -> str | None:
    return next((name for name in ALLOWED if name in keywords), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, object, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    if _kind(item.keywords) is None:
        report.outcome = "failed"
        report.longrepr = (f"skipped ({_reason(report)}), but only a test marked gpu or "
                           "trainer may skip: a plain clone must run it")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, object, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = (f"{collector.nodeid} skipped while collecting ({_reason(report)}); "
                           "skip single tests marked gpu or trainer instead")


def summary(reports: list[pytest.TestReport]) -> str:
    """One line: how many tests skipped, for which allowed reason, and why each."""

    if not reports:
        return "skipped no test"
    groups: dict[str, Counter[str]] = {name: Counter() for name in ALLOWED}
    for report in reports:
        kind = _kind(report.keywords)
        if kind is not None:  # the others failed (pytest_runtest_makereport)
            groups[kind][_reason(report)] += 1
    parts = []
    for name, reasons in groups.items():
        if reasons:
            why = "; ".join(f"{reason} ×{n}" for reason, n in sorted(reasons.items()))
            parts.append(f"{sum(reasons.values())} {ALLOWED[name]} ({why})")
    return f"skipped {len(reports)} test{'s' if len(reports) != 1 else ''}: " + ", ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r, pytest.TestReport)]
    terminalreporter.write_line(summary(skipped))
