"""``verify --sanitize``: one case under NVIDIA compute-sanitizer (memcheck, then racecheck).

The worker runs under the sanitizer through the sandbox runner (same limits, environment and report
channel); the sanitizer writes its findings to a log file of ours, and any reported error or hazard is a
rejection named ``sanitizer_memcheck`` / ``sanitizer_racecheck`` with the first lines of the report.
"""

from __future__ import annotations

import math

import os
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from kernelwright.errors import UsageError
from kernelwright.sandbox.runner import Limits, load_result, run_worker

TOOLS = ("memcheck", "racecheck")
SANITIZE_ELEMENTS = 1 << 16  # the tools slow kernels 10-100x
SLOWDOWN = 20  # the sanitizer slows kernels down by one to two orders of magnitude


def find_sanitizer() -> str:
    found = shutil.which("compute-sanitizer")
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        candidate = Path(root or "/nonexistent") / "bin" / "compute-sanitizer"
        if not found and candidate.is_file():
            found = str(candidate)
    if not found:
        raise UsageError("--sanitize needs NVIDIA compute-sanitizer (part of the CUDA toolkit) on PATH or under "
                         "CUDA_HOME/bin; install the toolkit or drop --sanitize.")
    return found


def errors_in(log: str, tool: str) -> int:
    """How many errors or hazards the sanitizer reported (-1 when it printed no summary: it did not run)."""
    counts = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", log)]
    counts += [int(n) for n in re.findall(r"\((\d+) errors?, \d+ warnings?\)", log)]
    return sum(counts) if counts else -1


def run_sanitizer(result, cases: list, candidate: Path, device: str, limits: Limits) -> None:
    """Run one case once under each tool and add a failure to ``result`` for any report. The case is the
    largest drawn shape under ``SANITIZE_ELEMENTS``: a tiny one launches too few threads to race."""
    binary = find_sanitizer()
    drawn = [c for c in cases if c.label not in ("fuzz", "benchmark")]
    small = [c for c in drawn if math.prod(c.knobs.values()) <= SANITIZE_ELEMENTS]
    case = max(small, key=lambda c: math.prod(c.knobs.values())) if small else min(
        drawn, key=lambda c: math.prod(c.knobs.values()))
    job_case = {**case.job(repeat=1), "variants": [], "probe": False}
    for tool in TOOLS:
        log_dir = Path(tempfile.mkdtemp(prefix="kw-sanitizer-"))
        log_file = log_dir / f"{tool}.log"
        wrapper = [binary, "--tool", tool, "--log-file", str(log_file), "--print-limit", "20",
                   "--target-processes", "all"]
        outcome = run_worker({"mode": "run", "candidate": str(candidate.resolve()), "cases": [job_case]},
                             device=device, limits=replace(limits, timeout_s=limits.timeout_s * SLOWDOWN // 10),
                             wrapper=wrapper)
        load_result(outcome)
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        shutil.rmtree(log_dir, ignore_errors=True)
        result.record("sanitizer", True)
        n = errors_in(log, tool)
        if n > 0 or (n < 0 and not outcome.ok):
            result.checks["sanitizer"]["passed"] -= 1
            result.checks["sanitizer"]["failed"] += 1
            first = "\n".join(line for line in log.splitlines() if line.startswith("=========") and line.strip("= "))[:1500]
            result.fail(f"sanitizer_{tool}", f"compute-sanitizer {tool} reported {max(n, 0) or 'a failure'} "
                        f"error(s) on case {case.id}" + (f": {outcome.message}" if not outcome.ok else ""),
                        case.describe(), report=first or outcome.log_tail[-1500:])
        elif n < 0:
            result.fail("sanitizer_unavailable", f"compute-sanitizer {tool} printed no summary; the sanitizer did "
                        "not run (see report)", case.describe(), report=outcome.log_tail[-1500:])
