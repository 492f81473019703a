"""The parent side of the process boundary: spawn a worker, guard it, classify how it ended.

Each evaluation runs in a fresh interpreter (``python -m kernelwright.sandbox.worker``), never a fork,
with a wall-clock timeout, an RSS watchdog (an address-space rlimit would break CUDA's large virtual
reservations, scaled to the job), an allow-listed environment, a private scratch directory (in /dev/shm
for a big job) and compile caches, and no network where ``unshare -n`` works. The worker reports on a
pipe of its own, each report carrying a nonce that only the parent and the worker's startup code know;
stdout and stderr are just a log.

Before its report the worker sends progress events on the same pipe; from them the parent enforces a
deadline per ModelNew call (``deadline.py``) and prints a heartbeat. Workers never outlive kernelwright
(``reaper.py``): their groups are killed on every exit path, on SIGINT/SIGTERM/SIGHUP, and by the kernel
or the worker itself when this process dies.
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
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from kernelwright.sandbox import reaper
from kernelwright.sandbox.deadline import CallWatch, EventStream, parse_event
from kernelwright.sandbox.environment import scrubbed_env

LOG_TAIL_CHARS = 4000
POLL_S = 0.05
COMPILE_CACHES = ("triton-cache", "torch-extensions")
CACHE_CHECK_S = 1.0
COMPILE_GRACE_S = 3.0  # a compile cache written this recently counts as compiling, not as a hang

SIGNAL_REASONS = {
    signal.SIGSEGV: ("segfault", "the candidate process crashed with a segmentation fault"),
    signal.SIGABRT: ("abort", "the candidate process aborted (SIGABRT)"),
    signal.SIGBUS: ("segfault", "the candidate process crashed with a bus error"),
    signal.SIGFPE: ("segfault", "the candidate process crashed with a floating-point exception"),
    signal.SIGILL: ("segfault", "the candidate process executed an illegal instruction"),
}


# A worker holds its job's tensors on the host a few times over (the loaded job, the outputs it saves,
# the buffers torch.save writes through): its RSS limit grows with the job, up to a share of the machine.
HOST_MEMORY_FACTOR = 6
HOST_MEMORY_SHARE = 0.85
MEMINFO = Path("/proc/meminfo")
# A big job's job.pt and result.pt (15 GB for a 7.5 GB task) are written and read back in RAM, not on disk.
SHM_DIR = Path("/dev/shm")
SHM_MIN_JOB_BYTES = 256 << 20  # below this the disk's page cache does as well
SHM_FACTOR, SHM_SPARE_BYTES = 3, 1 << 30


@dataclass(frozen=True)
class Limits:
    """Resource limits for one worker.

    ``memory_mb`` is the RSS limit of a small job and the floor of a big one's: a worker may use
    max(memory_mb, HOST_MEMORY_FACTOR (6) x the job's tensor bytes), the scaled part capped at
    HOST_MEMORY_SHARE (85 %) of the machine's MemTotal (``memory_limit_mb``).

    ``deadline`` (a ``time.monotonic()`` instant, set by a time budget) bounds the whole evaluation, the
    waits for a busy GPU included: a worker started late gets only what is left of it."""

    timeout_s: float = 300.0
    memory_mb: int = 32768
    deadline: float | None = None

    def timeout_from(self, now: float) -> float:
        """The worker's whole-process limit when it starts at ``now``."""
        return self.timeout_s if self.deadline is None else max(0.0, min(self.timeout_s, self.deadline - now))


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


def _tree_usage(pid: int) -> tuple[float, int]:
    """Resident memory (MB) of a process and all its descendants, and how many descendants, from /proc."""
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
    total, count, stack = 0, -1, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        count += 1
        stack.extend(children.get(p, []))
    return total / 2**20, max(count, 0)


def _cache_signature(scratch: Path) -> tuple[int, int]:
    """(files, newest mtime) of the worker's compile caches: it changes while Triton or a C++ build writes."""
    files = newest = 0
    for name in COMPILE_CACHES:
        for root, _, names in os.walk(scratch / name):
            for n in names:
                try:
                    newest = max(newest, os.stat(os.path.join(root, n)).st_mtime_ns)
                except OSError:
                    continue
                files += 1
    return files, newest


def job_tensor_bytes(item: Any) -> int:
    """Bytes of every tensor in a job (nested dicts, lists and tuples): what the worker will load."""
    import torch

    if isinstance(item, torch.Tensor):
        return item.numel() * item.element_size()
    if isinstance(item, dict):
        return sum(job_tensor_bytes(v) for v in item.values())
    if isinstance(item, (list, tuple)):
        return sum(job_tensor_bytes(v) for v in item)
    return 0


def _mem_total_bytes() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_limit_mb(limits: Limits, job_bytes: int) -> int:
    """The worker's RSS limit for a job holding ``job_bytes`` of tensors (see ``Limits``)."""
    scaled = HOST_MEMORY_FACTOR * job_bytes / 2**20
    total = _mem_total_bytes()
    if total is not None:
        scaled = min(scaled, HOST_MEMORY_SHARE * total / 2**20)
    return int(max(limits.memory_mb, scaled))


def scratch_root_for(job_bytes: int) -> Path | None:
    """Where a job's scratch dir goes: SHM_DIR (RAM) for a big job when it has room for the job, its
    results and some spare; else None (the default temp dir)."""
    if job_bytes < SHM_MIN_JOB_BYTES or not os.access(SHM_DIR, os.W_OK):
        return None
    try:
        stat = os.statvfs(SHM_DIR)
    except OSError:
        return None
    free = stat.f_bavail * stat.f_frsize
    return SHM_DIR if free > SHM_FACTOR * job_bytes + SHM_SPARE_BYTES else None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_worker(job: dict[str, Any], *, device: str, limits: Limits = Limits(),
               scratch_root: Path | None = None, keep_scratch: bool = False,
               wrapper: tuple[str, ...] | list[str] = (),
               progress: Callable[[str], None] | None = None, job_bytes: int | None = None) -> WorkerOutcome:
    """Run one job in a fresh sandboxed worker process and return how it ended; never raises for the
    candidate's sake. ``wrapper`` is a command the worker runs under (``compute-sanitizer ...``; per-call
    deadlines are then off: the wrapper slows every kernel). ``progress`` gets a heartbeat line at most
    every ~10 s. ``job_bytes`` (default: the tensors in ``job``; a job that builds its inputs in the
    worker passes an estimate) scales the RSS limit (``memory_limit_mb``) and, with no ``scratch_root``,
    picks the scratch's place (``scratch_root_for``). Raises ``reaper.Interrupted`` when kernelwright is
    ending on a signal."""
    _refuse_when_stopping()
    job_bytes = job_tensor_bytes(job) if job_bytes is None else job_bytes
    limits = replace(limits, memory_mb=memory_limit_mb(limits, job_bytes))
    scratch_root = scratch_root if scratch_root is not None else scratch_root_for(job_bytes)
    scratch = Path(tempfile.mkdtemp(prefix="kw-worker-", dir=scratch_root))
    try:
        outcome = _launch(job, scratch, device=device, limits=limits, wrapper=wrapper, progress=progress)
    except BaseException:
        # a signal or an error: nothing in it will be read, and in /dev/shm it would hold RAM until reboot
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if not keep_scratch and (outcome.result_path is None or not outcome.ok):
        # a failed worker's results are never loaded: left behind they would fill the disk or RAM
        shutil.rmtree(scratch, ignore_errors=True)
        outcome.result_path = None
    return outcome


def _launch(job: dict[str, Any], scratch: Path, *, device: str, limits: Limits, wrapper, progress) -> WorkerOutcome:
    """Write the job into ``scratch``, run the worker on it under the limits, and collect how it ended.
    ``extra["timeout_limit"]`` tells a per-call deadline (``call``: a hang verdict) from the whole-process
    limit (``process``: which a time budget may have shortened)."""
    import torch

    torch.save(job, scratch / "job.pt")
    prefix, note = network_isolation()
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    alive_read, alive_write = os.pipe()  # we never write; the worker sees EOF when this process is gone
    log_path = scratch / "worker.log"
    started = time.monotonic()
    watch = CallWatch(job, device, started, enabled=not wrapper)
    reason = message = None
    chunks: list[bytes] = []
    peak_mb = 0.0
    try:
        with open(log_path, "wb") as log, os.fdopen(read_fd, "rb", buffering=0) as report_pipe:
            proc = subprocess.Popen(
                [*prefix, *wrapper, sys.executable, "-m", "kernelwright.sandbox.worker", str(scratch), device,
                 str(write_fd), str(alive_read)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=scratch,
                env=scrubbed_env(scratch, interpret=device == "cpu"), pass_fds=(write_fd, alive_read),
                start_new_session=True, preexec_fn=reaper.die_with_parent(os.getpid()),
            )
            reaper.register(proc.pid)
            try:
                os.close(write_fd)
                os.close(alive_read)
                write_fd = alive_read = -1
                proc.stdin.write(nonce.encode() + b"\n")
                proc.stdin.close()
                os.set_blocking(report_pipe.fileno(), False)
                reason, message, peak_mb = _supervise(proc, report_pipe, chunks, EventStream(nonce), watch,
                                                      scratch, limits, started, progress)
            finally:
                _kill_group(proc)  # descendants a candidate left running die with the group
                reaper.unregister(proc.pid)
                _drain(report_pipe, chunks)
    finally:
        for fd in (write_fd, alive_read, alive_write):
            if fd >= 0:
                os.close(fd)
    _refuse_when_stopping()  # a worker we killed on a signal is no verdict on the candidate
    seconds = time.monotonic() - started
    log_tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    report = None
    timeout_limit = {"call_timeout": "call", "timeout": "process"}.get(reason or "")
    reason = "timeout" if timeout_limit else reason
    if reason is None:
        report, reason, message = _parse_report(b"".join(chunks), nonce, proc.returncode)
    return WorkerOutcome(
        ok=reason is None, reason=reason, message=message or "", report=report, log_tail=log_tail,
        network_isolated=bool(prefix), isolation_note=note, seconds=seconds,
        result_path=scratch / "result.pt" if (scratch / "result.pt").exists() else None,
        extra={"scratch": str(scratch), "peak_rss_mb": round(peak_mb, 1), "memory_limit_mb": limits.memory_mb,
               "timeout_limit": timeout_limit, **watch.summary()},
    )


def _refuse_when_stopping() -> None:
    signum = reaper.stopping()
    if signum is not None:
        raise reaper.Interrupted(f"kernelwright is stopping on signal {signum}; no candidate process was run to the end")


def _supervise(proc, report_pipe, chunks: list[bytes], stream: EventStream, watch: CallWatch, scratch: Path,
               limits: Limits, started: float, progress) -> tuple[str | None, str | None, float]:
    """Poll the worker until it exits or breaks a limit: (reason, message, peak RSS in MB)."""
    timeout_s = limits.timeout_from(started)
    peak_mb = 0.0
    last = started
    cache = (_cache_signature(scratch), started)  # (signature, when it last changed)
    next_cache_check = started
    while True:
        before = len(chunks)
        _drain(report_pipe, chunks)
        now = time.monotonic()
        for event in stream.feed(b"".join(chunks[before:])):
            watch.on_event(event, now)
        if proc.poll() is not None:
            return None, None, peak_mb
        if now - started > timeout_s:
            return "timeout", f"the candidate process did not finish within {timeout_s:.3g} s and was killed", peak_mb
        rss_mb, descendants = _tree_usage(proc.pid)
        peak_mb = max(peak_mb, rss_mb)
        if peak_mb > limits.memory_mb:
            return "out_of_memory", (f"the candidate process used {peak_mb:.0f} MB of host memory "
                                     f"(limit {limits.memory_mb} MB) and was killed"), peak_mb
        if now >= next_cache_check:
            signature = _cache_signature(scratch)
            cache = (signature, now) if signature != cache[0] else cache
            next_cache_check = now + CACHE_CHECK_S
        if descendants or now - cache[1] < COMPILE_GRACE_S:
            watch.pause(now - last)
        last = now
        overrun = watch.overrun(now)
        if overrun:
            return "call_timeout", overrun, peak_mb
        watch.heartbeat(now, progress)
        time.sleep(POLL_S)


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
    """The worker's one final report from the report pipe: every line must carry the nonce; progress
    events (``parse_event``) may come before it, and anything else is a forgery."""
    lines = [line for line in raw.decode(errors="replace").splitlines() if line.strip()]
    reports = []
    for line in lines:
        if parse_event(line, nonce) is not None:
            continue
        try:
            reports.append(json.loads(line))
        except json.JSONDecodeError:
            return None, "report_forged", "the report channel held something other than the worker's report"
    genuine = [r for r in reports if isinstance(r, dict) and r.get("nonce") == nonce and "event" not in r]
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
