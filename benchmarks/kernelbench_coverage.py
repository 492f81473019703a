"""KernelBench level-1 memory-bound tasks through the offline agent, on CPU (Triton interpreter).

For every selected level-1 file (activations, softmax/log-softmax, norms, reductions over a dimension,
elementwise losses, plus the scans as out-of-target controls that must be refused): run
``kernelwright.run.optimize(file, device="cpu")`` and record whether the generator covers it (else
the one-sentence refusal naming the op), whether ``best.py`` passed the verifier (else its first failure)
and the seconds it took. The verifier shrinks the task's shape knobs to the interpreter's budget; a file
whose Model cannot be built at a shrunk shape, or whose verification runs past ``--timeout`` per worker
or past the memory cap, says so in the table. Each task runs in its own process under an address-space
cap (``--memory-gb``), so one task too big for this machine is a row, not the end of the table.

``--tuple-knobs``: KernelBench's loss files write their row width as a tuple (``input_shape = (32768,)``),
which the loader does not take for a shape knob (only int constants are), so the verifier cannot shrink
it and a CPU case holds up to 2^14 x 32768 elements. With this flag each such tuple of int constants is
rewritten into knobs (``input_shape_0 = 32768`` and ``input_shape = (input_shape_0,)``) in a scratch
copy: the same task at its own shape, shrinkable like the others. The table marks those rows.

    python benchmarks/kernelbench_coverage.py --kernelbench DIR --out benchmarks/results/cpu-DATE
                                              [--timeout 600] [--only Softmax,LayerNorm] [--tuple-knobs]

``DIR`` is a KernelBench checkout, its ``KernelBench/level1`` folder, any folder of its level-1 ``.py``
files, or a git directory without a work tree (the files are extracted with ``git show``; nothing of
KernelBench is kept under this repository). Writes ``kernelbench_coverage.csv``/``.json``/``.md`` under
``--out`` and prints the table last. Rows already in ``--out`` for tasks not run this time (``--only``)
are kept, so one task can be re-run without redoing the table.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kernelwright.errors import KernelwrightError
from kernelwright.hardware import describe
from kernelwright.run import OptimizeLimit, optimize
from kernelwright.sandbox.runner import Limits
from kernelwright.search.capture import capture
from kernelwright.tasks.task import load_task

# (pattern on the file name without its number, kind); "scan" files are controls: they must be refused.
SELECTION = (
    (r"^(ReLU|LeakyReLU|Sigmoid|Tanh|Swish|GELU|SELU|HardSigmoid|Softplus|Softsign|ELU|HardTanh|MinGPTNewGelu)_?$",
     "activation"),
    (r"^Matrix_scalar_multiplication$", "elementwise"),
    (r"^(Softmax|LogSoftmax)_?$", "softmax"),
    (r"^(BatchNorm|InstanceNorm|GroupNorm|RMSNorm|FrobeniusNorm|L1Norm|L2Norm|LayerNorm)_?$", "norm"),
    (r"^(Sum|Mean|Max|Min|Product)_reduction_over_a_dimension$|^Arg(max|min)_over_a_dimension$", "reduction"),
    (r"^(MSELoss|CrossEntropyLoss|HuberLoss|KLDivLoss|TripletMarginLoss|HingeLoss|CosineSimilarityLoss)$", "loss"),
    (r"cumsum|cumprod", "scan"),
)
TARGET_KINDS = ("activation", "elementwise", "softmax", "norm", "reduction", "loss")
FIELDS = ("number", "task", "kind", "target", "adapted", "covered", "verified", "seconds", "reason")


def kind_of(stem: str) -> str | None:
    name = re.sub(r"^\d+_", "", stem)
    for pattern, kind in SELECTION:
        if re.search(pattern, name):
            return kind
    return None


def level1_files(source: Path, scratch: Path) -> list[Path]:
    """The level-1 files under ``source``; from a git directory, extracted into ``scratch``."""
    for folder in (source, source / "KernelBench" / "level1", source / "level1"):
        files = sorted(folder.glob("*.py")) if folder.is_dir() else []
        if any(kind_of(f.stem) for f in files):
            return files
    try:
        listing = subprocess.run(["git", "--git-dir", str(source), "ls-tree", "--name-only", "HEAD",
                                  "KernelBench/level1/"], check=True, capture_output=True, text=True).stdout.split()
    except (subprocess.CalledProcessError, FileNotFoundError):
        sys.exit(f"{source} holds no KernelBench level-1 files and is not a git directory; pass a KernelBench "
                 "checkout or its KernelBench/level1 folder.")
    files = []
    for name in listing:
        if name.endswith(".py") and kind_of(Path(name).stem):
            path = scratch / Path(name).name
            path.write_bytes(subprocess.run(["git", "--git-dir", str(source), "show", f"HEAD:{name}"], check=True,
                                            capture_output=True).stdout)
            files.append(path)
    if not files:
        sys.exit(f"{source}: no KernelBench/level1 files in its HEAD commit.")
    return files


def tuple_knobs(source: str) -> str | None:
    """The file with each module-level tuple of int constants or names (``(8192 * 2,)``,
    ``(num_classes,)``) turned into knobs: one int constant per literal element, and every use of the
    tuple inside a function spelled out from those names, so rebinding a knob changes the inputs' shape.
    None when the file has no such tuple."""
    tree = ast.parse(source)
    spelled: dict[str, ast.Tuple] = {}
    body: list[ast.stmt] = []
    for node in tree.body:
        elements = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Tuple) and node.value.elts:
            try:
                elements = [e.id if isinstance(e, ast.Name) else _int_expr(e) for e in node.value.elts]
            except ValueError:
                elements = None
        if elements is None:
            body.append(node)
            continue
        name = node.targets[0].id
        names = []
        for i, e in enumerate(elements):
            if isinstance(e, int):
                body.append(ast.parse(f"{name}_{i} = {e}").body[0])
                names.append(f"{name}_{i}")
            else:
                names.append(e)
        spelled[name] = ast.parse(f"({', '.join(names)},)", mode="eval").body
        body.append(ast.parse(f"{name} = ({', '.join(names)},)").body[0])
    if not spelled:
        return None

    class Spell(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name):
            return spelled[node.id] if node.id in spelled and isinstance(node.ctx, ast.Load) else node

    tree.body = [Spell().visit(n) if isinstance(n, (ast.FunctionDef, ast.ClassDef)) else n for n in body]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _int_expr(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _int_expr(node.left) * _int_expr(node.right)
    raise ValueError("not an int product")


def run_isolated(path: Path, out: Path, timeout: float, memory_gb: float, adapted: bool) -> dict:
    """One task in its own process under an address-space cap (references are built in that process)."""
    cap = int(memory_gb * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    cmd = [sys.executable, __file__, "--one", str(path), "--runs", str(out), "--timeout", str(timeout),
           "--memory-gb", str(memory_gb)]
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, timeout=4 * timeout + 120)
        last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        row = json.loads(last) if last.startswith("{") else None
        if row is None:
            tail = " ".join((done.stderr or "").strip().splitlines()[-2:])[-300:]
            row = _row(path)
            memory = "MemoryError" in tail or done.returncode in (-9, 137)
            why = f", out of memory under the {memory_gb} GB cap" if memory else ""
            row["reason"] = f"the task process died (exit {done.returncode}{why}): {tail}"
    except subprocess.TimeoutExpired:
        row = _row(path)
        row["reason"] = f"too slow on CPU: no verdict within {4 * timeout + 120:.0f} s"
    row["adapted"] = adapted
    row["seconds"] = round(time.monotonic() - started, 1)
    return row


def _row(path: Path) -> dict:
    stem = path.stem
    kind = kind_of(stem)
    return {"number": int(stem.split("_")[0]) if stem.split("_")[0].isdigit() else 0, "task": stem, "kind": kind,
            "target": kind in TARGET_KINDS, "adapted": False, "covered": False, "verified": False, "seconds": 0.0,
            "reason": ""}


def run_one(path: Path, out: Path, timeout: float, memory_gb: float) -> dict:
    stem = path.stem
    row = _row(path)
    started = time.monotonic()
    captured = False
    try:  # whether the generator covers it, apart from whatever happens later in verification
        capture(load_task(path))
        captured = True
    except Exception:  # noqa: BLE001 - optimize below says why, in its own words
        pass
    try:
        limits = Limits(timeout_s=timeout, memory_mb=int(memory_gb * 1024 * 0.6))
        result = optimize(path, device="cpu", out=out / stem, limits=limits)
        row["covered"] = True
        row["verified"] = bool(result.accepted)
        row["reason"] = "" if result.accepted else result.message
        if "timeout" in result.message.lower() or "timed out" in result.message.lower():
            row["reason"] = f"too slow on CPU (worker limit {timeout:.0f} s): {result.message}"
        elif "out_of_memory" in result.message or "MemoryError" in result.message:
            row["reason"] = f"too big for this machine's memory cap ({memory_gb} GB): {result.message}"
    except OptimizeLimit as exc:
        row["reason"] = str(exc)
    except KernelwrightError as exc:  # the task file itself is refused (UsageError)
        row["reason"] = f"task refused: {exc}"
    except MemoryError:
        row["reason"] = f"too big for this machine's memory cap ({memory_gb} GB) while building reference cases"
    except Exception as exc:  # noqa: BLE001 - a crash is a finding to record, not a reason to stop the table
        row["covered"] = captured
        row["reason"] = f"{'the verifier' if captured else 'capture'} crashed: {type(exc).__name__}: {exc}"
    row["seconds"] = round(time.monotonic() - started, 1)
    # run directories live in a scratch folder removed at the end: name them relative to it
    row["reason"] = " ".join(row["reason"].split()).replace(str(out), "<runs>")
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| # | task | kind | covered | verified | s | reason / first failure |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        reason = r["reason"].replace("|", "\\|")
        task = r["task"] + (" (tuple knobs)" if r.get("adapted") else "")
        lines.append(f"| {r['number']} | {task} | {r['kind']} | {'yes' if r['covered'] else 'no'} | "
                     f"{'yes' if r['verified'] else 'no'} | {r['seconds']} | {reason} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    target = [r for r in rows if r["target"]]
    controls = [r for r in rows if not r["target"]]
    text = (f"target kinds: {sum(r['verified'] for r in target)}/{len(target)} verified, "
            f"{sum(r['covered'] for r in target)}/{len(target)} covered")
    if controls:
        text += f"; controls (scans) refused: {sum(not r['covered'] for r in controls)}/{len(controls)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernelbench", type=Path, help="KernelBench checkout, level1 folder or git dir")
    parser.add_argument("--out", type=Path, default=Path("out/kernelbench_coverage"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per verification worker")
    parser.add_argument("--only", default="", help="comma-separated substrings of file names")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="address-space cap per task process")
    parser.add_argument("--tuple-knobs", action="store_true", help="make int tuples (input_shape) shape knobs")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the per-task child process
    parser.add_argument("--runs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.runs, args.timeout, args.memory_gb)))
        return
    if args.kernelbench is None:
        parser.error("--kernelbench DIR is required (a KernelBench checkout, its level1 folder or a git dir)")

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = args.out / "kernelbench_coverage.json"
    kept = json.loads(earlier.read_text())["rows"] if earlier.is_file() else []
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="kb-level1-") as scratch, \
            tempfile.TemporaryDirectory(prefix="kb-runs-") as runs:
        files = [f for f in level1_files(args.kernelbench, Path(scratch)) if kind_of(f.stem)]
        if args.only:
            wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]
            files = [f for f in files if any(w in f.stem.lower() for w in wanted)]
        files.sort(key=lambda f: int(f.stem.split("_")[0]) if f.stem.split("_")[0].isdigit() else 0)
        for i, path in enumerate(files, 1):
            console.print(f"[{i}/{len(files)}] {path.stem} …", highlight=False)
            adapted = tuple_knobs(path.read_text()) if args.tuple_knobs else None
            if adapted is not None:
                path = Path(scratch) / "adapted" / path.name
                path.parent.mkdir(exist_ok=True)
                path.write_text(adapted)
            row = run_isolated(path, Path(runs), args.timeout, args.memory_gb, adapted is not None)
            kept = [r for r in kept if r["task"] != row["task"]]
            rows.append(row)
            status = "verified" if row["verified"] else "covered, rejected" if row["covered"] else "not covered"
            console.print(f"    {status} in {row['seconds']} s {row['reason'][:160]}", highlight=False)
            _write(args.out, sorted(rows + kept, key=lambda r: r["number"]))  # an interrupted run keeps rows
    rows = sorted(rows + kept, key=lambda r: r["number"])

    table = Table(title=f"KernelBench level-1 memory-bound coverage (CPU, Triton interpreter): {summary(rows)}")
    for col in ("#", "task", "kind", "covered", "verified", "s", "reason / first failure"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["number"]), r["task"] + (" (tuple knobs)" if r["adapted"] else ""), r["kind"],
                      "yes" if r["covered"] else "no",
                      "yes" if r["verified"] else "no", str(r["seconds"]), r["reason"])
    console.print(table)
    console.print(summary(rows))


def _write(out: Path, rows: list[dict]) -> None:
    with open(out / "kernelbench_coverage.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    meta = {"date": datetime.date.today().isoformat(), "device": "cpu (Triton interpreter)",
            "environment": describe("cpu"), "summary": summary(rows), "rows": rows}
    (out / "kernelbench_coverage.json").write_text(json.dumps(meta, indent=2, default=str))
    (out / "kernelbench_coverage.md").write_text(markdown(rows) + "\n\n" + summary(rows) + "\n")


if __name__ == "__main__":
    main()
