"""The offline agent on the whole suite: `kernelwright optimize` on every bundled task, on a GPU.

For each task: the wall time of the run, and for each benchmark shape the best kernel's GB/s, % of the
measured copy bandwidth and its ratio to every baseline the bench module offers (eager, native,
per-shape torch.compile, peers). A task outside the generator's coverage is listed as such, with the op
that stopped it. Writes ``optimize_suite.csv`` and ``optimize_suite.md`` under ``--out`` (run
directories in ``--out/runs/<task>``) and prints the table last.

    python benchmarks/optimize_suite.py --out out/optimize [--tasks rmsnorm,softmax] [--budget 10] [--max-minutes 3]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kernelwright.hardware import describe, resolve_device
from kernelwright.run import OptimizeLimit, optimize
from kernelwright.tasks import bundled_names

COLUMNS = ("task", "shape", "dtype", "status", "run_s", "projected_s", "rounds", "stop", "best_ms", "gbps",
           "pct_copy", "x_eager", "x_native", "x_compile", "x_fastest", "fastest_baseline", "verdict", "config", "note")
SHOWN = ("task", "shape", "status", "run_s", "rounds", "gbps", "pct_copy", "x_eager", "x_native", "x_compile")


def rows_for(task: str, result, seconds: float) -> list[dict]:
    out = []
    for bucket in result.buckets:
        row = next((r for r in result.final_rows if r["knobs"] == bucket["knobs"]), None)
        line = {"task": task, "shape": "x".join(str(v) for v in bucket["knobs"].values()),
                "status": "verified" if result.accepted else "failed", "run_s": round(seconds, 1),
                "rounds": result.tuning.get("rounds_run"), "stop": result.tuning.get("stopped"),
                "projected_s": result.tuning.get("projected_end_s"),
                "verdict": result.verdict.get("sentence"),
                "config": bucket["config"], "note": "" if result.accepted else result.message}
        if row:
            speed = row.get("speedup", {})
            fastest = row.get("fastest_baseline")
            frac = row.get("fraction_of_copy")
            line.update(dtype=row["dtype"], best_ms=round(row["timings"]["candidate"]["median_ms"], 4),
                        gbps=round(row["gbps"], 1), pct_copy=round(100 * frac, 1) if frac else None,
                        x_eager=_r(speed.get("eager")), x_native=_r(speed.get("native")),
                        x_compile=_r(speed.get("compile")), x_fastest=_r(speed.get(fastest)),
                        fastest_baseline=fastest)
        out.append(line)
    return out


def _r(x):
    return None if x is None else round(x, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/optimize"))
    parser.add_argument("--tasks", default=",".join(bundled_names()))
    parser.add_argument("--budget", type=int, default=None, help="tuning rounds per task (default: optimize's)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="time budget per task (default: optimize's, 3 minutes; 0: none)")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    console = Console(width=160)  # logs are files: rich would wrap the table at 80 columns
    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    lines: list[dict] = []
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        console.rule(task)
        started = time.monotonic()
        try:
            result = optimize(task, budget=args.budget, minutes=args.max_minutes, out=args.out / "runs" / task,
                              device=device, report=lambda m: console.log(m, highlight=False))
        except OptimizeLimit as exc:
            lines.append({"task": task, "status": "not covered", "run_s": round(time.monotonic() - started, 1),
                          "note": str(exc)})
            continue
        lines.extend(rows_for(task, result, time.monotonic() - started))
    with open(args.out / "optimize_suite.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
    facts = describe(device)
    compile_ratios = [ln["x_compile"] for ln in lines if ln.get("x_compile")]
    geo = math.exp(sum(math.log(x) for x in compile_ratios) / len(compile_ratios)) if compile_ratios else None
    md = [f"# optimize suite — {facts.get('device_name')} — {datetime.date.today()}",
          f"torch {facts['torch']}, triton {facts['triton']}; geometric mean × torch.compile: "
          f"{geo:.2f}" if geo else "no torch.compile ratios", "",
          "| " + " | ".join(COLUMNS[:-2]) + " |", "|" + "---|" * (len(COLUMNS) - 2)]
    md += ["| " + " | ".join("" if ln.get(c) is None else str(ln.get(c)) for c in COLUMNS[:-2]) + " |" for ln in lines]
    (args.out / "optimize_suite.md").write_text("\n".join(md) + "\n")
    table = Table(title=f"optimize suite on {facts.get('device_name')}")
    for c in SHOWN:
        table.add_column(c, justify="right")
    for ln in lines:
        table.add_row(*["" if ln.get(c) is None else str(ln.get(c)) for c in SHOWN])
    console.print(table)
    if geo:
        console.print(f"geometric mean × torch.compile over {len(compile_ratios)} shapes: {geo:.2f}")
    for ln in {ln["task"]: ln for ln in lines if ln.get("stop")}.values():
        projected = f" (projected {ln['projected_s']} s)" if ln.get("projected_s") else ""
        console.print(f"{ln['task']}: {ln['run_s']} s{projected}, {ln['rounds']} tuning round(s), stopped: "
                      f"{ln['stop']}", highlight=False)
    for ln in lines:
        if ln.get("status") == "not covered":
            console.print(f"[yellow]{ln['task']}[/]: {ln['note']}", highlight=False)


if __name__ == "__main__":
    main()
