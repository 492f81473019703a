"""The suite benchmark: every bundled task at every shape in its SHAPES, the hand-written example kernel
against every baseline (eager, native, per-shape torch.compile, installed peers).

This is where the project's performance claims come from. Writes, under ``--out``: per task
``bench_<task>.csv/.json/.png`` (report.py's schema), and ``suite.csv``, ``suite.json`` and ``suite.md``
(one line per task and shape). Prints the table last.

    python benchmarks/suite.py --out out/suite [--tasks rmsnorm,softmax] [--shapes all|default]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kernelwright.bench import report
from kernelwright.bench.bencher import bench
from kernelwright.tasks import bundled_names, load_task

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("task", "shape", "dtype", "MB", "candidate_ms", "again_ms", "eager_ms", "native_ms", "compile_ms",
           "peers", "fastest_baseline", "x_fastest", "x_compile", "gbps", "pct_copy", "bound", "compile_s", "recheck")


def summarize(result) -> list[dict]:
    lines = []
    for row in result.rows:
        t = row["timings"]
        ms = lambda name: round(t[name]["median_ms"], 4) if name in t else None  # noqa: E731
        best = row["fastest_baseline"]
        lines.append({
            "task": result.task, "shape": "x".join(str(v) for v in row["knobs"].values()), "dtype": row["dtype"],
            "MB": round(row["bytes"] / 1e6, 1), "candidate_ms": ms("candidate"), "again_ms": ms("candidate_repeat"),
            "eager_ms": ms("eager"), "native_ms": ms("native"), "compile_ms": ms("compile"),
            "peers": "; ".join(f"{n}={ms(n)}" for n in t if n.startswith("peer:")),
            "fastest_baseline": best, "x_fastest": round(row["speedup"][best], 3) if best else None,
            "x_compile": round(row["speedup"]["compile"], 3) if "compile" in row["speedup"] else None,
            "gbps": round(row["gbps"], 1), "pct_copy": round(100 * row["fraction_of_copy"], 1) if row["fraction_of_copy"] else None,
            "bound": row["bound"], "compile_s": row["notes"].get("compile_seconds"),
            "recheck": "ok" if row["recheck"]["passed"] else "FAILED",
        })
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/suite"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tasks", default=",".join(bundled_names()))
    parser.add_argument("--shapes", choices=("all", "default"), default="all")
    parser.add_argument("--rep-ms", type=float, default=100.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines, failures, environment = [], [], None
    for name in args.tasks.split(","):
        task = load_task(name)
        shapes = [dict(s) for s in task.bench_shapes] if args.shapes == "all" else [dict(task.knobs)]
        result = bench(name, ROOT / "examples" / f"{name}.py", device=args.device, shapes=shapes, rep_ms=args.rep_ms)
        report.write(result, args.out, plot=True)
        environment = environment or {**result.environment, "ceilings": result.ceilings}
        lines += summarize(result)
        failures += [f"{name}: {f['check']}: {f['message']}" for f in result.failures]
        print(f"{name}: {len(result.rows)} shapes in {result.seconds:.0f} s", flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with open(args.out / "suite.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
    (args.out / "suite.json").write_text(json.dumps({"date": stamp, "environment": environment, "rows": lines,
                                                     "failures": failures}, indent=1))
    ratios = [line["x_compile"] for line in lines if line["x_compile"]]
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
    with open(args.out / "suite.md", "w") as f:
        f.write(f"{stamp} — {environment and environment.get('device_name')}, torch {environment and environment.get('torch')}, "
                f"triton {environment and environment.get('triton')}\n\n| " + " | ".join(COLUMNS) + " |\n|"
                + "---|" * len(COLUMNS) + "\n")
        for line in lines:
            f.write("| " + " | ".join("" if line[c] is None else str(line[c]) for c in COLUMNS) + " |\n")
        if geomean:
            f.write(f"\ngeometric mean of candidate speedup over per-shape torch.compile: {geomean:.3f} "
                    f"({len(ratios)} shapes)\n")
    table = Table(title=f"suite on {environment and environment.get('device_name')} ({stamp})")
    for column in ("task", "shape", "cand ms", "eager", "native", "compile", "× fastest", "× compile", "GB/s", "% copy"):
        table.add_column(column, justify="right")
    for line in lines:
        table.add_row(line["task"], line["shape"], str(line["candidate_ms"]), str(line["eager_ms"]),
                      str(line["native_ms"]), str(line["compile_ms"]), f"{line['x_fastest']} {line['fastest_baseline']}",
                      str(line["x_compile"]), str(line["gbps"]), str(line["pct_copy"]))
    console = Console(width=170)
    console.print(table)
    if geomean:
        console.print(f"geomean × torch.compile: {geomean:.3f} over {len(ratios)} shapes")
    for failure in failures:
        console.print(f"[red]{failure}[/]")


if __name__ == "__main__":
    main()
