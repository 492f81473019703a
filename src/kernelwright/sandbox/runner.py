"""The parent side of the process boundary: spawn a worker, guard it, classify how it ended.

Each evaluation runs in a fresh interpreter (``python -m kernelwright.sandbox.worker``), never a fork,
with a wall-clock timeout, an RSS watchdog (an address-space rlimit would break CUDA's large virtual
reservations), an allow-listed environment, a private scratch directory and compile caches, and no
network where ``unshare -n`` works. The worker reports on a pipe of its own, each report carrying a
nonce that only the parent and the worker's startup code know; stdout and stderr are just a log.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from kernelwright.sandbox.environment import scrubbed_env

LOG_TAIL_CHARS = 4000

SIGNAL_REASONS = {
    signal.SIGSEGV: ("segfault", "the candidate process crashed with a segmentation fault"),
    signal.SIGABRT: ("abort", "the candidate process aborted (SIGABRT)"),
    signal.SIGBUS: ("segfault", "the candidate process crashed with a bus error"),
    signal.SIGFPE: ("segfault", "the candidate process crashed with a floating-point exception"),
    signal.SIGILL: ("segfault", "the candidate process executed an illegal instruction"),
}


@dataclass(frozen=True)
class Limits:
    """Resource limits for one worker."""

    timeout_s: float = 300.0
    memory_mb: int = 32768


@dataclass
class WorkerOutcome:
    """How a worker ended: ``ok`` with its report, or a named failure reason with the log tail."""

    ok: bool
    reason: str | None
    message: str
    report: dict[str, Any] | None
    log_tail: str
    network_isolated: bool
    isolation_note: str
    seconds: float
    result_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def network_isolation() -> tuple[list[str], str]:
    """The command prefix that removes the network, and a note saying whether it could."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], "no network isolation: `unshare` is not installed"
    try:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"no network isolation: `unshare -n` failed ({exc})"
    if probe.returncode != 0:
        return [], "no network isolation: `unshare -n` is not permitted here (" + probe.stderr.decode(errors="replace").strip() + ")"
    return [unshare, "-n"], "network removed with unshare -n"


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total / 2**20


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_worker(job: dict[str, Any], *, device: str, limits: Limits = Limits(),
               scratch_root: Path | None = None, keep_scratch: bool = False,
               wrapper: tuple[str, ...] | list[str] = ()) -> WorkerOutcome:
    """Run one job in a fresh sandboxed worker process and return how it ended; never raises for the
    candidate's sake. ``wrapper`` is a command the worker runs under (``compute-sanitizer ...``)."""
    import torch

    scratch = Path(tempfile.mkdtemp(prefix="kw-worker-", dir=scratch_root))
    torch.save(job, scratch / "job.pt")
    prefix, note = network_isolation()
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    log_path = scratch / "worker.log"
    started = time.monotonic()
    reason = message = None
    with open(log_path, "wb") as log, os.fdopen(read_fd, "rb", buffering=0) as report_pipe:
        proc = subprocess.Popen(
            [*prefix, *wrapper, sys.executable, "-m", "kernelwright.sandbox.worker", str(scratch), device, str(write_fd)],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=scratch,
            env=scrubbed_env(scratch, interpret=device == "cpu"), pass_fds=(write_fd,), start_new_session=True,
        )
        os.close(write_fd)
        proc.stdin.write(nonce.encode() + b"\n")
        proc.stdin.close()
        os.set_blocking(report_pipe.fileno(), False)
        chunks: list[bytes] = []
        peak_mb = 0.0
        while True:
            _drain(report_pipe, chunks)
            if proc.poll() is not None:
                break
            elapsed = time.monotonic() - started
            if elapsed > limits.timeout_s:
                _kill_group(proc)
                reason, message = "timeout", f"the candidate process did not finish within {limits.timeout_s:g} s and was killed"
                break
            peak_mb = max(peak_mb, _tree_rss_mb(proc.pid))
            if peak_mb > limits.memory_mb:
                _kill_group(proc)
                reason, message = "out_of_memory", f"the candidate process used {peak_mb:.0f} MB of host memory (limit {limits.memory_mb} MB) and was killed"
                break
            time.sleep(0.05)
        _kill_group(proc)  # descendants a candidate left running die with the group
        _drain(report_pipe, chunks)
    seconds = time.monotonic() - started
    log_tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    report = None
    if reason is None:
        report, reason, message = _parse_report(b"".join(chunks), nonce, proc.returncode)
    outcome = WorkerOutcome(
        ok=reason is None, reason=reason, message=message or "", report=report, log_tail=log_tail,
        network_isolated=bool(prefix), isolation_note=note, seconds=seconds,
        result_path=scratch / "result.pt" if (scratch / "result.pt").exists() else None,
        extra={"scratch": str(scratch), "peak_rss_mb": round(peak_mb, 1)},
    )
    if not keep_scratch and outcome.result_path is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return outcome


def _drain(pipe, chunks: list[bytes]) -> None:
    while True:
        try:
            data = pipe.read(65536)
        except BlockingIOError:
            return
        if not data:
            return
        chunks.append(data)


def _parse_report(raw: bytes, nonce: str, returncode: int) -> tuple[dict | None, str | None, str | None]:
    lines = [line for line in raw.decode(errors="replace").splitlines() if line.strip()]
    reports = []
    for line in lines:
        try:
            reports.append(json.loads(line))
        except json.JSONDecodeError:
            return None, "report_forged", "the report channel held something other than the worker's report"
    genuine = [r for r in reports if isinstance(r, dict) and r.get("nonce") == nonce]
    if len(reports) > 1 or (reports and not genuine):
        return None, "report_forged", "the report channel was written by something other than the worker"
    if returncode < 0 and -returncode in SIGNAL_REASONS:
        return None, *SIGNAL_REASONS[-returncode]
    if returncode < 0:
        return None, "killed", f"the candidate process was killed by signal {-returncode}"
    if not genuine:
        return None, "no_report", f"the candidate process exited with code {returncode} without reporting (it may have called exit)"
    report = genuine[0]
    if report.get("status") != "ok":
        return report, report.get("reason", "exception"), report.get("message", "the worker reported an error")
    return report, None, None


def load_result(outcome: WorkerOutcome) -> Any:
    """The tensors a worker saved, loaded without unpickling code; then its scratch is removed."""
    import torch

    if outcome.result_path is None:
        return None
    try:
        return torch.load(outcome.result_path, weights_only=True, map_location="cpu")
    finally:
        shutil.rmtree(outcome.result_path.parent, ignore_errors=True)
