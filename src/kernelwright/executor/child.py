"""A unit's worker process: ``python -m kernelwright.executor.child JOB.json RESULT.json ALIVE_FD``.

It runs one work (kernelwright's own code: it starts candidate processes only through the sandbox)
and writes ``{"ok": true, "result": ...}`` or ``{"ok": false, "message": ...}`` to RESULT.json
atomically. No file means the process died: an infrastructure failure, judged by the parent.

When the parent's end of the ALIVE_FD pipe closes (the parent died, however: a killed eval, a Ray
worker whose node went down) this process kills every process group under it, then its own: an
external agent runs in a session of its own and would otherwise go on spending tokens, orphaned.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from kernelwright.executor.base import call_work, describe_exception
from kernelwright.run.artifacts import atomic_write
from kernelwright.sandbox import reaper


def main(job_path: str, result_path: str, alive_fd: str) -> int:
    reaper.watch_parent(int(alive_fd), kill_tree)
    job = json.loads(Path(job_path).read_text())
    reaper.install_signal_handlers()  # a killed unit takes its sandbox workers with it
    try:
        payload = {"ok": True, "result": call_work(job["call"], job["kwargs"], job["out"])}
    except Exception as exc:  # noqa: BLE001 -- reported to the parent as the unit's error
        traceback.print_exc()
        payload = {"ok": False, "message": describe_exception(exc)}
    atomic_write(Path(result_path), json.dumps(payload, default=str))
    return 0


def kill_tree() -> None:
    """SIGKILL the process group of every descendant (whatever session it made), then this group."""
    for pgid in descendant_groups(os.getpid()) - {os.getpgrp()}:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    os.killpg(os.getpgrp(), signal.SIGKILL)


def descendant_groups(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    groups: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))  # fields: state, ppid, pgrp, ...
        groups[int(entry)] = int(fields[2])
    found, stack = set(), list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.add(groups[pid])
        stack.extend(children.get(pid, []))
    return found


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
