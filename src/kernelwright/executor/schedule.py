"""Run works on an executor into a unit store: each unit claimed, run once, stored as it finishes.

A unit already stored is never submitted; one claimed by another process is waited for and then read
(or run here when that process could not finish it). A failed unit (infrastructure or error) is
returned, not stored, so the next run of the same directory redoes it and nothing else. Works are
submitted as slots free up (never more than the executor's capacity at once), so ``gate`` decides on
each one just before it would start (an eval's dollar budget).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Callable

from kernelwright.executor.base import Executor, Finished, Work
from kernelwright.executor.claims import Claim, UnitStore
from kernelwright.executor.display import Board, shown, terminal

Gate = Callable[[Work], "str | None"]  # a reason not to start the work, or None


def execute(executor: Executor, works: list[Work], store: UnitStore, *, report: Callable[[str], None] = lambda _: None,
            gate: Gate = lambda _: None, live: bool | None = None) -> dict[str, Finished]:
    """Every work not yet in ``store``, concurrently on ``executor``; what each one ran to, by key (a work
    the gate stopped or another process finished has no entry)."""
    board = Board(len(works), executor.capacity(), executor.describe(), report,
                  live=terminal() if live is None else live)
    finished: dict[str, Finished] = {}
    with shown(board):
        pending = list(works)
        while pending:
            elsewhere = _run_claimed(executor, pending, store, board, gate, finished)
            pending = _wait_for_others(elsewhere, store, board)
    return finished


def _run_claimed(executor: Executor, works: list[Work], store: UnitStore, board: Board, gate: Gate,
                 finished: dict[str, Finished]) -> list[Work]:
    """Run every work this process can claim, storing results as they come; the works held elsewhere."""
    queue, elsewhere = deque(works), []
    running: dict[Future, tuple[Work, Claim]] = {}
    width = max(1, executor.capacity())
    try:
        while queue or running:
            while queue and len(running) < width:
                work = queue.popleft()
                claim = _claim(work, store, board, gate, elsewhere)
                if claim is not None:
                    running[executor.submit(work, board.start)] = (work, claim)
            if running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    work, claim = running.pop(future)
                    _settle(work, future.result(), claim, store, board, finished)
    finally:
        for _, claim in running.values():
            claim.release()  # an interrupt: our claims end with us
    return elsewhere


def _claim(work: Work, store: UnitStore, board: Board, gate: Gate, elsewhere: list[Work]) -> Claim | None:
    claim = store.claim(work.key)
    if claim is None:
        elsewhere.append(work)
        board.note(f"{work.key}: claimed by another process; waiting for it")
        return None
    if store.has(work.key):  # stored between our listing and our claim
        claim.release()
        board.skip(work.key, "stored by another process")
        return None
    reason = gate(work)
    if reason is not None:
        claim.release()
        board.skip(work.key, reason)
        return None
    return claim


def _settle(work: Work, done: Finished, claim: Claim, store: UnitStore, board: Board,
            finished: dict[str, Finished]) -> None:
    try:
        if done.ok:  # where it ran (a slot, "gpu1", or a Ray node) stays with the result
            store.save(work.key, {**done.result, "ran_on": done.where})
    finally:
        claim.release()
    finished[work.key] = done
    board.finish(done)


def _wait_for_others(works: list[Work], store: UnitStore, board: Board) -> list[Work]:
    again = []
    for work in works:
        store.claim(work.key, wait=True).release()
        if store.has(work.key):
            board.skip(work.key, "finished by another process")
        else:
            again.append(work)  # that process could not finish it: ours to run
    return again
