from pathlib import Path

from kernelwright.executor.base import Finished, Work
from kernelwright.executor.display import Board


def test_the_board_counts_and_renders_workers_queue_and_rate():
    lines = []
    board = Board(3, 2, "local executor, 2 slot(s)", lines.append)
    work = Work("unit-a", "m:f", {}, Path("x"))
    board.start(work, "gpu0")
    board.finish(Finished("unit-a", {"ok": 1}, where="gpu0", seconds=2.0))
    board.start(Work("unit-b", "m:f", {}, Path("y")), "gpu1")
    assert (board.done, board.queued, len(board.running)) == (1, 1, 1) and board.per_minute() > 0
    assert lines[:2] == ["[0/3] unit-a: running on gpu0", "[1/3] unit-a: done on gpu0 in 2 s"]
    from rich.console import Console

    console = Console(width=150, record=True)
    console.print(board.render())
    text = console.export_text()
    assert "unit-b" in text and "gpu1" in text and "queued 1" in text and "units/min" in text
