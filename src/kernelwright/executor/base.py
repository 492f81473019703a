"""What every executor takes and gives back: a unit of work, and how it finished.

A ``Work`` names a function by import path (``module:function``) so that any process, on this host or a
Ray node, can run it; the function is called as ``fn(out, **kwargs)``, writes its artifacts under
``out`` and returns a JSON-serialisable dict. A ``Finished`` is that dict, or why there is none:
``infrastructure`` (a worker process, a GPU or a node died: no verdict on anything) or ``error``
(kernelwright's own code raised). Neither is ever stored as a result, so a resumed run redoes the unit.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

INFRASTRUCTURE = "infrastructure"
ERROR = "error"


@dataclass
class Work:
    key: str  # unique in a run: names its claim, its log and its place in the store
    call: str  # "package.module:function", importable wherever the work runs
    kwargs: dict[str, Any]  # JSON-serialisable
    out: Path  # the driver's folder for the work's artifacts
    files: tuple[str, ...] = ()  # kwargs that name input files: copied to a remote worker, path rewritten
    log: Path | None = None  # where a worker process's stdout and stderr go


@dataclass
class Finished:
    key: str
    result: dict[str, Any] | None
    failure: str | None = None  # INFRASTRUCTURE or ERROR when there is no result
    message: str = ""
    where: str = ""  # the slot or node it ran on
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.result is not None


Started = Callable[[Work, str], None]  # (work, where) when a slot or node picks the work up


class Executor(ABC):
    """Runs works concurrently on its slots; ``submit`` returns at once."""

    name = "executor"

    @abstractmethod
    def describe(self) -> str:
        """One line: the backend and its slots, for the log and the live display."""

    @abstractmethod
    def capacity(self) -> int:
        """How many works can run at once."""

    @abstractmethod
    def submit(self, work: Work, started: Started | None = None) -> "Future[Finished]":
        """Queue ``work``; the future's result is its ``Finished`` (never an exception for the work's sake)."""

    def unit_device(self, device: str) -> str:
        """The device name a work should use where it runs (a pinned GPU is ``cuda``, i.e. its cuda:0)."""
        return device

    def close(self) -> None:
        """Give back what the executor holds (threads, a Ray connection)."""


def resolve_call(call: str) -> Callable[..., dict[str, Any]]:
    module, _, name = call.partition(":")
    return getattr(importlib.import_module(module), name)


def call_work(call: str, kwargs: dict[str, Any], out: str | Path) -> dict[str, Any]:
    return resolve_call(call)(str(out), **kwargs)


def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:500]
