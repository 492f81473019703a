"""Rendering a profile and a comparison of two for the terminal (the CLI only calls these)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from kernelwright.tables import render


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _calls(row: dict[str, Any]) -> str:
    """Calls in a step; where the steps differ, the range too (``calls`` is then the count most steps had)."""
    spread = row.get("calls_range")
    return f"{row['calls']} ({spread[0]}-{spread[1]})" if spread else str(row["calls"])


def render_profile(console: Console, result: dict[str, Any], *, top: int, wide: bool = False) -> None:
    env = result["environment"]
    ceil = result["ceilings"]
    roof = "this CPU's measured copy bandwidth" if result["device"] == "cpu" else "the measured copy bandwidth"
    title = (f"profile {result['model']} {result['size']} {result['phase']} (batch {result['batch']}, seq "
             f"{result['seq']}, {result['dtype']}) on {env.get('device_name')}: {result['step_ms']:.3f} ms a step")
    columns = ["#", "module class", "op", "calls a step", "ms", "share", "cum.", "shapes", "bytes", "GB/s", "TFLOP/s",
               f"% roofline ({ceil['copy_gbps']:.0f} GB/s)", "bound", "saved ms", "model ×"]
    rows = []
    for r in result["rows"][:top]:
        shapes = "; ".join(r["shapes"]) + (f" (+{r['more_shapes']})" if r["more_shapes"] else "")
        rows.append([escape(str(v)) for v in (
            r["rank"], r["module_class"], r["op"], _calls(r), f"{r['time_ms']:.3f}", _pct(r["share"]),
            _pct(r["cumulative_share"]), shapes, "–" if r["bound"] == "unknown" else _bytes(r["bytes"]), f"{r['gbps']:.1f}",
            f"{r['tflops']:.3f}" if r["flops"] else "–", _pct(r["fraction_of_roofline"]), r["bound"], f"{r['savings_ms']:.3f}", f"{r['speedup_if_roofline']:.3f}")])
    render(console, title, columns, rows, key=3, wide=wide, right=tuple(columns[3:7]) + tuple(columns[8:12]) +
           tuple(columns[13:]))
    _render_targets(console, result, top, wide)
    console.print(f"roofline: {roof}, {ceil['copy_gbps']:.1f} GB/s read + write, and "
                  f"{ceil['tflops']:.3g} TFLOP/s matmul ({ceil['source']}); 'model ×' is the whole step's speedup "
                  "if that row alone ran at the roofline (Amdahl).", markup=False, highlight=False, soft_wrap=True)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    tasks = result.get("tasks") or {}
    for path in tasks.get("written", []):
        console.print(f"task: {path}", markup=False, highlight=False)
    for cls, why in (tasks.get("skipped") or {}).items():
        console.print(f"no task for {cls}: {why}", markup=False, highlight=False, style="dim")
    for kind, path in result.get("files", {}).items():
        console.print(f"wrote {path}", markup=False, highlight=False)


def _render_targets(console: Console, result: dict[str, Any], top: int, wide: bool) -> None:
    columns = ["module class", "calls", "ms", "share", "bytes", "GB/s", "% roofline", "bound", "saved ms", "model ×",
               "ops"]
    rows = [[escape(str(v)) for v in (
        t["module_class"], t["calls"], f"{t['time_ms']:.3f}", _pct(t["share"]),
        "–" if t["bound"] == "unknown" else _bytes(t["bytes"]), f"{t['gbps']:.1f}",
        _pct(t["fraction_of_roofline"]), t["bound"], f"{t['savings_ms']:.3f}", f"{t['speedup_if_roofline']:.3f}",
        ", ".join(t["ops"][:4]) + (" ..." if len(t["ops"]) > 4 else ""))] for t in result["targets"][:top]]
    render(console, "targets: each module class (or modeling function) with its own ops fused", columns, rows,
           wide=wide, right=tuple(columns[1:7]) + tuple(columns[8:10]))


def render_compare(console: Console, rows: list[dict[str, Any]], before: dict, after: dict, *, top: int,
                   wide: bool = False) -> None:
    title = (f"profile diff: {before['model']} {before['phase']} {before['step_ms']:.3f} ms → {after['model']} "
             f"{after['phase']} {after['step_ms']:.3f} ms a step")
    columns = ["module class", "op", "calls before", "calls after", "ms before", "ms after", "Δ ms", "×"]

    def ms(value):
        return "–" if value is None else f"{value:.3f}"

    cells = [[escape(str(v)) for v in (
        r["module_class"], r["op"], r["before_calls"], r["after_calls"], ms(r["before_ms"]), ms(r["after_ms"]),
        f"{r['delta_ms']:+.3f}", f"{r['speedup']:.2f}" if r["speedup"] else "–")] for r in rows[:top]]
    render(console, title, columns, cells, key=2, wide=wide, right=tuple(columns[2:]))
    console.print("– : the op does not appear in that profile (replaced, or new: a kernel that replaced it)",
                  markup=False, highlight=False, style="dim")
