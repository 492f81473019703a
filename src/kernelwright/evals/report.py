"""The eval report: one self-contained HTML page (inline CSS and SVG, no script, no network) from results.json.

``kernelwright report EVAL_DIR [--out FILE.html]`` writes it (default ``EVAL_DIR/report.html``), and every
``kernelwright eval`` writes it at the end. Sections: the leaderboard per (agent, skill), fast_p against
eager and compile (table and curves), cost against quality, the task x (agent, skill) grid of verdicts and
speedups, the skill lift with its spread over runs, every unit with its verdict, the units that did not
run, and per optimize unit its run (``run_report.py``: trajectory, lineage, rejections). Given an optimize
run directory instead, ``report`` writes that run's page. Every number cell carries its raw value in
``data-value`` so a reader (or a test) can check it against results.json; every string from the results
goes through ``html.escape``.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable

from kernelwright.errors import UsageError
from kernelwright.evals.metrics import FAST_P, skill_lifts
from kernelwright.evals.runner import SCHEMA
from kernelwright.run.artifacts import atomic_write

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;
     padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top;max-width:28em;
      overflow-wrap:anywhere}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.ok{background:#e8f5e9}td.bad{background:#fdecea}td.skip{background:#f4f4f4;color:#777}
.note{color:#555;font-size:.9em}.charts{display:flex;flex-wrap:wrap;gap:1.5em}
svg{background:#fff;border:1px solid #eee}svg text{font-size:11px;font-family:inherit}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def group_label(agent: str, skill: str, limit: int = 28) -> str:
    """A chart label: a cmd: agent's whole command line would cover the chart (tables show it in full)."""
    return f"{agent if len(agent) <= limit else agent[:limit - 1] + '…'} / {skill}"


def load_results(eval_dir: str | Path) -> dict[str, Any]:
    path = Path(eval_dir) / "results.json"
    if not path.is_file():
        raise UsageError(f"{eval_dir} has neither results.json nor run.sqlite; pass the --out folder of a "
                         "`kernelwright eval` or `kernelwright optimize` run.")
    try:
        results = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); rerun the eval to rewrite it.") from None
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise UsageError(f"{path} is not an eval result (schema {SCHEMA} expected); pass an eval's --out folder.")
    return results


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of the eval (results.json) or optimize run (run.sqlite) in ``folder``; its path."""
    from kernelwright.evals.run_report import is_run_dir, render_run_page

    folder = Path(folder)
    if not (folder / "results.json").is_file() and is_run_dir(folder):
        page = render_run_page(folder)
    else:
        page = render(load_results(folder))
    path = Path(out) if out else folder / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, page)
    return path


# ---- numbers and cells ----------------------------------------------------------------------------

def fmt(value: Any, kind: str = "float") -> str:
    """How a number reads on the page; '?' is unknown (not measured, or not meaningful on a CPU)."""
    if value is None:
        return "?"
    if kind == "pct":  # a share in [0, 1]
        return f"{100 * value:.1f}%"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "signed_pct":
        return f"{100 * value:+.1f} pts"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "usd":
        return f"${value:.4f}"
    if kind == "s":
        return f"{value:.1f} s"
    return f"{value:.2f}"


def num(value: Any, kind: str = "float", css: str = "num") -> str:
    raw = "" if value is None else repr(value)
    return f'<td class="{css}" data-value="{esc(raw)}">{esc(fmt(value, kind))}</td>'


def text(value: Any, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f"<td{klass}>{esc('' if value is None else value)}</td>"


def table(table_id: str, headers: Iterable[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ---- sections -------------------------------------------------------------------------------------

def header(results: dict[str, Any]) -> str:
    env = results.get("environment") or {}
    versions = ", ".join(f"{k} {env[k]}" for k in ("kernelwright", "torch", "triton", "python") if env.get(k))
    parts = [f"<h1>kernelwright eval: {esc(results.get('suite'))}</h1>",
             f'<p class="note">device {esc(env.get("device"))} · {esc(versions)} · {esc(env.get("platform", ""))}'
             f" · runs per task {esc(results.get('runs'))} · written "
             f"{esc(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))}</p>"]
    if not env.get("timings_meaningful"):
        parts.append('<p class="note" id="untimed">Timings are not meaningful on this device (a CPU runs Triton '
                     "through its interpreter): only correctness is scored, speedups and fast_p read '?'.</p>")
    return "".join(parts)


def leaderboard(results: dict[str, Any]) -> str:
    headers = ("agent", "skill", "units", "tasks", "verified", "verified rate", "fast_1 eager", "fast_1 compile",
               "geomean vs eager", "geomean vs compile", "median vs eager", "% roofline", "tokens in", "tokens out",
               "dollars", "LLM calls", "repairs", "tool calls", "wall time")
    rows = []
    ranked = sorted(results.get("aggregates", []),
                    key=lambda g: (-(g["fast_p_eager"].get("1.0") or 0), -(g["correct_rate"] or 0), g["agent"]))
    for g in ranked:
        t = g.get("totals") or {}
        rows.append("".join([
            text(g["agent"]), text(g["skill"]), num(g["units"], "int"), num(g["tasks"], "int"),
            num(g["correct"], "int"), num(g["correct_rate"], "pct"),
            num(g["fast_p_eager"].get("1.0"), "pct"), num(g["fast_p_compile"].get("1.0"), "pct"),
            num(g["geomean_speedup_eager"], "x"), num(g["geomean_speedup_compile"], "x"),
            num(g["median_speedup_eager"], "x"), num(g["mean_roofline_pct"], "float"),
            num(t.get("tokens_in"), "int"), num(t.get("tokens_out"), "int"), num(t.get("dollars"), "usd"),
            num(t.get("llm_calls"), "int"), num(t.get("repairs"), "int"), num(t.get("tool_calls"), "int"),
            num(t.get("wall_s"), "s")]))
    note = ('<p class="note">verified: correct by kernelwright\'s verifier (the agent\'s claims count for nothing). '
            "fast_p: share of all units correct and faster than the baseline by strictly more than p "
            "(KernelBench). A cost total is '?' when any of its units' costs is unknown.</p>")
    return "<h2>Leaderboard</h2>" + table("leaderboard", headers, rows) + note


def fast_p_section(results: dict[str, Any]) -> str:
    groups = results.get("aggregates", [])
    headers = ["agent", "skill"] + [f"fast_{p:g} {b}" for b in ("eager", "compile") for p in FAST_P]
    rows = ["".join([text(g["agent"]), text(g["skill"])]
                    + [num(g[f"fast_p_{b}"].get(str(p)), "pct") for b in ("eager", "compile") for p in FAST_P])
            for g in groups]
    timed = [g for g in groups if g.get("timings_meaningful")]
    if timed:
        charts = "".join(line_chart(f"fast_p vs {b}", "p (speedup threshold)", "fast_p",
                                    [(group_label(g["agent"], g["skill"]),
                                      [(p, g[f"fast_p_{b}"][str(p)]) for p in FAST_P]) for g in timed],
                                    x_max=max(FAST_P), chart_id=f"fastp-{b}") for b in ("eager", "compile"))
        charts = f'<div class="charts">{charts}</div>'
    else:
        charts = '<p class="note">No unit was timed: no fast_p curves.</p>'
    return "<h2>fast_p</h2>" + table("fast-p", headers, rows) + charts


def cost_section(results: dict[str, Any]) -> str:
    groups = results.get("aggregates", [])
    by_dollars = groups and all((g.get("totals") or {}).get("dollars") is not None for g in groups)
    key, label = ("dollars", "dollars (total)") if by_dollars else ("wall_s", "wall time, s (total)")
    points = [(group_label(g["agent"], g["skill"]), (g.get("totals") or {}).get(key), g.get("correct_rate"))
              for g in groups]
    points = [(name, x, y) for name, x, y in points if x is not None and y is not None]
    if not points:
        return "<h2>Cost against quality</h2><p class=\"note\">No group has a known cost.</p>"
    note = "" if by_dollars else ('<p class="note">Some group\'s dollars are unknown: cost is drawn as wall '
                                  "time.</p>")
    return ("<h2>Cost against quality</h2>"
            + scatter_chart(f"verified rate against {label}", label, "verified rate", points, "cost-quality")
            + note)


def grid_section(results: dict[str, Any]) -> str:
    done = [u for u in results.get("units", []) if u.get("status", "done") == "done"]
    groups = list(dict.fromkeys((u["agent"], u["skill"]) for u in done))
    tasks = list(dict.fromkeys(u["task"] for u in done))
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for u in done:
        cells.setdefault((u["task"], u["agent"], u["skill"]), []).append(u)
    rows = []
    for task in tasks:
        row = [text(task)]
        for agent, skill in groups:
            row.append(grid_cell(cells.get((task, agent, skill), [])))
        rows.append("".join(row))
    headers = ["task"] + [f"{a} / {s}" for a, s in groups]
    return ("<h2>Tasks</h2>" + table("grid", headers, rows)
            + '<p class="note">Each cell: runs verified out of runs, and the geomean speedup vs eager of the '
              "verified ones when timed.</p>")


def grid_cell(units: list[dict[str, Any]]) -> str:
    if not units:
        return text("—", "skip")
    correct = [u for u in units if u.get("correct")]
    speeds = [u["speedup_eager"] for u in correct if u.get("speedup_eager")]
    label = f"{len(correct)}/{len(units)} verified"
    if speeds:
        geo = 1.0
        for s in speeds:
            geo *= s
        label += f" · {geo ** (1 / len(speeds)):.2f}x"
    return text(label, "ok" if len(correct) == len(units) else "bad")


def lift_section(results: dict[str, Any]) -> str:
    lifts = results.get("lifts")
    if lifts is None:  # results written before lifts were stored: the same numbers from the units
        lifts = skill_lifts([u for u in results.get("units", []) if u.get("status", "done") == "done"])
    if not lifts:
        return ('<h2>Skill lift</h2><p class="note" id="no-lift">No agent ran both with a skill and without one '
                "(--skill NAME --skill none): no lift to show.</p>")
    headers = ("agent", "skill", "tasks", "samples", "verified lift (median)", "min", "max", "mean",
               "95% interval of the mean", "fast_1 eager lift", "spread")
    rows = []
    for lift in lifts:
        rate = lift["correct_rate"]
        fast = lift.get("fast_1_eager")
        rows.append("".join([text(lift["agent"]), text(lift["skill"]), num(lift["tasks"], "int"),
                             num(rate["n"], "int"), num(rate["median"], "signed_pct"), num(rate["min"], "signed_pct"),
                             num(rate["max"], "signed_pct"), num(rate.get("mean"), "signed_pct"),
                             text(interval_words(rate.get("ci95"))),
                             num(fast["median"] if fast else None, "signed_pct"), text(spread_words(rate["n"]))]))
    return ("<h2>Skill lift</h2>" + table("lift", headers, rows)
            + '<p class="note">Lift: the rate with the skill minus the same agent\'s rate without one, on the tasks '
              "both ran; one sample per run index, so the spread is over repeated runs (--runs).</p>")


def interval_words(ci95: list[float] | None) -> str:
    if not ci95:
        return "– (one sample)"
    low, high = ci95
    return f"{fmt(low, 'signed_pct')} to {fmt(high, 'signed_pct')}"


def spread_words(n: int) -> str:
    if n <= 1:
        return "one sample: no spread (run more with --runs)"
    return f"min/median/max over {n} runs"


def units_section(results: dict[str, Any]) -> str:
    headers = ("agent", "skill", "task", "run", "verdict", "vs eager", "vs compile", "% roofline", "tokens",
               "dollars", "repairs", "tool calls", "wall time", "note")
    rows = []
    for u in results.get("units", []):
        if u.get("status", "done") != "done":
            continue
        verdict = ("verified", "ok") if u.get("correct") else ("rejected", "bad")
        rows.append("".join([text(u["agent"]), text(u["skill"]), text(u["task"]), num(u["run"], "int"),
                             text(verdict[0], verdict[1]), num(u.get("speedup_eager"), "x"),
                             num(u.get("speedup_compile"), "x"), num(u.get("roofline_pct")),
                             num(u.get("tokens"), "int"), num(u.get("dollars"), "usd"), num(u.get("repairs"), "int"),
                             num(u.get("tool_calls"), "int"), num(u.get("wall_s"), "s"), text(u.get("note"))]))
    return "<h2>Units</h2>" + table("units", headers, rows)


def skipped_section(results: dict[str, Any]) -> str:
    skipped = [u for u in results.get("units", []) if u.get("status", "done") != "done"]
    if not skipped:
        return ""
    rows = ["".join([text(u["agent"]), text(u["skill"]), text(u["task"]), num(u["run"], "int"),
                     text(u.get("status"), "skip"), text(u.get("note"))]) for u in skipped]
    return ("<h2>Not run</h2>" + table("skipped", ("agent", "skill", "task", "run", "status", "note"), rows)
            + '<p class="note">No verdict on any kernel: these units never started (skipped-for-budget) or did not '
              "finish (a dead worker, an error in kernelwright). A rerun with the same --out runs them (give a "
              "budget skip a larger --max-dollars).</p>")


def cases_section(results: dict[str, Any]) -> str:
    """An evals.json suite's cases: what each agent was asked, and the assertions kept for the record."""
    cases = results.get("cases") or []
    if not cases:
        return ""
    rows = ["".join([text(c.get("name")), text(c.get("prompt")), text(c.get("expected_output")),
                     text("; ".join(c.get("assertions") or []))]) for c in cases]
    return ("<h2>Cases</h2>" + table("cases", ("case", "prompt", "expected output", "assertions"), rows)
            + '<p class="note">Assertions are recorded, not judged: a case\'s verdict is kernelwright\'s verifier '
              "and bench.</p>")


def runs_section(results: dict[str, Any]) -> str:
    """Each optimize unit's run: trajectory, lineage and rejections, folded (a cmd agent's unit has no store)."""
    from kernelwright.evals.run_report import is_run_dir, load_run, render_run_section

    parts = []
    for u in results.get("units", []):
        if u.get("status", "done") != "done" or not u.get("out") or not is_run_dir(u["out"]):
            continue
        title = f"{u['agent']} / {u['skill']} / {u['task']} / run {u['run']}"
        try:
            section = render_run_section(load_run(u["out"]), title)
        except UsageError as exc:  # a damaged store costs its section, not the report
            section = f'<p class="note">{esc(exc)}</p>'
        parts.append(f"<details><summary>{esc(title)}</summary>{section}</details>")
    return "<h2>Optimize runs</h2>" + "".join(parts) if parts else ""


def render(results: dict[str, Any]) -> str:
    body = "".join([header(results), leaderboard(results), fast_p_section(results), cost_section(results),
                    grid_section(results), lift_section(results), units_section(results), skipped_section(results),
                    cases_section(results), runs_section(results)])
    title = esc(f"kernelwright eval: {results.get('suite')}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


# ---- inline SVG charts (no matplotlib, nothing fetched) -------------------------------------------

W, H, PAD, RIGHT, TOP = 460, 300, 46, 24, 28  # the plot area; a legend row per series is added below
LEGEND_ROW = 14


def nice_max(value: float) -> float:
    """The axis end: the smallest 1, 2, 2.5 or 5 x 10^k at or above ``value`` (ticks then read plainly)."""
    if value <= 0:
        return 1.0
    scale = 10 ** math.floor(math.log10(value))
    return next(step * scale for step in (1, 2, 2.5, 5, 10) if step * scale >= value)


def _x(value: float, x_max: float) -> float:
    return PAD + (W - RIGHT - PAD) * (value / x_max if x_max else 0)


def _y(value: float, y_max: float) -> float:
    return H - PAD - (H - PAD - TOP) * (value / y_max if y_max else 0)


def _frame(title: str, x_label: str, y_label: str, chart_id: str, x_max: float, y_max: float,
           legend: list[str], x_ticks: list[float] | None = None) -> list[str]:
    height = H + LEGEND_ROW * len(legend)
    parts = [f'<svg id="{esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
             f'viewBox="0 0 {W} {height}" role="img"><title>{esc(title)}</title>',
             f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">{esc(title)}</text>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - RIGHT}" y2="{H - PAD}" stroke="#444"/>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{PAD}" y2="{TOP}" stroke="#444"/>',
             f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{esc(x_label)}</text>',
             f'<text x="12" y="{H / 2}" text-anchor="middle" transform="rotate(-90 12 {H / 2})">{esc(y_label)}</text>']
    for tick in x_ticks if x_ticks is not None else [i / 4 * x_max for i in range(5)]:
        parts.append(f'<text x="{_x(tick, x_max):.1f}" y="{H - PAD + 14}" text-anchor="middle">{tick:.3g}</text>')
    for i in range(5):
        y = _y(i / 4 * y_max, y_max)
        parts.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{i / 4 * y_max:.3g}</text>')
        parts.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
    for i, name in enumerate(legend):  # below the plot: a legend inside it would cover curves at fast_p = 1
        parts.append(f'<text x="{PAD}" y="{H + LEGEND_ROW * i + 4}" fill="{PALETTE[i % len(PALETTE)]}">'
                     f"■ {esc(name)}</text>")
    return parts


def line_chart(title: str, x_label: str, y_label: str, series: list[tuple[str, list[tuple[float, Any]]]], *,
               x_max: float, chart_id: str, y_max: float = 1.0, x_ticks: list[float] | None = None) -> str:
    parts = _frame(title, x_label, y_label, chart_id, x_max, y_max, [name for name, _ in series], x_ticks)
    for i, (name, points) in enumerate(series):
        known = [(x, y) for x, y in points if y is not None]
        coords = " ".join(f"{_x(x, x_max):.1f},{_y(y, y_max):.1f}" for x, y in known)
        parts.append(f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="2" '
                     f'points="{coords}"><title>{esc(name)}</title></polyline>')
    return "".join(parts) + "</svg>"


def scatter_chart(title: str, x_label: str, y_label: str, points: list[tuple[str, float, float]],
                  chart_id: str) -> str:
    x_max = nice_max(max(x for _, x, _ in points))
    parts = _frame(title, x_label, y_label, chart_id, x_max, 1.0, [name for name, _, _ in points])
    for i, (name, x, y) in enumerate(points):
        parts.append(f'<circle cx="{_x(x, x_max):.1f}" cy="{_y(y, 1.0):.1f}" r="5" fill="{PALETTE[i % len(PALETTE)]}" '
                     f'fill-opacity="0.8"><title>{esc(name)}: {esc(fmt(y, "pct"))}</title></circle>')
    return "".join(parts) + "</svg>"
