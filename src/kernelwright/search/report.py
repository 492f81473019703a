"""The final table of an optimize run, rendered with rich (kept out of cli.py, which stays thin)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _config_text(cfg: dict) -> str:
    if cfg.get("one_pass"):
        shape = f"one-pass ×{cfg['rows']} rows"
    else:
        shape = f"looped BLOCK={cfg['block']}"
    persistent = f", persistent {cfg['programs_per_sm']}/SM" if cfg.get("programs_per_sm") else ""
    return f"{shape}, {cfg['warps']} warps, {cfg['stages']} stages{persistent}"


def render_optimize(console: Console, result) -> None:
    rows_by_knobs = {str(r["knobs"]): r for r in result.final_rows}
    baselines = sorted({b for r in result.final_rows for b in r.get("speedup", {})})
    table = Table(title=f"optimize {result.task} on {result.device} → {result.best_path or '(no best kernel)'}")
    for column in ("shape", "configuration", "tuned in", "ms", "GB/s", "% of copy BW", *[f"× {b}" for b in baselines]):
        table.add_column(column, justify="right" if column not in ("configuration",) else "left")
    for b in result.buckets:
        row = rows_by_knobs.get(str(b["knobs"]))
        shape = "×".join(str(v) for v in b["knobs"].values())
        tuned = "prior (not timed)" if b["round"] is None else f"round {b['round']}"
        if row:
            frac = row.get("fraction_of_copy")
            cells = [f"{row['timings']['candidate']['median_ms']:.4f}", f"{row['gbps']:.0f}",
                     f"{100 * frac:.0f}" if frac else "–"]
            cells += [f"{row['speedup'][k]:.2f}" if k in row.get("speedup", {}) else "–" for k in baselines]
        else:
            cells = ["–", "–", "–"] + ["–"] * len(baselines)
        table.add_row(shape, _config_text(b["config"]), tuned, *cells)
    console.print(table)
    if result.ceilings:
        console.print(f"measured copy bandwidth: {result.ceilings['copy_gbps']:.0f} GB/s (read + write)")
    if result.device == "cpu":
        console.print("[yellow]CPU run:[/] kernels verified through the Triton interpreter; nothing was tuned by "
                      "time. Run on a GPU to tune and measure.")
    reused = result.evaluations.get("reused", 0)
    console.print(f"{result.evaluations.get('run', 0)} evaluation(s) run, {reused} reused from {result.out / 'run.sqlite'}"
                  f" in {result.seconds:.0f} s", highlight=False)
    verdict = "[bold green]BEST KERNEL VERIFIED[/]" if result.accepted else "[bold red]NO VERIFIED KERNEL[/]"
    console.print(f"{verdict}: {result.message}", highlight=False)
