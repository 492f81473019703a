"""The HTML report in a real browser (issue 15): headless Chromium loads the page from a file:// URL, as a
reader would, and the tests check what the parser-based tests of test_eval_report.py cannot: the page is
drawn (a screenshot that is not blank and shows the series colours), the leaderboard and the charts are laid
out with a size and their marks drawn inside them, nothing reaches the console, and nothing is fetched (the
report must work offline). Skipped only when no Chromium is installed; .ci/run installs the distribution's.
"""

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from kernelwright.evals.report import PALETTE, write_report

from test_eval_report import eval_dir
from test_run_report import run_dir

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1280, 2000
TIMEOUT_S = 90
# Chromium logs every console message (log, warning, error, uncaught exception alike) at INFO as
# `[pid:tid:time:INFO:CONSOLE:12] "message", source: URL (12)`; older builds wrote `CONSOLE(12)`.
CONSOLE = re.compile(r':CONSOLE(?::\d+|\(\d+\))\] "(?P<message>.*)", source: (?P<source>.*)$')

# Appended to a copy of the page: measures what the browser laid out and lists what it fetched.
PROBE = """<script>
addEventListener("load", () => {
  const box = el => { const r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const tables = {};
  for (const t of document.querySelectorAll("table[id]"))
    tables[t.id] = {box: box(t), rows: t.tBodies.length ? t.tBodies[0].rows.length : 0};
  const charts = {};
  for (const svg of document.querySelectorAll("svg[id]")) {
    const view = svg.viewBox.baseVal;
    let drawn = 0, outside = 0;
    for (const mark of svg.querySelectorAll("polyline, circle")) {
      const b = mark.getBBox();
      if (b.width > 0 || b.height > 0) drawn++;
      if (b.x < view.x || b.y < view.y || b.x + b.width > view.x + view.width
          || b.y + b.height > view.y + view.height) outside++;
    }
    charts[svg.id] = {box: box(svg), drawn, outside};
  }
  const probe = document.createElement("pre");
  probe.id = "kw-probe";
  probe.textContent = JSON.stringify(
    {tables, charts, fetched: performance.getEntriesByType("resource").map(e => e.name)});
  document.body.append(probe);
});
</script>"""


@pytest.fixture
def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no Chromium on PATH (looked for {', '.join(BROWSERS)}); .ci/run installs the distribution's")


def run_browser(browser: str, page: Path, *flags: str) -> tuple[str, str]:
    """Chromium's stdout and stderr for ``page``; a fresh profile each time, and no host resolves, so a page
    that tries the network fails here rather than passing on a machine that has one."""
    with tempfile.TemporaryDirectory(dir=page.parent) as profile:
        command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                   "--enable-logging=stderr", "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND",
                   f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", *flags, page.resolve().as_uri()]
        # its own session: on a timeout the whole tree of renderer and GPU processes is killed
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", start_new_session=True)
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"Chromium did not finish {page.name} within {TIMEOUT_S} s")
    return out, err


def console_messages(stderr: str) -> list[str]:
    """Every console message in Chromium's log. The report runs no script of its own, so any message at all
    (an uncaught exception, a failed load, a console.error) is an error."""
    return [f"{m['message']} ({m['source']})" for m in map(CONSOLE.search, stderr.splitlines()) if m]


def screenshot(browser: str, page: Path) -> tuple[Path, list[str]]:
    png = page.with_suffix(".png")
    _, err = run_browser(browser, page, f"--screenshot={png}")
    assert png.is_file(), f"Chromium wrote no screenshot of {page.name}:\n{err[-2000:]}"
    return png, console_messages(err)


def probe(browser: str, page: Path) -> tuple[dict, list[str]]:
    """What the browser laid out and fetched for ``page`` (measured by PROBE on a copy beside it, so relative
    addresses resolve alike), and the console messages of that load."""
    copy = page.with_name(f"probed-{page.name}")
    source = page.read_text()
    assert source.count("</body>") == 1
    copy.write_text(source.replace("</body>", PROBE + "</body>"))
    dom, err = run_browser(browser, copy, "--dump-dom", "--virtual-time-budget=5000")
    found = re.search(r'<pre id="kw-probe">(.*?)</pre>', dom, flags=re.S)
    assert found, f"the probe did not run in {page.name}:\n{err[-2000:]}"
    return json.loads(html.unescape(found.group(1))), console_messages(err)


def colours(png: Path) -> dict[tuple[int, int, int], int]:
    from PIL import Image  # Pillow comes with matplotlib, in the test extra

    with Image.open(png) as image:
        rgb = image.convert("RGB")
    return {colour: count for count, colour in rgb.getcolors(rgb.width * rgb.height)}


def blank(counts: dict[tuple[int, int, int], int]) -> bool:
    """A page with nearly nothing drawn: few colours, or under 1% of the pixels off the background's colour (a
    short page, such as one run's, leaves most of the window white)."""
    total = sum(counts.values())
    return len(counts) < 16 or total - max(counts.values()) < 0.01 * total


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def assert_renders(browser: str, page: Path) -> dict:
    """The checks every report page must pass; the probe's findings, for checks of what this page holds."""
    png, console = screenshot(browser, page)
    found, probe_console = probe(browser, page)
    assert console == [] and probe_console == []
    assert found["fetched"] == []
    counts = colours(png)
    assert not blank(counts), f"{png} looks blank: {len(counts)} colours"
    return {"found": found, "colours": counts}


def assert_chart_drawn(chart: dict, marks: int) -> None:
    assert min(chart["box"]) > 0
    assert chart["drawn"] == marks and chart["outside"] == 0


def test_the_eval_report_renders_offline_with_a_silent_console(browser, tmp_path):
    out, results = eval_dir(tmp_path)
    seen = assert_renders(browser, out / "report.html")
    tables, charts = seen["found"]["tables"], seen["found"]["charts"]
    groups = len(results["aggregates"])
    assert tables["leaderboard"]["rows"] == groups and min(tables["leaderboard"]["box"]) > 0
    for chart_id in ("fastp-eager", "fastp-compile", "cost-quality"):  # a curve or a point per (agent, skill)
        assert_chart_drawn(charts[chart_id], groups)
    for colour in PALETTE[:groups]:  # the series are drawn in their colours, not only laid out
        assert seen["colours"].get(rgb(colour), 0) > 100, colour


def test_an_optimize_runs_page_renders_its_trajectory_and_rejections(browser, tmp_path):
    folder = run_dir(tmp_path)
    seen = assert_renders(browser, write_report(folder))
    assert seen["found"]["tables"]["rejections-run"]["rows"] == 1
    assert seen["found"]["tables"]["trajectory-table-run"]["rows"] == 3
    assert_chart_drawn(seen["found"]["charts"]["trajectory-run"], 2)  # this candidate, best so far


def test_the_autopilot_page_renders_its_tables(browser, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profile"))
    from test_autopilot_page import synthetic

    from kernelwright.profile.autopilot_page import write_page

    result, profile = synthetic()
    seen = assert_renders(browser, write_page(result, profile, tmp_path / "autopilot.html"))
    tables = seen["found"]["tables"]
    assert tables["profile"]["rows"] == 15 and tables["targets"]["rows"] == 3 and tables["e2e"]["rows"] == 1
    assert all(min(t["box"]) > 0 for t in tables.values())


def test_the_checks_catch_a_script_error_a_fetch_and_a_blank_page(browser, tmp_path):
    out, _ = eval_dir(tmp_path, runs=1)
    page = out / "report.html"
    broken = page.with_name("broken.html")
    broken.write_text(page.read_text().replace(
        "</body>", '<img src="https://example.invalid/chart.png"><script>throw new Error("x")</script></body>'))
    png, console = screenshot(browser, broken)
    assert any("Uncaught Error: x" in line for line in console), console
    found, _ = probe(browser, broken)
    assert found["fetched"] == ["https://example.invalid/chart.png"]
    empty = tmp_path / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    assert blank(colours(screenshot(browser, empty)[0])) and not blank(colours(png))


def test_console_lines_are_told_from_the_browsers_own_log():
    log = "\n".join([
        '[1:2:1130/045252.904704:ERROR:dbus/bus.cc:405] Failed to connect to the bus: no socket',
        '[1:1:1130/045253.187996:INFO:CONSOLE:1] "Uncaught Error: boom", source: file:///r.html (1)',
        '[1:1:0101/000000.000001:INFO:CONSOLE(27)] "a log", source: file:///r.html (27)'])
    assert console_messages(log) == ["Uncaught Error: boom (file:///r.html (1))", "a log (file:///r.html (27))"]
