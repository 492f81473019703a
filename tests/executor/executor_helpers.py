"""Work functions for the executor tests, imported by name in worker processes (PYTHONPATH holds this folder)."""

import os
import signal
import time
from pathlib import Path


def echo(out, value):
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "echo.txt").write_text(str(value))
    return {"value": value, "pin": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def die(out):
    os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies: no verdict on anything


def broken(out):
    raise RuntimeError("kernelwright bug")


def slow(out, seconds):
    time.sleep(seconds)
    return {"slept": seconds}


def read_inputs(out, task, extras):
    """Reads its input files where it was given them and leaves an artifact, reporting the paths it saw."""
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "seen.txt").write_text(Path(task).read_text() + "".join(Path(e).read_text() for e in extras))
    return {"task": task, "extras": extras, "out": str(out), "artifact": str(Path(out) / "seen.txt")}
