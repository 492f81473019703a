"""Progress of many workers: one live rich panel on a terminal's stderr, plain lines anywhere else.

The panel shows every running unit (where, how long), the queue, what finished and failed, and units
finished per minute since the start; in a log (stderr not a terminal, CI, ``--json``) each start and
finish is one line through ``report``.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from kernelwright.executor.base import Finished, Work

Reporter = Callable[[str], None]


class Board:
    """What the executor is doing now; every method is safe from any thread."""

    def __init__(self, total: int, capacity: int, describe: str, report: Reporter, *, live: bool = False):
        self.total, self.capacity, self.describe, self.report, self.live = total, capacity, describe, report, live
        self.done = self.failed = self.skipped = 0
        self.running: dict[str, tuple[str, float]] = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()

    @property
    def queued(self) -> int:
        return self.total - self.done - self.failed - self.skipped - len(self.running)

    def per_minute(self) -> float:
        minutes = (time.monotonic() - self.started) / 60
        return self.done / minutes if minutes > 0 else 0.0

    def start(self, work: Work, where: str) -> None:
        with self._lock:
            self.running[work.key] = (where, time.monotonic())
        self._say(f"{work.key}: running on {where}")

    def finish(self, done: Finished) -> None:
        with self._lock:
            self.running.pop(done.key, None)
            if done.ok:
                self.done += 1
            else:
                self.failed += 1
        how = "done" if done.ok else f"{done.failure} failure ({done.message})"
        self._say(f"{done.key}: {how} on {done.where or '?'} in {done.seconds:.0f} s")

    def skip(self, key: str, why: str) -> None:
        with self._lock:
            self.skipped += 1
        self._say(f"{key}: {why}")

    def note(self, text: str) -> None:
        self._say(text)

    def _say(self, text: str) -> None:
        if not self.live:
            finished = self.done + self.failed + self.skipped
            self.report(f"[{finished}/{self.total}] {text}")

    def render(self):
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=(f"{escape(self.describe)} · queued {self.queued} · running {len(self.running)} · done "
                             f"{self.done}/{self.total} · failed {self.failed} · {self.per_minute():.1f} units/min"),
                      title_justify="left", expand=False)
        for column in ("where", "unit", "for"):
            table.add_column(column)
        now = time.monotonic()
        with self._lock:
            running = sorted(self.running.items(), key=lambda item: item[1][0])
        for key, (where, since) in running:
            table.add_row(escape(where), escape(key), f"{now - since:.0f} s")  # unit keys hold agent commands
        return table


def terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def shown(board: Board) -> Iterator[Board]:
    """Keep ``board`` on screen while the block runs when it is live."""
    if not board.live:
        yield board
        return
    from rich.console import Console
    from rich.live import Live

    with Live(get_renderable=board.render, console=Console(stderr=True), refresh_per_second=2, transient=False):
        yield board
