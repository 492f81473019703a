"""``--executor local``: worker slots on this host, one per GPU (or ``--workers`` of them).

Each slot runs one work at a time. With one slot and nothing to pin, a work runs in this process, as
it always did; otherwise each work gets a fresh process (``executor/child.py``) whose environment pins
it to its slot's GPU with ``CUDA_VISIBLE_DEVICES``, so everything it starts, sandbox workers included,
sees that GPU as ``cuda:0``. Slots beyond the GPU count share GPUs round-robin: their compiles and
correctness runs overlap, their benchmarks take turns (``timing.timing_lock``).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kernelwright.errors import UsageError
from kernelwright.executor.base import ERROR, INFRASTRUCTURE, Executor, Finished, Started, Work, call_work, \
    describe_exception
from kernelwright.sandbox import reaper


@dataclass(frozen=True)
class Slot:
    name: str
    gpu: str | None  # the CUDA_VISIBLE_DEVICES entry it pins, None: no pin (the CPU)


def visible_gpus() -> list[str]:
    """This process's GPUs as CUDA_VISIBLE_DEVICES entries (indices, or what the variable already lists)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return listed[:count] if "CUDA_VISIBLE_DEVICES" in os.environ else [str(i) for i in range(count)]


def parse_gpus(text: str | None, device: str) -> list[str]:
    """``--gpus 0,2`` (indices among the visible GPUs) as pins; default every visible GPU, whatever ``cuda:N``
    the command itself runs on (``--gpus N`` keeps the units on one)."""
    visible = visible_gpus()
    if not device.startswith("cuda"):
        if text:
            raise UsageError("--gpus needs a GPU device; drop it or run with --device cuda.")
        return []
    if not text:
        return visible
    try:
        wanted = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--gpus takes GPU indices separated by commas (e.g. 0,1), not {text!r}.") from None
    missing = [i for i in wanted if not 0 <= i < len(visible)]
    if missing or not wanted:
        raise UsageError(f"--gpus {text}: this machine shows {len(visible)} GPU(s), indices 0 to {len(visible) - 1}.")
    return [visible[i] for i in dict.fromkeys(wanted)]


def plan_slots(device: str, gpus: list[str], workers: int | None) -> list[Slot]:
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}.")
    if not device.startswith("cuda"):
        return [Slot(f"cpu{i}", None) for i in range(workers or 1)]
    return [Slot(f"gpu{gpus[i % len(gpus)]}" + (f".{i // len(gpus)}" if (workers or 0) > len(gpus) else ""),
                 gpus[i % len(gpus)]) for i in range(workers or len(gpus))]


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, slots: list[Slot]):
        self.slots = slots
        self.inline = len(slots) == 1 and slots[0].gpu is None
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in slots:
            self._free.put(slot)
        self._pool = ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="kw-slot")  # unused inline

    def describe(self) -> str:
        where = "in this process" if self.inline else ", ".join(s.name for s in self.slots)
        return f"local executor, {len(self.slots)} slot(s): {where}"

    def capacity(self) -> int:
        return len(self.slots)

    def unit_device(self, device: str) -> str:
        return "cuda" if device.startswith("cuda") and not self.inline else device

    def submit(self, work: Work, started: Started | None = None) -> "Future[Finished]":
        if not self.inline:
            return self._pool.submit(self._run, work, started)
        # One slot: the work runs here, in the calling (main) thread, as eval always ran it, so Ctrl-C
        # interrupts it (an external agent's subprocess included) instead of waiting for a pool thread.
        done: Future[Finished] = Future()
        done.set_result(self._run(work, started))
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, work: Work, started: Started | None) -> Finished:
        slot = self._free.get()
        try:
            if started is not None:
                started(work, slot.name)
            begin = time.monotonic()
            done = self._inline(work) if self.inline else self._in_process(work, slot)
            done.where, done.seconds = slot.name, time.monotonic() - begin
            return done
        finally:
            self._free.put(slot)

    def _inline(self, work: Work) -> Finished:
        try:
            return Finished(work.key, call_work(work.call, work.kwargs, work.out))
        except Exception as exc:  # noqa: BLE001 -- one unit's error does not stop the others
            return Finished(work.key, None, ERROR, describe_exception(exc))

    def _in_process(self, work: Work, slot: Slot) -> Finished:
        return run_child(work, pin=slot.gpu)


def run_child(work: Work, *, pin: str | None) -> Finished:
    """Run ``work`` in a fresh ``executor/child.py`` process (pinned to GPU ``pin`` when given) and wait."""
    scratch = Path(tempfile.mkdtemp(prefix="kw-unit-"))
    try:
        job, result = scratch / "job.json", scratch / "result.json"
        job.write_text(json.dumps({"call": work.call, "kwargs": work.kwargs, "out": str(work.out)}, default=str))
        code = _spawn(work, pin, job, result)
        if reaper.stopping() is not None:
            raise reaper.Interrupted("kernelwright is stopping; the unit was not finished")
        if not result.is_file():
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            return Finished(work.key, None, INFRASTRUCTURE,
                            f"the unit's worker process ended with {how} before reporting a result")
        payload = json.loads(result.read_text())
        if payload["ok"]:
            return Finished(work.key, payload["result"])
        return Finished(work.key, None, ERROR, payload["message"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _spawn(work: Work, pin: str | None, job: Path, result: Path) -> int:
    # The unit is kernelwright's own code and may call an LLM: it keeps this environment (keys included);
    # the sandbox scrubs it for every candidate process the unit starts.
    env = dict(os.environ)
    if pin is not None:
        env["CUDA_VISIBLE_DEVICES"] = pin
    log = work.log or job.with_name("worker.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    # The child kills its whole process group (an external agent's processes too) when this end closes,
    # i.e. when this process dies however it dies (a Ray worker whose raylet was killed included).
    alive_read, alive_write = os.pipe()
    try:
        with open(log, "ab") as sink:
            proc = subprocess.Popen([sys.executable, "-m", "kernelwright.executor.child", str(job), str(result),
                                     str(alive_read)], stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, env=env, pass_fds=(alive_read,),
                                    start_new_session=True)
        os.close(alive_read)
        reaper.register(proc.pid)
        try:
            return proc.wait()
        finally:
            _stop_group(proc)
            reaper.unregister(proc.pid)
    finally:
        os.close(alive_write)


def _stop_group(proc: subprocess.Popen) -> None:
    """Whatever the unit left in its process group dies with it (its sandbox workers die with the unit)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
