import sys
import threading
import time
from pathlib import Path

from kernelwright.executor import UnitStore, Work, execute
from kernelwright.executor.local import LocalExecutor, Slot

HERE = Path(__file__).resolve().parent


class Counting(LocalExecutor):
    def __init__(self):
        super().__init__([Slot("cpu0", None)])
        self.ran = []

    def submit(self, work, started=None):
        self.ran.append(work.key)
        return super().submit(work, started)


def test_a_unit_claimed_by_another_process_is_waited_for_and_never_run_twice(tmp_path):
    store = UnitStore(tmp_path / "units")
    held = store.claim("shared")
    assert held is not None and store.claim("shared") is None  # exclusive, even within one process

    def other_driver():
        time.sleep(0.5)
        store.save("shared", {"value": "theirs"})
        held.release()

    thread = threading.Thread(target=other_driver)
    thread.start()
    executor = Counting()
    works = [Work(k, "executor_helpers:echo", {"value": k}, tmp_path / k) for k in ("shared", "mine")]
    sys.path.insert(0, str(HERE))  # the one slot runs works in this process
    try:
        finished = execute(executor, works, store, live=False)
    finally:
        sys.path.remove(str(HERE))
        thread.join()
        executor.close()
    assert executor.ran == ["mine"] and set(finished) == {"mine"}
    assert store.load("shared") == {"value": "theirs"} and store.load("mine")["value"] == "mine"
    assert store.claim("shared") is not None  # the claim went with its holder
