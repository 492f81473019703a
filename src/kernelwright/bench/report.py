"""Writing a bench result to disk: a CSV with one line per shape and implementation, the JSON, a PNG.

CSV columns (``CSV_COLUMNS``) are a stable schema: each line carries the device, versions and date so a
number never travels without them.
"""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

from kernelwright.bench.bencher import BenchResult
from kernelwright.errors import UsageError

CSV_COLUMNS = ("date", "device", "torch", "triton", "task", "shape", "dtype", "bytes", "implementation",
               "median_ms", "q25_ms", "q75_ms", "min_ms", "n", "wall_ms", "graph_median_ms", "gbps",
               "fraction_of_copy", "candidate_speedup", "bound", "recheck_passed", "timings_meaningful")


def csv_rows(result: BenchResult, *, date: str | None = None) -> list[dict]:
    date = date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env = result.environment
    copy = (result.ceilings or {}).get("copy_gbps")
    rows = []
    for row in result.rows:
        for name, t in row["timings"].items():
            gbps = row["bytes"] / (t["median_ms"] * 1e-3) / 1e9 if t["median_ms"] > 0 else None
            graph = (row.get("graph") or {}).get(name)
            rows.append({
                "date": date, "device": env.get("device_name"), "torch": env.get("torch"), "triton": env.get("triton"),
                "task": result.task, "shape": "x".join(f"{k}={v}" for k, v in row["knobs"].items()),
                "dtype": row["dtype"], "bytes": row["bytes"], "implementation": name,
                **{k: t[k] for k in ("median_ms", "q25_ms", "q75_ms", "min_ms", "n")},
                "wall_ms": (row.get("wall_ms") or {}).get(name), "graph_median_ms": graph["median_ms"] if graph else None,
                "gbps": gbps, "fraction_of_copy": gbps / copy if gbps and copy else None,
                "candidate_speedup": row["speedup"].get(name), "bound": row.get("bound"),
                "recheck_passed": row["recheck"]["passed"], "timings_meaningful": result.timings_meaningful,
            })
    return rows


def write(result: BenchResult, out: Path, *, stem: str | None = None, plot: bool = True) -> list[Path]:
    """Write ``<stem>.csv``, ``<stem>.json`` and (when matplotlib is installed and ``plot``) ``<stem>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"bench_{result.task}"
    written = [out / f"{stem}.csv", out / f"{stem}.json"]
    with open(written[0], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(result))
    written[1].write_text(json.dumps(result.as_json(), indent=1))
    if plot and result.rows:
        written.append(plot_bandwidth(result, out / f"{stem}.png"))
    return written


def plot_bandwidth(result: BenchResult, path: Path) -> Path:
    """GB/s against problem size for the candidate and each baseline, the measured copy ceiling as a line.
    Interpreter timings (a CPU) are drawn as what they are instead: milliseconds per sweep entry."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("Plotting needs matplotlib: pip install 'kernelwright[plot]' (or pass --no-plot).") from None
    rows = sorted(result.rows, key=lambda r: r["bytes"])
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    names = [n for n in rows[0]["timings"] if n != "candidate_repeat"]
    xs, labels = x_axis(result, rows)
    for name in names:
        points = [(x, _y(result, r, name)) for x, r in zip(xs, rows) if name in r["timings"]]
        style = dict(linewidth=2.5, color="black") if name == "candidate" else dict(linewidth=1.2)
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name, **style)
    title = f"{result.task} ({rows[0]['dtype']}) on {result.environment.get('device_name')}"
    if result.timings_meaningful:
        copy = (result.ceilings or {}).get("copy_gbps")
        if copy:
            ax.axhline(copy, linestyle="--", color="grey", label=f"measured copy {copy:.0f} GB/s")
        ax.set_xscale("log")
        ax.set_xlabel("minimal bytes moved (MiB)")
        ax.set_ylabel("GB/s (minimal bytes / median time)")
    else:
        ax.set_xticks(xs, labels, rotation=20, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel("sweep entry: the shape actually run (shrunk to fit the CPU)")
        ax.set_ylabel("median ms (interpreter: NOT meaningful)")
        title += "\nNOT MEANINGFUL: interpreter timings of shrunk shapes; run on a GPU for a bandwidth sweep"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def x_axis(result: BenchResult, rows: list[dict]) -> tuple[list[float], list[str]]:
    """Positions and labels of the sweep's rows. Meaningful timings: minimal bytes in MiB. Interpreter
    timings: one tick per entry, labelled with the shape run -- on a CPU every shape shrinks to fit the
    interpreter, often all to one size, and a size axis would stack the whole sweep on one point."""
    shapes = ["×".join(str(v) for v in r["knobs"].values()) for r in rows]
    if result.timings_meaningful:
        return [r["bytes"] / 2**20 for r in rows], shapes
    return [float(i) for i in range(len(rows))], [f"{i + 1}: {s}" for i, s in enumerate(shapes)]


def _y(result: BenchResult, row: dict, name: str) -> float:
    ms = row["timings"][name]["median_ms"]
    return row["bytes"] / (ms * 1e-3) / 1e9 if result.timings_meaningful else ms
