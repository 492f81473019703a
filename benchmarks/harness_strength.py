"""Harness strength: the corpus through kernelwright's verifier and through a naive harness, side by side.

The naive harness is what most published kernel evaluations do (``kernelwright/verify/naive_side.py``):
five random trials at the benchmark shape, the reference run first in the same process, then
``torch.allclose(out, ref, atol=1e-2, rtol=1e-2)``. It runs in the same sandboxed worker. On CPU the
benchmark shape is shrunk to the interpreter's element budget (``--device cpu`` says so in the output),
and GPU-only corpus files are skipped.

    python benchmarks/harness_strength.py [--device cpu|cuda] [--out benchmarks/results]

Prints one row per corpus file and a summary per cheat class; writes harness_strength.csv and .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

from kernelwright.hardware import describe, resolve_device
from kernelwright.sandbox.runner import Limits, load_result, run_worker
from kernelwright.tasks.knobs import fit_budget
from kernelwright.tasks.task import load_task
from kernelwright.verify import verify
from kernelwright.verify.verifier import ELEMENT_BUDGET

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"
# The cheat class of a corpus file, from the check it is expected to fail.
CLASS_OF_CHECK = {
    "torch_ops": "calls PyTorch instead of a kernel", "no_kernel": "calls PyTorch instead of a kernel",
    "monkeypatch": "patches timers/torch/verifier", "patched_runtime": "patches timers/torch/verifier",
    "forbidden_call": "patches timers/torch/verifier",
    "introspection": "reads expected tensors (gc/frames)", "reads_reference": "reads expected tensors (gc/frames)",
    "forbidden_import": "static policy (imports)", "cuda_policy": "CUDA policy (streams, callbacks, L2)",
    "side_stream": "side stream / thread", "unsynchronised_work": "side stream / thread",
    "background_thread": "side stream / thread", "mutated_input": "mutates inputs",
    "mismatch": "wrong or low-precision values", "output_reused": "caches across calls",
    "state_retained": "caches across calls", "constant_output": "zero/constant output",
    "bad_output_type": "lazy output / subclass", "nonfinite_output": "NaN/inf or unwritten output",
    "special_values": "NaN/inf or unwritten output", "output_shape": "wrong shape/dtype/device",
    "output_dtype": "wrong shape/dtype/device", "output_device": "wrong shape/dtype/device",
    "overlapping_output": "aliased/overlapping outputs", "nondeterministic": "nondeterminism",
    "timeout": "crashes and hangs", "exception": "crashes and hangs", "missing_modelnew": "crashes and hangs",
    "bad_signature": "crashes and hangs", "accepted": "correct control",
}


def header(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^#\s*(\w+):\s*(.+)$", "\n".join(path.read_text().splitlines()[:8]), re.M))


def cheat_class(fields: dict[str, str], stem: str) -> str:
    if "specialised" in stem or "benchmark" in stem or "no_max_subtraction" in stem:
        return "specialised to shape/distribution"
    if "cache" in stem:
        return "caches across calls"
    if "precision" in stem or "tf32" in stem:
        return "lower precision"
    return CLASS_OF_CHECK.get(fields["expect"].split("|")[0], fields["expect"])


def naive(task_name: str, path: Path, device: str) -> tuple[bool, str]:
    """(caught, how): the naive harness rejects when a trial fails or the candidate crashes."""
    task = load_task(task_name)
    knobs = dict(task.knobs) if device != "cpu" else fit_budget(task, dict(task.knobs), ELEMENT_BUDGET["cpu"])
    outcome = run_worker({"mode": "naive", "candidate": str(path.resolve()), "task": str(task.path), "knobs": knobs},
                         device=device, limits=Limits(timeout_s=60))
    load_result(outcome)
    if not outcome.ok:
        return True, outcome.reason or "crash"
    trials = outcome.report["trials"]
    return (not all(trials)), f"{sum(trials)}/{len(trials)} trials allclose"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--shapes", type=int, default=3, help="shapes per verify (a bad kernel fails on any)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    files = sorted(CORPUS.glob("*.py")) + sorted((CORPUS / "controls").glob("*.py"))
    rows = []
    if device == "cpu":
        print(f"device cpu: the naive harness's benchmark shape is shrunk to {ELEMENT_BUDGET['cpu']} elements "
              "(Triton interpreter); GPU-only corpus files are skipped", flush=True)
    for path in files:
        if not path.exists():  # removed while the script ran
            continue
        fields = header(path)
        if fields.get("gpu") and device == "cpu":
            continue
        started = time.monotonic()
        ours = verify(fields["task"], path, device=device, limits=Limits(timeout_s=60), shapes=args.shapes,
                      static_policy=fields.get("static", "on") != "off")
        naive_caught, naive_how = naive(fields["task"], path, device)
        control = fields["expect"] == "accepted"
        row = {"file": path.stem, "task": fields["task"], "class": cheat_class(fields, path.stem),
               "expect": fields["expect"], "control": control,
               "kernelwright_rejects": not ours.accepted,
               "kernelwright_checks": "|".join(sorted({f["check"] for f in ours.failures})),
               "naive_rejects": naive_caught, "naive_detail": naive_how,
               "seconds": round(time.monotonic() - started, 1)}
        rows.append(row)
        print(f"{row['file']:<42} {row['class']:<36} kernelwright={'REJECT' if row['kernelwright_rejects'] else 'accept'}"
              f" ({row['kernelwright_checks'] or '-'})  naive={'REJECT' if naive_caught else 'accept'} ({naive_how})",
              flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "harness_strength.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {}
    for row in rows:
        s = summary.setdefault(row["class"], {"files": 0, "kernelwright": 0, "naive": 0, "control": row["control"]})
        s["files"] += 1
        s["kernelwright"] += row["kernelwright_rejects"]
        s["naive"] += row["naive_rejects"]
    (out / "harness_strength.json").write_text(json.dumps({"device": device, "environment": describe(device),
                                                           "rows": rows, "summary": summary}, indent=2))
    print("\n| cheat class | files | kernelwright rejects | naive harness rejects |")
    print("|---|---|---|---|")
    for name, s in sorted(summary.items(), key=lambda kv: (kv[1]["control"], kv[0])):
        label = f"{name} (must be accepted)" if s["control"] else name
        print(f"| {label} | {s['files']} | {s['kernelwright']}/{s['files']} | {s['naive']}/{s['files']} |")
    bad = [r for r in rows if r["control"] == r["kernelwright_rejects"]]
    print(f"\nkernelwright wrong on {len(bad)} file(s)" + (": " + ", ".join(r["file"] for r in bad) if bad else ""))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
