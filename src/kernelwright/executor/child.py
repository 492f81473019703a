"""A unit's worker process: ``python -m kernelwright.executor.child JOB.json RESULT.json ALIVE_FD``.

It runs one work (kernelwright's own code: it starts candidate processes only through the sandbox)
and writes ``{"ok": true, "result": ...}`` or ``{"ok": false, "message": ...}`` to RESULT.json
atomically. No file means the process died: an infrastructure failure, judged by the parent. When the
parent's end of the ALIVE_FD pipe closes (the parent died, however) the whole process group is killed.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from kernelwright.executor.base import call_work, describe_exception
from kernelwright.sandbox import reaper


def main(job_path: str, result_path: str, alive_fd: str) -> int:
    reaper.watch_parent(int(alive_fd))
    job = json.loads(Path(job_path).read_text())
    reaper.install_signal_handlers()  # a killed unit takes its sandbox workers with it
    try:
        payload = {"ok": True, "result": call_work(job["call"], job["kwargs"], job["out"])}
    except Exception as exc:  # noqa: BLE001 -- reported to the parent as the unit's error
        traceback.print_exc()
        payload = {"ok": False, "message": describe_exception(exc)}
    tmp = Path(f"{result_path}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, default=str))
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
