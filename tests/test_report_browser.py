"""The run report in a real browser: headless Chromium (Debian's ``chromium`` package, which
``.ci/run`` and ``make test`` install) opens ``report.html`` from disk with the network off.
The test fails on a ``console.error``, an uncaught error or a failed resource load, an image that
did not load or a chart that drew nothing.

The page carries no script of its own; the test opens a copy with a checker script put first in
``<head>`` (it records errors, including failed resource loads, and after ``load`` checks every
``<img>`` and every ``svg.chart``), and reads the checker's verdict from the DOM Chromium dumps.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from lorac.run import report
from tests.test_report import make_run

CHECKER = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__errors.push(t && t.tagName ? "resource failed: " + t.tagName + " " + (t.alt || "")
                                      : "uncaught: " + e.message);
}, true);
var _error = console.error;
console.error = function () {
  window.__errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
  _error.apply(console, arguments);
};
window.addEventListener("load", function () {
  var found = window.__errors.slice();
  var images = document.querySelectorAll("img");
  images.forEach(function (i) {
    if (!(i.complete && i.naturalWidth > 0)) found.push("image did not load: " + i.alt);
  });
  var charts = document.querySelectorAll("svg.chart");
  charts.forEach(function (svg) {
    var drawn = 0;
    svg.querySelectorAll("polyline").forEach(function (line) {
      var box = line.getBBox();
      if (line.points.numberOfItems > 1 && (box.width > 0 || box.height > 0)) drawn++;
    });
    if (!drawn || svg.getBoundingClientRect().width <= 0)
      found.push("chart did not render: " + svg.getAttribute("data-chart"));
  });
  var out = document.createElement("pre");
  out.id = "lorac-check";
  out.textContent = JSON.stringify({problems: found, images: images.length,
                                    charts: charts.length});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, ("chromium is not installed: `make test` and .ci/run install Debian's "
                   "package (apt-get install chromium)")
    return found


def open_offline(page: Path, profile_dir: Path) -> dict:
    """Open ``page`` with the checker in headless Chromium, network off: the checker's verdict
    (``problems``, ``images``, ``charts``)."""

    checked = page.with_name("checked-" + page.name)
    checked.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + CHECKER, 1),
                       encoding="utf-8")
    cmd = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", "--disable-sync",
           # the network off: every name resolves to nothing, every connection to a dead proxy
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
           "--proxy-bypass-list=<-loopback>", f"--user-data-dir={profile_dir}",
           "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"],
                                                  capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]  # and no network namespace to reach anything with
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="lorac-check">(.*?)</pre>', done.stdout, re.S)
    assert m, f"Chromium did not finish loading the page (exit {done.returncode}):\n" \
              f"{done.stderr[-3000:]}"
    verdict = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&")
                         .replace("&lt;", "<").replace("&gt;", ">"))
    return verdict


def test_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page = report.write_report(run)
    verdict = open_offline(page, tmp_path / "chrome")
    assert verdict["problems"] == []
    assert verdict["images"] == 8 and verdict["charts"] == 2  # memory, loss


def test_the_browser_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(report.page("bad", (
        '<img alt="broken" src="data:image/png;base64,AAAA">'
        '<svg class="chart" data-chart="empty" width="10" height="10"></svg>'
        '<img alt="from the network" src="http://example.com/x.png">'
        '<script>console.error("boom"); undefined_name();</script>'), refresh=False),
        encoding="utf-8")
    verdict = open_offline(page, tmp_path / "chrome")
    problems = " | ".join(verdict["problems"])
    assert "console.error: boom" in problems
    assert "image did not load: broken" in problems
    assert "chart did not render: empty" in problems
    assert "uncaught: Uncaught ReferenceError: undefined_name is not defined" in problems
    # the network is off: a remote image fails
    assert "resource failed: IMG from the network" in problems
