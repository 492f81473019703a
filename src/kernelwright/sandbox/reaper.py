"""No orphans: every worker process group dies with the kernelwright process that started it.

Three lines of defence, because each one alone has a gap:

* a registry of live worker groups, killed by ``run_worker``'s ``finally`` and by the signal handlers
  the CLI installs (SIGINT, SIGTERM, SIGHUP), which then exit with status 128 + the signal;
* ``PR_SET_PDEATHSIG(SIGKILL)``, set in the child before it execs, for when the parent dies without
  running any Python (SIGKILL, a crash). The kernel ties it to the parent *thread*, not the process;
* a liveness pipe: the worker reads it in a thread and kills its own group at EOF, which comes when
  every copy of the write end is closed, i.e. when the parent process is gone whatever thread started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from functools import lru_cache
from typing import Callable

TERMINATING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1

_lock = threading.Lock()
_live: set[int] = set()  # process-group ids of running workers
_stopping: int | None = None  # the signal that is ending this process, once one has


class Interrupted(BaseException):
    """kernelwright is shutting down on a signal: no new worker starts, and a killed one is no verdict.
    A BaseException, like KeyboardInterrupt: an ``except Exception`` that records failures must not
    store it as the candidate's."""


def register(pgid: int) -> None:
    with _lock:
        _live.add(pgid)


def unregister(pgid: int) -> None:
    with _lock:
        _live.discard(pgid)


def live_groups() -> set[int]:
    with _lock:
        return set(_live)


def kill_all() -> None:
    """SIGKILL every registered worker group. No waiting: the ``run_worker`` that owns each one reaps it."""
    for pgid in live_groups():
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def stopping() -> int | None:
    """The signal this process is ending on, or None."""
    return _stopping


def install_signal_handlers() -> dict:
    """Kill every worker on SIGINT/SIGTERM/SIGHUP, then exit with 128 + the signal (``SystemExit``, so
    ``finally`` blocks still run). A second signal during that cleanup exits at once. Main thread only;
    returns the handlers it replaced, for ``restore_signal_handlers``."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _on_signal) for signum in TERMINATING}


def restore_signal_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _on_signal(signum: int, frame) -> None:
    global _stopping
    first = _stopping is None
    _stopping = signum
    kill_all()
    if not first:
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


@lru_cache(maxsize=1)
def _prctl() -> Callable | None:
    # Resolved in the parent: after fork the child should run as little Python as possible.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when its parent thread exits (the setting survives the
    ``unshare -n`` exec), and exits at once if the parent is already gone."""
    prctl = _prctl()

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def watch_parent(fd: int, on_death=None) -> None:
    """Worker side: when the parent's end of the liveness pipe closes, call ``on_death`` (default: kill this
    process's group)."""

    def watch() -> None:
        try:
            while os.read(fd, 1):  # the parent never writes; b"" is EOF
                pass
        except OSError:
            pass
        if on_death is not None:
            on_death()
        else:
            os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="kw-parent-watch", daemon=True).start()
