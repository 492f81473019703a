"""The unit store of a run: ``<folder>/<key>.json`` once a unit finished, and atomic claims on the rest.

A claim is an exclusive ``flock`` on ``<folder>/claims/<key>.lock``, held by the driver from before it
submits the unit until its result is stored (or it failed). Two drivers on the same run directory (two
``kernelwright eval`` started on one ``--out``) never run the same unit: the second finds the claim
taken, waits for it, and uses the stored result (or runs the unit itself when the first one could not
finish it). The kernel drops a dead driver's flock, so a killed run leaves no stale claim.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from kernelwright.run.artifacts import atomic_write


class Claim:
    def __init__(self, handle):
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class UnitStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        (self.folder / "claims").mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str) -> dict[str, Any]:
        return json.loads(self.path(key).read_text())

    def save(self, key: str, result: dict[str, Any]) -> None:
        atomic_write(self.path(key), json.dumps(result, indent=2, default=str))

    def claim(self, key: str, *, wait: bool = False) -> Claim | None:
        """The unit's claim, or None when another process holds it (``wait``: block until it is free)."""
        handle = open(self.folder / "claims" / f"{key}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{socket.gethostname()} pid {os.getpid()}\n")  # for a human asking who runs it
        handle.flush()
        return Claim(handle)
