"""The eval's HTML report (evals/report.py); named test_eval_report.py: tests/bench has a test_report.py."""

import sys
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.errors import UsageError
from kernelwright.evals.report import render, write_report
from kernelwright.evals.runner import write_results

EVIL = "<script>alert('x')</script>"


class Tables(HTMLParser):
    """Every table by id: rows of (text, data-value) cells; and every tag seen."""

    def __init__(self):
        super().__init__()
        self.tables, self.tags, self._table, self._cell = {}, [], None, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = ["", attrs.get("data-value")]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(tuple(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def rows(self, table_id):
        header, *body = self.tables[table_id]
        names = [text for text, _ in header]
        return [dict(zip(names, row)) for row in body]


def unit(agent, skill, task, run, correct, eager=None, compile_=None, dollars=0.02):
    return {"agent": agent, "skill": skill, "task": task, "run": run, "correct": correct, "status": "done",
            "timings_meaningful": eager is not None, "speedup_eager": eager, "speedup_compile": compile_,
            "roofline_pct": 40.0 if eager else None, "tokens_in": 100, "tokens_out": 20, "tokens": 120,
            "dollars": dollars, "llm_calls": 2, "repairs": 1, "tool_calls": None, "wall_s": 3.5,
            "note": "rejected: <b>output</b> & more" if not correct else "verified and timed"}


def eval_dir(tmp_path, runs=2):
    units = []
    for run in range(1, runs + 1):
        units += [unit("cmd:agent", "none", "gelu", run, True, 1.5, 0.8),
                  unit("cmd:agent", "none", EVIL, run, run == 1, 0.9 if run == 1 else None),
                  unit("cmd:agent", "triton-kernels", "gelu", run, True, 2.5, 1.3),
                  unit("cmd:agent", "triton-kernels", EVIL, run, True, 1.2, 0.7),
                  unit("offline", "builtin", "gelu", run, True, 3.0, 1.1, dollars=0.0)]
    out = tmp_path / "eval"
    (out / "units").mkdir(parents=True)
    results = write_results(out, "suite", ["cmd:agent", "offline"], ["none", "triton-kernels"], runs, None,
                            "cuda:0", [], units)
    return out, results


def parsed(path):
    tables = Tables()
    tables.feed(path.read_text())
    return tables


def test_the_leaderboard_and_lift_show_the_numbers_of_results_json(tmp_path):
    out, results = eval_dir(tmp_path)
    page = parsed(out / "report.html")
    board = {(r["agent"][0], r["skill"][0]): r for r in page.rows("leaderboard")}
    assert len(board) == len(results["aggregates"]) == 3
    for group in results["aggregates"]:
        row = board[(group["agent"], group["skill"])]
        assert float(row["verified rate"][1]) == group["correct_rate"]
        assert float(row["fast_1 eager"][1]) == group["fast_p_eager"]["1.0"]
        assert float(row["geomean vs compile"][1]) == pytest.approx(group["geomean_speedup_compile"])
        assert float(row["dollars"][1]) == pytest.approx(group["totals"]["dollars"])
        assert row["tool calls"] == ("?", "")  # unknown stays unknown, never zero
    skilled = board[("cmd:agent", "triton-kernels")]
    assert skilled["verified rate"][0] == "100.0%" and skilled["fast_1 eager"][0] == "100.0%"
    fast = {(r["agent"][0], r["skill"][0]): r for r in page.rows("fast-p")}[("cmd:agent", "triton-kernels")]
    assert fast["fast_1.5 eager"][0] == "50.0%" and fast["fast_1 compile"][0] == "50.0%"  # 2.5x/1.3x, 1.2x/0.7x
    (lift,) = page.rows("lift")
    (expected,) = results["lifts"]
    # run 1: both sides verify 2/2 (lift 0); run 2: 2/2 against 1/2 (lift +0.5)
    assert (expected["correct_rate"]["min"], expected["correct_rate"]["max"]) == (0.0, 0.5)
    assert float(lift["verified lift (median)"][1]) == expected["correct_rate"]["median"] == 0.25
    assert lift["verified lift (median)"][0] == "+25.0 pts" and "over 2 runs" in lift["spread"][0]
    assert float(lift["mean"][1]) == expected["correct_rate"]["mean"] == 0.25
    low, high = expected["correct_rate"]["ci95"]
    assert low <= 0.25 <= high and lift["95% interval of the mean"][0] == f"{low * 100:+.1f} pts to {high * 100:+.1f} pts"
    grid = {r["task"][0]: r for r in page.rows("grid")}
    assert grid["gelu"]["cmd:agent / triton-kernels"][0] == "2/2 verified · 2.50x"
    assert len(page.rows("units")) == 10
    assert {"svg", "polyline", "circle"} <= set(page.tags)  # fast_p curves and the cost scatter, inline


def test_strings_from_the_results_are_escaped_not_run(tmp_path):
    out, _ = eval_dir(tmp_path)
    raw = (out / "report.html").read_text()
    assert "<script" not in raw and "<b>output" not in raw
    page = parsed(out / "report.html")
    assert "script" not in page.tags and "b" not in page.tags
    assert EVIL in {r["task"][0] for r in page.rows("grid")}  # shown as text, exactly
    assert any(r["note"][0] == "rejected: <b>output</b> & more" for r in page.rows("units"))


def test_one_run_says_plainly_that_the_lift_has_no_spread(tmp_path):
    out, results = eval_dir(tmp_path, runs=1)
    (lift,) = parsed(out / "report.html").rows("lift")
    assert lift["samples"][1] == "1" and lift["spread"][0].startswith("one sample: no spread")
    assert results["lifts"][0]["correct_rate"]["n"] == 1


def test_pngs_of_fast_p_and_cost_are_written_beside_the_results_when_matplotlib_is_there(tmp_path):
    pytest.importorskip("matplotlib")
    out, _ = eval_dir(tmp_path, runs=1)
    for name in ("fast_p.png", "cost_quality.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_report_still_draws_its_charts_and_no_png_is_written(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any import of it now fails
    out, results = eval_dir(tmp_path, runs=1)
    page = parsed(out / "report.html")
    assert {"svg", "polyline", "circle"} <= set(page.tags) and len(page.rows("leaderboard")) == 3
    assert not list(out.glob("*.png"))
    untimed = render({"schema": "kernelwright.eval/1", "suite": "s", "runs": 1, "units": [], "aggregates": [],
                      "environment": {"device": "cpu", "timings_meaningful": False}})
    assert 'id="untimed"' in untimed and 'id="no-lift"' in untimed and "No unit was timed" in untimed


def test_every_inline_chart_is_well_formed_svg(tmp_path):
    import re
    import xml.etree.ElementTree as ET

    out, _ = eval_dir(tmp_path)
    charts = re.findall(r"<svg.*?</svg>", (out / "report.html").read_text(), flags=re.S)
    assert len(charts) == 3  # fast_p vs eager, vs compile, cost against quality
    for chart in charts:
        assert ET.fromstring(chart).tag.endswith("svg")


def test_report_command_writes_the_page_and_refuses_a_folder_without_results(tmp_path):
    out, _ = eval_dir(tmp_path, runs=1)
    (out / "report.html").unlink()
    target = tmp_path / "pages" / "eval.html"
    done = CliRunner().invoke(app, ["report", str(out), "--out", str(target)])
    assert done.exit_code == 0, done.output
    assert parsed(target).rows("leaderboard")
    refused = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert refused.exit_code == 2 and "results.json" in refused.output
    (tmp_path / "results.json").write_text('{"schema": "something else"}')
    with pytest.raises(UsageError):
        write_report(tmp_path)
