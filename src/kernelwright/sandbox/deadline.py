"""Per-call deadlines, enforced by the parent from the worker's progress events.

A hung CUDA kernel or a C loop holding the GIL cannot be interrupted inside the worker, so the worker only
says what it is doing (``{"event": "call", "case": id, "call": n}`` before each ModelNew call, ``build``
before constructing ModelNew, ``done`` when either returns) and the parent kills the group when a phase
overruns. The deadline comes from the task's own eager time for that case, which the parent already
holds in the job: the worker's word is not needed for it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable

# Below the floor a call is never a hang: a GPU call of a few ms (the floor leaves room for a big task's
# first allocation and launch), and on the CPU a Triton interpreter call that runs one Python program per
# row (at most 2.7 s measured on the bundled examples' verified shapes, on a 2-core machine running other
# tests too). A GPU hang must be judged within 30 s of `verify` starting, ~21 s of which an H200 spends
# setting a 7.5 GB task up: hence 5 s + 3 s there.
FLOOR_S = {"cpu": 10.0, "cuda": 5.0}
EAGER_FACTOR = 50
# The first build and the first call of a process also import lazily and initialise (CUDA context, first
# launches). Compiles (Triton JIT, autotune, C++ builds) need no allowance: the runner pauses the deadline
# while a compiler child runs or a compile cache is being written.
FIRST_ALLOWANCE_S = {"cpu": 3.0, "cuda": 3.0}
# An oversubscribed CPU runs every call proportionally slower: CPU deadlines stretch with the load, this far.
MAX_LOAD_STRETCH = 4.0
HEARTBEAT_S = 10.0
EVENTS = ("build", "call", "done")


def call_deadline(device: str, eager_s: float | None, *, first: bool, stretch: float = 1.0) -> float:
    """Seconds one phase may take: (max(floor, 50 x the task's own eager call) + the first-call
    allowance) x ``stretch`` (the CPU's load, see ``load_stretch``)."""
    kind = "cpu" if device == "cpu" else "cuda"
    budget = max(FLOOR_S[kind], EAGER_FACTOR * eager_s if eager_s and eager_s > 0 else 0.0)
    return (budget + (FIRST_ALLOWANCE_S[kind] if first else 0.0)) * stretch


def load_stretch(device: str) -> float:
    """How much slower than on an idle machine a CPU (interpreter) call runs now: the 1-minute load per
    core, from 1 to MAX_LOAD_STRETCH. A GPU's calls do not share the host's cores: always 1."""
    if device != "cpu":
        return 1.0
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 1.0
    return 1.0 if per_core < 1.1 else round(min(MAX_LOAD_STRETCH, per_core), 1)  # noise is not load


class EventStream:
    """Splits the report pipe into lines as bytes arrive and yields the worker's genuine events. Anything
    else (the final report, a partial line, a line without the nonce) is left to ``_parse_report``."""

    def __init__(self, nonce: str):
        self.nonce = nonce
        self.pending = b""

    def feed(self, data: bytes) -> list[dict]:
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        return [e for e in (parse_event(line, self.nonce) for line in lines) if e is not None]


def parse_event(line: bytes | str, nonce: str) -> dict | None:
    """The event on this line if the worker wrote it (its nonce, a known event name), else None."""
    try:
        item = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(item, dict) or item.get("nonce") != nonce or item.get("event") not in EVENTS:
        return None
    return item


@dataclass
class Phase:
    kind: str  # "build" or "call"
    case: str
    call: int | None
    budget_s: float
    started: float
    first: bool
    eager_s: float | None
    stretch: float = 1.0

    def describe(self) -> str:
        if self.kind == "build":
            return f"building ModelNew for case {self.case}"
        return f"case {self.case}, call {self.call + 1} of ModelNew"

    def why(self, device: str) -> str:
        kind = "cpu" if device == "cpu" else "cuda"
        parts = [f"{FLOOR_S[kind]:g} s floor"]
        if self.eager_s:
            parts.append(f"{EAGER_FACTOR} x the task's own {self.eager_s:.3g} s")
        text = "max(" + ", ".join(parts) + ")" if len(parts) > 1 else parts[0]
        if self.first:
            text += f" + {FIRST_ALLOWANCE_S[kind]:g} s for the first {self.kind} of the process"
        if self.stretch > 1:
            text = f"({text}) x {self.stretch:g} for the CPU's load"
        return text


class CallWatch:
    """The parent's view of the worker: which phase runs, since when, whether it overran; heartbeats."""

    def __init__(self, job: dict[str, Any], device: str, started: float, *, enabled: bool = True):
        items = job.get("cases") or job.get("shapes") or []
        self.eager = {str(c.get("id")): c.get("eager_s") for c in items}
        self.index = {str(c.get("id")): i for i, c in enumerate(items)}
        self.total = len(items)
        self.unit = "shape" if "shapes" in job and "cases" not in job else "case"
        self.label = {"run": "verify"}.get(job.get("mode"), job.get("mode") or "worker")
        self.device, self.enabled = device, enabled
        self.started = self.last_beat = started
        self.phase: Phase | None = None
        self.last_case: str | None = None
        self.kinds_seen: set[str] = set()
        self.calls = 0
        self.slowest: tuple[float, str] = (0.0, "")

    def on_event(self, event: dict, now: float) -> None:
        kind = event["event"]
        if kind == "done":
            if self.phase is not None:
                took = now - self.phase.started
                if took > self.slowest[0]:
                    self.slowest = (took, self.phase.describe())
                self.calls += self.phase.kind == "call"
            self.phase = None
            return
        case = str(event.get("case"))
        eager = self.eager.get(case)
        eager = float(eager) if isinstance(eager, (int, float)) else None
        first = kind not in self.kinds_seen
        self.kinds_seen.add(kind)
        call = event.get("call") if isinstance(event.get("call"), int) else 0
        stretch = load_stretch(self.device)
        self.phase = Phase(kind, case, call if kind == "call" else None,
                           call_deadline(self.device, eager, first=first, stretch=stretch), now, first, eager, stretch)
        self.last_case = case

    def pause(self, seconds: float) -> None:
        """Time the worker spent compiling (a compiler process running, caches being written) is not
        the candidate's call hanging: it moves the running phase's start forward."""
        if self.phase is not None:
            self.phase.started += seconds

    def overrun(self, now: float) -> str | None:
        """The timeout message once the running phase is past its deadline, else None."""
        phase = self.phase
        if not self.enabled or phase is None or now - phase.started <= phase.budget_s:
            return None
        return (f"{phase.describe()} did not return within {phase.budget_s:.0f} s ({phase.why(self.device)}); "
                "the candidate process was killed")

    def heartbeat(self, now: float, progress: Callable[[str], None] | None) -> None:
        """At most every HEARTBEAT_S: "verify: case 7 of 41 (benchmark-8-float32), 23 s"."""
        if progress is None or now - self.last_beat < HEARTBEAT_S:
            return
        self.last_beat = now
        elapsed = f"{now - self.started:.0f} s"
        if self.last_case is None:
            progress(f"{self.label}: starting the candidate process, {elapsed}")
        elif self.last_case in self.index:
            progress(f"{self.label}: {self.unit} {self.index[self.last_case] + 1} of {self.total} "
                     f"({self.last_case}), {elapsed}")
        else:
            progress(f"{self.label}: {self.last_case}, {elapsed}")

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "slowest_s": round(self.slowest[0], 3), "slowest": self.slowest[1]}
