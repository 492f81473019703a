"""The local executor's scaling: the same offline eval on 1 GPU and on N GPUs, and whether timings agree.

Runs ``kernelwright eval --suite SUITE --agent offline --executor local --gpus G`` twice, each in a fresh
directory: once on the first GPU alone, once on all the GPUs given. Per run it records the wall time,
units and evaluations (verify/bench runs of the offline agent, from each unit's ``summary.json``) per
minute; the scaling is the ratio of the rates (the issue's target: >= 1.8x on 2 GPUs). Per (task, shape,
implementation) it compares the median times of the final benchmark with 1 and with N GPUs: the eager
and compile baselines are the same code in both runs, and the candidate is compared only when both runs
kept the same ``best.py``; a pair agrees when the medians differ by no more than the sum of their IQRs
(the noise floor of the two measurements).

    python benchmarks/executor_scaling.py --out OUT [--gpus 0,1] [--suite bundled] [--max-minutes 3]
                                          [--only rmsnorm,softmax]

Writes ``executor_scaling.json`` and ``executor_scaling.md`` under ``OUT`` and prints the summary last.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path


def run_eval(suite: str, out: Path, gpus: str, device: str, minutes: float, only: str) -> dict:
    command = [sys.executable, "-m", "kernelwright", "eval", "--suite", suite, "--agent", "offline", "--out",
               str(out), "--device", device, "--max-minutes", str(minutes), "--json"]
    for task in filter(None, only.split(",")):
        command += ["--only", task]
    if device.startswith("cuda"):
        command += ["--gpus", gpus]
    else:
        command += ["--workers", str(len(gpus.split(",")))]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"eval failed ({done.returncode}): {done.stderr[-2000:]}")
    results = json.loads(done.stdout[done.stdout.index("{"):])
    summaries = [read_summary(Path(u["out"])) for u in results["units"] if u.get("out")]
    evaluations = sum((s.get("evaluations") or {}).get("run", 0) for s in summaries)
    return {"gpus": gpus, "wall_s": round(wall, 1), "units": len(results["units"]), "evaluations": evaluations,
            "units_per_min": round(len(results["units"]) / (wall / 60), 2),
            "evaluations_per_min": round(evaluations / (wall / 60), 2),
            "correct": sum(bool(u.get("correct")) for u in results["units"]),
            "timings": timings(results["units"], summaries)}


def read_summary(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def timings(units: list[dict], summaries: list[dict]) -> dict[str, dict]:
    """(task|knobs|dtype|implementation) -> median, IQR, the CUDA-graph median and IQR where the bench took
    them (launch-bound shapes), and the best kernel's hash."""
    found = {}
    for unit, summary in zip(units, summaries):
        best = Path(summary.get("best_path") or "")
        sha = hashlib.sha256(best.read_bytes()).hexdigest()[:12] if best.is_file() else None
        for row in summary.get("final_rows") or []:
            graph = row.get("graph") or {}
            for impl, t in (row.get("timings") or {}).items():
                key = f"{unit['task']}|{json.dumps(row.get('knobs'), sort_keys=True)}|{row.get('dtype')}|{impl}"
                g = graph.get(impl) if isinstance(graph.get(impl), dict) else {}
                found[key] = {"median_ms": t.get("median_ms"), "iqr_ms": t.get("iqr_ms") or 0.0,
                              "graph_ms": g.get("median_ms"), "graph_iqr_ms": g.get("iqr_ms") or 0.0,
                              "kernel": sha if impl == "candidate" else impl}
    return found


def compare(one: dict, many: dict) -> list[dict]:
    """Each timing of 1 GPU beside N. A pair agrees when the medians differ by no more than the sum of their
    IQRs; at launch-bound shapes the CUDA-graph medians judge (the GPU's time: the per-call medians there
    time the host's launches too, which the other GPU's work on the same host slows)."""
    rows = []
    for key in sorted(set(one) & set(many)):
        a, b = one[key], many[key]
        if a["median_ms"] is None or b["median_ms"] is None:
            continue
        same = a["kernel"] == b["kernel"]
        graphed = a.get("graph_ms") is not None and b.get("graph_ms") is not None
        ms, iqr = ("graph_ms", "graph_iqr_ms") if graphed else ("median_ms", "iqr_ms")
        rows.append({"key": key, "ms_1": a["median_ms"], "ms_n": b["median_ms"],
                     "ratio": round(b["median_ms"] / a["median_ms"], 4), "noise_ms": a["iqr_ms"] + b["iqr_ms"],
                     "graph_ms_1": a.get("graph_ms"), "graph_ms_n": b.get("graph_ms"), "judged_by": ms,
                     "same_kernel": same,
                     "agree": (abs(b[ms] - a[ms]) <= a[iqr] + b[iqr]) if same else None,
                     "per_call_agree": abs(b["median_ms"] - a["median_ms"]) <= a["iqr_ms"] + b["iqr_ms"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gpus", default="0,1", help="the GPUs of the second run; the first uses the first of them")
    parser.add_argument("--suite", default="bundled")
    parser.add_argument("--device", default="cuda", help="cuda (the measurement) or cpu (a dry run of the script)")
    parser.add_argument("--max-minutes", type=float, default=3.0)
    parser.add_argument("--only", default="", help="comma-separated tasks of the suite (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    first = args.gpus.split(",")[0]
    one = run_eval(args.suite, args.out / "gpus-1", first, args.device, args.max_minutes, args.only)
    many = run_eval(args.suite, args.out / f"gpus-{len(args.gpus.split(','))}", args.gpus, args.device,
                    args.max_minutes, args.only)
    pairs = compare(one.pop("timings"), many.pop("timings"))
    judged = [p for p in pairs if p["agree"] is not None]
    report = {"suite": args.suite, "only": args.only or None, "device": args.device, "max_minutes": args.max_minutes, "one": one, "many": many,
              "scaling_units": round(many["units_per_min"] / one["units_per_min"], 2) if one["units_per_min"] else None,
              "scaling_evaluations": (round(many["evaluations_per_min"] / one["evaluations_per_min"], 2)
                                      if one["evaluations_per_min"] else None),
              "timings_compared": len(judged), "timings_agree": sum(p["agree"] for p in judged),
              "per_call_timings_agree": sum(p["per_call_agree"] for p in judged), "pairs": pairs}
    (args.out / "executor_scaling.json").write_text(json.dumps(report, indent=2))
    lines = ["| GPUs | wall s | units | evaluations | units/min | evaluations/min | correct |",
             "|---|---|---|---|---|---|---|"]
    for run in (one, many):
        lines.append(f"| {run['gpus']} | {run['wall_s']} | {run['units']} | {run['evaluations']} | "
                     f"{run['units_per_min']} | {run['evaluations_per_min']} | {run['correct']} |")
    lines.append(f"\nscaling: {report['scaling_evaluations']}x evaluations/min, {report['scaling_units']}x units/min; "
                 f"timings within the noise floor: {report['timings_agree']}/{report['timings_compared']} "
                 "(same kernel, same shape; CUDA-graph medians at launch-bound shapes), per-call medians "
                 f"{report['per_call_timings_agree']}/{report['timings_compared']}")
    (args.out / "executor_scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
