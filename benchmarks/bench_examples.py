"""Bench the hand-written example kernel of every bundled task at its default shape.

Writes ``bench_examples.csv`` and ``bench_examples.json`` to the output directory and prints a table.
Usage: ``python benchmarks/bench_examples.py [--out DIR] [--device cuda] [--tasks a,b]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kernelwright.bench.bencher import bench
from kernelwright.tasks import bundled_names

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tasks", default=",".join(bundled_names()))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for name in args.tasks.split(","):
        result = bench(name, ROOT / "examples" / f"{name}.py", device=args.device)
        results.append(result.as_json())
        for row in result.rows:
            t = row["timings"]
            rows.append({
                "date": stamp, "device": result.environment.get("device_name"), "torch": result.environment["torch"],
                "triton": result.environment["triton"], "task": name,
                "shape": "x".join(str(v) for v in row["knobs"].values()), "dtype": row["dtype"],
                "candidate_ms": t["candidate"]["median_ms"], "candidate_iqr_ms": t["candidate"]["iqr_ms"],
                "candidate_again_ms": t["candidate_repeat"]["median_ms"], "eager_ms": t["eager"]["median_ms"],
                "speedup_vs_eager": row["speedup"]["eager"], "gbps": row["gbps"],
                "fraction_of_copy": row["fraction_of_copy"], "recheck_passed": row["recheck"]["passed"],
            })
        if not result.ok:
            rows.append({"task": name, "date": stamp, "recheck_passed": False,
                         "shape": "; ".join(f["check"] for f in result.failures)})
    with open(args.out / "bench_examples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}, key=list(rows[0]).index
                                                     if rows else None))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "bench_examples.json").write_text(json.dumps(results, indent=1))
    table = Table(title=f"example kernels, {rows[0].get('device') if rows else ''} ({stamp})")
    for col in ("task", "shape", "dtype", "ms", "again", "eager ms", "× eager", "GB/s", "% copy", "ok"):
        table.add_column(col, justify="right")
    for r in rows:
        if "candidate_ms" not in r:
            table.add_row(r["task"], r["shape"], "", "", "", "", "", "", "", "[red]FAIL[/]")
            continue
        frac = r["fraction_of_copy"]
        table.add_row(r["task"], r["shape"], r["dtype"], f"{r['candidate_ms']:.4f}", f"{r['candidate_again_ms']:.4f}",
                      f"{r['eager_ms']:.4f}", f"{r['speedup_vs_eager']:.2f}", f"{r['gbps']:.0f}",
                      f"{100 * frac:.1f}" if frac else "-", "ok" if r["recheck_passed"] else "[red]FAIL[/]")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
