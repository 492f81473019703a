"""The final table of an optimize run (every agent), rendered with rich (kept out of cli.py, which stays
thin). Every interpolated value is escaped: rich would read "[llm]" or "x[i]" as markup."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from kernelwright.run.verdict import FASTER, NONE, SLOWER, baseline_name
from kernelwright.search.config import LaunchConfig, as_config
from kernelwright.tables import render


def _config_text(cfg: LaunchConfig | dict, kind: str | None = None) -> str:
    cfg = as_config(cfg)  # a result's buckets hold the stored (dict) form
    if kind == "pointwise":  # no rows: a flat block of elements per program
        shape = f"BLOCK={cfg.block} elements"
    elif cfg.column:  # a reduced middle dim: a tile of inner elements, the reduced dim in steps
        shape = f"column: {cfg.rows} inner × {cfg.block} reduced"
    elif cfg.one_pass:
        shape = f"one-pass ×{cfg.rows} rows"
    else:
        shape = f"looped BLOCK={cfg.block}"
    if cfg.split:  # few long rows (or tall columns): each split across programs, then combined
        shape = f"split ~{cfg.split} programs/SM, {shape}"
    persistent = f", persistent {cfg.programs_per_sm}/SM" if cfg.programs_per_sm else ""
    return f"{shape}, {cfg.warps} warps, {cfg.stages} stages{persistent}"


def _shape_text(knobs: dict) -> str:
    return "×".join(str(v) for v in knobs.values())


def _timing_cells(row: dict | None, shape: dict | None, baselines: list[str]) -> list[str]:
    """ms, GB/s, % of copy, × each baseline, and the ratio to the fastest baseline of one shape."""
    if not row:
        return ["–"] * (4 + len(baselines))
    frac = row.get("fraction_of_copy")
    cells = [f"{row['timings']['candidate']['median_ms']:.4f}", f"{row['gbps']:.0f}", f"{100 * frac:.0f}" if frac else "–"]
    cells += [f"{row['speedup'][k]:.2f}" if k in row.get("speedup", {}) else "–" for k in baselines]
    if shape:
        style = "green" if shape["ratio"] >= 1 else "red"
        cells.append(f"[{style}]{shape['ratio']:.2f}[/] vs {escape(baseline_name(shape['fastest_baseline']))}")
    else:
        cells.append("–")
    return cells


def _table(result) -> tuple[str, list[str], list[list[str]]]:
    """Title, columns and rows of the final table: one row per shape bucket (offline) or final shape (LLM)."""
    rows_by_knobs = {str(r["knobs"]): r for r in result.final_rows}
    shapes_by_knobs = {str(s["knobs"]): s for s in (result.verdict or {}).get("shapes", [])}
    baselines = sorted({b for r in result.final_rows for b in r.get("speedup", {})})
    title = f"optimize {result.task} ({result.agent}) on {result.device} → {result.best_path or '(no best kernel)'}"
    offline = bool(result.buckets)
    columns = ["shape"] + (["configuration", "tuned in"] if offline else ["dtype"])
    timed = bool(result.final_rows)  # untimed (a CPU run): no columns of dashes, a line below says why
    columns += ["ms", "GB/s", "% of copy BW", *[f"× {b}" for b in baselines], "× fastest baseline"] if timed else []
    rows = []
    if offline:
        for b in result.buckets:
            key = str(b["knobs"])
            tuned = "prior (not timed)" if b["round"] is None else f"round {b['round']}"
            rows.append([escape(_shape_text(b["knobs"])), escape(_config_text(b["config"], b.get("kind"))), tuned,
                         *(_timing_cells(rows_by_knobs.get(key), shapes_by_knobs.get(key), baselines) if timed else [])])
    else:
        for row in result.final_rows:
            key = str(row["knobs"])
            rows.append([escape(_shape_text(row["knobs"])), escape(str(row.get("dtype"))),
                         *_timing_cells(row, shapes_by_knobs.get(key), baselines)])
    return title, columns, rows


def _verdict_line(result) -> str:
    verdict = result.verdict or {}
    status = verdict.get("status")
    if not result.accepted or status == NONE:
        return f"[bold red]NO VERIFIED KERNEL[/]: {escape(result.message)}"
    sentence = escape(verdict.get("sentence", result.message))
    if status == FASTER:
        return f"[bold green]BEST KERNEL VERIFIED[/], {sentence}"
    if status == SLOWER:
        return f"[bold yellow]BEST KERNEL SLOWER THAN ITS BASELINE[/]: {sentence}"
    return f"[bold green]BEST KERNEL VERIFIED[/] (untimed): {sentence}"


def render_optimize(console: Console, result, wide: bool = False) -> None:
    title, columns, rows = _table(result)
    render(console, title, columns, rows, wide=wide, right=tuple(c for c in columns if c != "configuration"))
    if result.ceilings:
        console.print(f"measured copy bandwidth: {result.ceilings['copy_gbps']:.0f} GB/s (read + write)")
    if result.device == "cpu":
        console.print("[yellow]CPU run:[/] kernels verified through the Triton interpreter; nothing was timed. "
                      "Run on a GPU to tune and measure.")
    session = result.session
    if session:
        totals = session.get("totals") or {}
        cost = f"${totals.get('dollars', 0.0):.2f}" + (" (some calls unpriced)" if totals.get("calls_without_price") else "")
        console.print(escape(f"stopped: {session['stop_reason']}; {session['candidates']} candidates, "
                             f"{session['accepted']} of them accepted (the seed kernel not counted); {totals.get('calls', 0)} LLM calls, "
                             f"{totals.get('tokens', 0)} tokens, {cost}"), highlight=False)
    tuning = result.tuning
    if tuning and result.device != "cpu":
        console.print(escape(f"tuning: {tuning['rounds_run']} of {tuning['rounds_budget']} round(s), stopped: "
                             f"{tuning['stopped']}; run {result.seconds:.0f} s"
                             + (f" of a {tuning['time_budget_s']:.0f}-s budget" if tuning.get("time_budget_s") else "")),
                      highlight=False)
    reused = result.evaluations.get("reused", 0)
    console.print(escape(f"{result.evaluations.get('run', 0)} evaluation(s) run, {reused} reused from "
                         f"{result.out / 'run.sqlite'} in {result.seconds:.0f} s"), highlight=False)
    console.print(_verdict_line(result), highlight=False)
