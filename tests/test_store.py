"""The run store: schema, lineage, resume look-ups, and durability across SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from kernelwright.store import Store, sha256


def test_candidates_evaluations_and_lineage(tmp_path):
    store = Store.open(tmp_path / "run.sqlite")
    run = store.start_run(task="rmsnorm", agent="offline", device="cpu", config={"budget": 4})
    a = store.add_candidate(run, source_path="candidates/1/kernel.py", source="A", role="search", agent="offline",
                            name="a", meta={"BLOCK": 128})
    b = store.add_candidate(run, source_path="candidates/2/kernel.py", source="B", role="tuner", agent="offline",
                            parent_id=a)
    c = store.add_candidate(run, source_path="candidates/3/kernel.py", source="C", role="debugger", agent="x",
                            parent_id=b)
    assert [x.id for x in store.lineage(c)] == [a, b, c]
    assert store.candidate(a).meta == {"BLOCK": 128}
    assert store.candidate(b).source_sha == sha256("B")

    store.add_evaluation(b, "verify", "accepted", {"accepted": True}, seconds=1.5, device="cpu",
                         settings={"shapes": 8, "seed": 1})
    # settings are compared canonically (key order does not matter), device and kind must match
    hit = store.find_evaluation(sha256("B"), "verify", "cpu", settings={"seed": 1, "shapes": 8})
    assert hit is not None and hit.status == "accepted" and hit.result == {"accepted": True}
    assert store.find_evaluation(sha256("B"), "verify", "cuda:0", settings={"seed": 1, "shapes": 8}) is None
    assert store.find_evaluation(sha256("B"), "bench", "cpu", settings={"seed": 1, "shapes": 8}) is None
    assert store.find_evaluation(sha256("B"), "verify", "cpu", settings={"shapes": 4, "seed": 1}) is None
    assert store.find_evaluation(sha256("A"), "verify", "cpu", settings={"shapes": 8, "seed": 1}) is None
    with pytest.raises(ValueError):
        store.add_evaluation(a, "profile", "ok", {}, seconds=0, device="cpu")

    store.finish_run(run)
    assert store.runs()[0]["status"] == "finished"
    assert store.runs()[0]["config"] == {"budget": 4}
    assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()

    # a second process (a resumed run) sees everything, and finds the same source across runs
    again = Store.open(tmp_path / "run.sqlite")
    run2 = again.start_run(task="rmsnorm", agent="offline", device="cpu")
    assert again.find_candidate(sha256("B")).id == b
    assert len(again.candidates(run)) == 3 and again.candidates(run2) == []


def test_writes_survive_sigkill(tmp_path):
    """A writer killed with SIGKILL keeps every evaluation it finished writing."""
    db = tmp_path / "run.sqlite"
    marker = tmp_path / "written"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from kernelwright.store import Store
        store = Store.open({str(db)!r})
        run = store.start_run(task="t", agent="offline", device="cpu")
        for i in range(5):
            cand = store.add_candidate(run, source_path=f"c{{i}}", source=f"src{{i}}", role="search", agent="offline")
            store.add_evaluation(cand, "verify", "accepted", {{"i": i}}, seconds=0.1, device="cpu")
        Path({str(marker)!r}).write_text("5")
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the writer never finished its writes"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store.open(db)
    assert [c.name for c in store.candidates()] == [""] * 5
    for i in range(5):
        hit = store.find_evaluation(sha256(f"src{i}"), "verify", "cpu")
        assert hit is not None and hit.result == {"i": i}


def test_other_modules_can_add_tables(tmp_path):
    store = Store.open(tmp_path / "run.sqlite")
    store.ensure_schema("CREATE TABLE IF NOT EXISTS llm_calls (id INTEGER PRIMARY KEY, candidate_id INTEGER);")
    store.ensure_schema("CREATE TABLE IF NOT EXISTS llm_calls (id INTEGER PRIMARY KEY, candidate_id INTEGER);")
    store.connection.execute("INSERT INTO llm_calls(candidate_id) VALUES (1)")
    assert store.connection.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 1
