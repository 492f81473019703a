"""KernelBench level-1 memory-bound files through `kernelwright optimize` on GPUs, at their own shapes.

Every selected file (the target kinds of ``kernelbench_coverage.py``: activations, softmax, norms,
reductions over a dimension, losses; unmodified) is handed to the CLI exactly as a user would:
``kernelwright optimize FILE --max-minutes M --out RUN`` in its own process, one GPU each
(``CUDA_VISIBLE_DEVICES``), several GPUs in parallel. Per task it records:

* the wall time of the command against the budget (``within``: at most M + 10%);
* the verdict: a verified ``best.py`` or the one-sentence reason, and the exit code;
* the verifier's peak GPU memory (parent and worker, from the ``memory`` object of the verifications in
  ``run.sqlite``) against the task's own bytes (inputs + outputs);
* the best kernel's median time against eager and per-shape ``torch.compile`` (the final benchmark in
  ``run.sqlite``), and the fastest baseline;
* orphans: worker processes still alive, and GPU memory still in use, 5 s after the command ended.

Aggregates follow KernelBench: ``fast_p`` is the fraction of ALL selected tasks that are verified and
faster than the baseline by more than ``p``; geomean and median speedups are over the verified, timed ones.

    python benchmarks/kernelbench_gpu.py --kernelbench DIR --out OUT [--gpus 0,1] [--max-minutes 3]
                                         [--only 36_RMSNorm_,40_LayerNorm] [--budget N]
                                         [--per-gpu K] [--stop-after SECONDS]

``--per-gpu K`` runs K commands on each GPU at once (their benchmarks take turns on the GPU's timing lock,
so timings stay exclusive; budgets then also cover the wait). ``--stop-after`` starts no command after that
many seconds, so a call of limited length ends with whole rows. A worker whose parent is no longer a
kernelwright process is an orphan; after the last command, ``after_all`` records the sandbox workers still
alive and each GPU's memory in use.

``DIR`` as for ``kernelbench_coverage.py`` (a checkout, its level1 folder, or a git directory). Writes
``kernelbench_gpu.csv``/``.json``/``.md`` under ``OUT`` (rows of earlier runs in ``OUT`` for tasks not
run this time are kept) and prints the table last.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import queue
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernelbench_coverage import TARGET_KINDS, kind_of, level1_files  # noqa: E402

FIELDS = ("task", "kind", "gpu", "exit", "seconds", "budget_s", "within", "verdict", "reason", "task_gb",
          "verify_peak_gb", "peak_over_task", "best_ms", "eager_ms", "compile_ms", "vs_eager", "vs_compile",
          "fastest_baseline", "vs_fastest", "orphan_workers", "per_gpu", "gpu_mb_after", "verify_phases")
GRACE = 1.10  # the "M + 10%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernelbench", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gpus", default=None, help="comma-separated GPU indices (default: all visible)")
    parser.add_argument("--max-minutes", type=float, default=3.0)
    parser.add_argument("--budget", type=int, default=None, help="tuning rounds at most (default: optimize's)")
    parser.add_argument("--only", default="", help="comma-separated file stems or numbers")
    parser.add_argument("--per-gpu", type=int, default=1, help="commands at once on each GPU")
    parser.add_argument("--stop-after", type=float, default=None, help="start no command after this many seconds")
    args = parser.parse_args()
    started = time.monotonic()

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="kb-gpu-"))
    files = [f for f in level1_files(args.kernelbench, scratch) if kind_of(f.stem) in TARGET_KINDS]
    if args.only:
        wanted = set(args.only.split(","))
        files = [f for f in files if f.stem in wanted or f.stem.split("_")[0] in wanted]
    gpus = args.gpus.split(",") if args.gpus else [str(i) for i in range(_gpu_count())]
    jobs: queue.Queue = queue.Queue()
    for f in sorted(files, key=_size_first):
        jobs.put(f)
    rows: list[dict] = []
    lock = threading.Lock()

    def worker(gpu: str) -> None:
        while True:
            if args.stop_after is not None and time.monotonic() - started > args.stop_after:
                return
            try:
                path = jobs.get_nowait()
            except queue.Empty:
                return
            row = run_one(path, gpu, args)
            with lock:
                rows.append(row)
                print(json.dumps(row), flush=True)
                write(args.out, list(rows), args, quiet=True)  # a call cut short keeps every finished row

    threads = [threading.Thread(target=worker, args=(g,)) for g in gpus for _ in range(args.per_gpu)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(5)
    args.after_all = {"workers_alive": _sandbox_workers(), "gpu_mb": {g: _gpu_used_mb(g) for g in gpus},
                      "not_started": [p.stem for p in list(jobs.queue)]}
    write(args.out, rows, args)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _size_first(path: Path) -> tuple[int, str]:
    """Heavy kinds first, so the slowest tasks do not end up alone at the tail of one GPU's queue."""
    return ({"norm": 0, "softmax": 1, "reduction": 2, "loss": 3}.get(kind_of(path.stem), 4), path.stem)


def run_one(path: Path, gpu: str, args) -> dict:
    run_dir = args.out / "runs" / path.stem
    budget_s = args.max_minutes * 60
    command = [sys.executable, "-m", "kernelwright", "optimize", str(path), "--out", str(run_dir),
               "--max-minutes", f"{args.max_minutes:g}", "--device", "cuda"]
    if args.budget is not None:
        command += ["--budget", str(args.budget)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "COLUMNS": "160"}
    log = args.out / "logs" / f"{path.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=budget_s * 2 + 120)  # a backstop far past the budget, never the measure
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            code = "killed"
    seconds = time.monotonic() - started
    time.sleep(5)
    row = {"task": path.stem, "kind": kind_of(path.stem), "gpu": gpu, "exit": code, "seconds": round(seconds, 1),
           "budget_s": budget_s, "within": seconds <= budget_s * GRACE,
           "orphan_workers": _orphans(), "per_gpu": args.per_gpu,
           "gpu_mb_after": _gpu_used_mb(gpu) if args.per_gpu == 1 else None}  # others may still run there
    row.update(_from_run(run_dir, log))
    if code != 0 and row["verdict"] == "verified":  # best.py on disk, but the run itself said no
        row["verdict"], row["reason"] = "no kernel", _last_line(log)
    return row


def _sandbox_workers() -> list[str]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"kernelwright.sandbox.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return pids


def _orphans() -> int:
    """Sandbox workers whose parent is no longer a kernelwright process (runs still going keep theirs)."""
    count = 0
    for pid in _sandbox_workers():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = stat.rsplit(")", 1)[1].split()[1]
            if b"kernelwright" not in Path(f"/proc/{parent}/cmdline").read_bytes():
                count += 1
        except (OSError, IndexError):
            continue
    return count


def _gpu_used_mb(gpu: str) -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "-i", gpu, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        return float(out)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _from_run(run_dir: Path, log: Path) -> dict:
    """Verdict, memory and timings of one run directory, read from best.py, summary.json and run.sqlite."""
    found: dict = {"verdict": "no kernel", "reason": _last_line(log)}
    best = run_dir / "best.py"
    db = run_dir / "run.sqlite"
    if not db.is_file():
        return found
    with sqlite3.connect(db) as con:
        evaluations = con.execute("SELECT c.source_sha, e.kind, e.settings, e.result FROM evaluations e "
                                  "JOIN candidates c ON c.id = e.candidate_id ORDER BY e.id").fetchall()
    # the verification at the task's own shape (its largest case): probes on small shapes say nothing here
    verifies = [json.loads(result) for _, kind, _, result in evaluations if kind == "verify"]
    biggest = max(verifies, key=lambda v: (v.get("memory") or {}).get("task_bytes") or 0, default={})
    largest = biggest.get("memory") or {}
    if biggest.get("phases"):  # where the verification at the task's own shape spent its time
        found["verify_phases"] = {k: round(v, 1) for k, v in biggest["phases"].items() if isinstance(v, (int, float))}
    task_bytes = largest.get("task_bytes")
    peaks = [largest.get(k) for k in ("parent_peak_bytes", "worker_peak_bytes") if largest.get(k)]
    if task_bytes:
        found["task_gb"] = round(task_bytes / 1e9, 2)
    if peaks:
        found["verify_peak_gb"] = round(max(peaks) / 1e9, 2)
        if task_bytes:
            found["peak_over_task"] = round(max(peaks) / task_bytes, 2)
    if not best.is_file():
        return found
    import hashlib

    digest = hashlib.sha256(best.read_text().encode()).hexdigest()
    finals = [json.loads(r) for sha, kind, s, r in evaluations if sha == digest and kind == "bench"]
    found["verdict"] = "verified"
    found["reason"] = _summary_verdict(run_dir) or ""
    rows = [row for b in finals[-1:] for row in b.get("rows", [])]
    if rows:
        row = rows[0]  # the task's own shape: a KernelBench file benchmarks one shape
        t = row["timings"]
        found.update(best_ms=t["candidate"]["median_ms"], eager_ms=t.get("eager", {}).get("median_ms"),
                     compile_ms=t.get("compile", {}).get("median_ms"), fastest_baseline=row.get("fastest_baseline"))
        for name, key in (("eager", "vs_eager"), ("compile", "vs_compile")):
            if name in row.get("speedup", {}):
                found[key] = round(row["speedup"][name], 3)
        if row.get("fastest_baseline"):
            found["vs_fastest"] = round(row["speedup"][row["fastest_baseline"]], 3)
    return found


def _summary_verdict(run_dir: Path) -> str | None:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    verdict = summary.get("verdict")
    return verdict.get("sentence") if isinstance(verdict, dict) else verdict


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    return lines[-1][:300] if lines else ""


def aggregate(rows: list[dict]) -> dict:
    total = len(rows)
    summary: dict = {"tasks": total, "verified": sum(r["verdict"] == "verified" for r in rows),
                     "within_budget": sum(bool(r["within"]) for r in rows),
                     "orphans": sum(r.get("orphan_workers") or 0 for r in rows)}
    for key in ("vs_eager", "vs_compile", "vs_fastest"):
        values = [r[key] for r in rows if r["verdict"] == "verified" and r.get(key)]
        if values:
            summary[f"geomean_{key}"] = round(math.exp(sum(map(math.log, values)) / len(values)), 3)
            summary[f"median_{key}"] = round(statistics.median(values), 3)
        for p in (1.0, 1.2):
            hits = sum(1 for r in rows if r["verdict"] == "verified" and (r.get(key) or 0) > p)
            summary[f"fast_{p:g}_{key}"] = round(hits / total, 3) if total else None
    return summary


def write(out: Path, rows: list[dict], args, *, quiet: bool = False) -> None:
    old = out / "kernelbench_gpu.json"
    if old.is_file():  # keep rows of tasks not run this time
        ran = {r["task"] for r in rows}
        rows = [r for r in json.loads(old.read_text())["rows"] if r["task"] not in ran] + rows
    rows.sort(key=lambda r: int(r["task"].split("_")[0]))
    summary = aggregate(rows)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "max_minutes": args.max_minutes, "budget": args.budget, "per_gpu": args.per_gpu,
            "after_all": getattr(args, "after_all", None), "environment": _environment()}
    (out / "kernelbench_gpu.json").write_text(json.dumps({**meta, "summary": summary, "rows": rows}, indent=2))
    with open(out / "kernelbench_gpu.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    header = "| task | s (budget) | verdict | peak GB / task GB | best ms | × eager | × compile | fastest | orphans |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        peak = f"{r.get('verify_peak_gb', '–')} / {r.get('task_gb', '–')}"
        lines.append(f"| {r['task']} | {r['seconds']} ({r['budget_s']:.0f}){'' if r['within'] else ' OVER'} | "
                     f"{r['verdict']}{': ' + r['reason'] if r['reason'] else ''} | {peak} | {r.get('best_ms', '–')} | "
                     f"{r.get('vs_eager', '–')} | {r.get('vs_compile', '–')} | {r.get('fastest_baseline', '–')} "
                     f"{r.get('vs_fastest', '')} | {r.get('orphan_workers')} |")
    lines.append("")
    lines.append(json.dumps(summary))
    if getattr(args, "after_all", None):
        lines.append(f"after the last command: {json.dumps(args.after_all)}")
    (out / "kernelbench_gpu.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))


def _environment() -> dict:
    try:
        from kernelwright.hardware import describe

        return describe("cuda")
    except Exception as exc:  # noqa: BLE001 -- the table is still worth writing
        return {"error": str(exc)}


if __name__ == "__main__":
    main()
