import shutil
from pathlib import Path

from kernelwright.package.evidence import gather
from kernelwright.store import Store

EXAMPLE = Path(__file__).parents[2] / "examples" / "rmsnorm.py"


def _run_dir(tmp_path: Path) -> Path:
    """An optimize run directory made on another machine: best.py, its store, that machine's paths."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(EXAMPLE, run / "best.py")
    source = (run / "best.py").read_text()
    verdict = {"schema": "kernelwright.verify/1", "accepted": True, "task": "rmsnorm",
               "task_path": "/elsewhere/suite/rmsnorm.py"}
    with Store.open(run / "run.sqlite") as store:
        run_id = store.start_run(task="rmsnorm", agent="offline", device="cuda:0")
        other = store.add_candidate(run_id, source_path="candidates/round00/kernel.py", source=source + "# other\n",
                                    role="tuner", agent="offline", parent_id=None)
        best = store.add_candidate(run_id, source_path="candidates/best/kernel.py", source=source,
                                   role="search", agent="offline", parent_id=other)
        store.add_evaluation(other, "verify", "accepted", {**verdict, "candidate": "round00"}, seconds=1,
                             device="cuda:0")
        store.add_evaluation(best, "bench", "ok", {"schema": "kernelwright.bench/1", "rows": ["tune"]}, seconds=1,
                             device="cuda:0", settings={"what": "tune"})
        store.add_evaluation(best, "verify", "rejected", {**verdict, "accepted": False}, seconds=1, device="cuda:0")
        store.add_evaluation(best, "verify", "accepted", verdict, seconds=1, device="cuda:0")
        store.add_evaluation(best, "bench", "ok", {"schema": "kernelwright.bench/1", "rows": ["final"]}, seconds=1,
                             device="cuda:0", settings={"what": "final"})
    return run


def test_a_run_directory_gives_best_py_its_own_accepted_verification_and_final_benchmark(tmp_path):
    ev = gather(_run_dir(tmp_path))
    assert ev.candidate.name == "best.py"
    assert [v.get("candidate") for v in ev.verifications] == [None]  # not the other candidate's, not the rejected
    assert all(v["accepted"] for v in ev.verifications)
    assert [b["rows"] for b in ev.benches] == [["final"]]  # never a tuning round's eager-only timing
    assert ev.task_hint == "rmsnorm"  # the recorded path does not exist here: the task's name instead


def test_an_unreadable_store_is_noted_and_nothing_is_invented(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(EXAMPLE, run / "best.py")
    (run / "run.sqlite").write_text("not a database")
    ev = gather(run)
    assert ev.verifications == [] and ev.benches == [] and ev.task_hint is None
    assert any("run.sqlite" in n and "not readable" in n for n in ev.notes)
