"""The ledger: one run row per run directory, evaluations reused, budget-stopped results not recorded."""

import time

from kernelwright.run.artifacts import RunDir
from kernelwright.run.ledger import Ledger, heartbeat


def _open(root, agent="offline"):
    return Ledger.open(RunDir(root), task="rmsnorm", agent=agent, device="cpu", config={"budget": 1})


def test_reopening_a_run_directory_reuses_its_run_row_and_evaluations(tmp_path):
    first = _open(tmp_path)
    cid, path = first.candidate("probe", "SOURCE", role="search")
    assert path == tmp_path / "candidates" / "probe" / "kernel.py" and path.read_text() == "SOURCE"
    ran = []
    out = first.evaluate("verify", cid, "SOURCE", {"shapes": 8}, lambda: ran.append(1) or {"accepted": True})
    assert not out.reused and first.counts == {"run": 1, "reused": 0}
    first.close("failed")  # a run that stopped half-way

    again = _open(tmp_path)
    assert again.resumed and again.run_id == first.run_id
    assert again.candidate("probe", "SOURCE", role="search")[0] == cid  # the same candidate row
    hit = again.evaluate("verify", cid, "SOURCE", {"shapes": 8}, lambda: ran.append(2) or {"accepted": False})
    assert hit.reused and hit.result == {"accepted": True} and ran == [1]
    assert again.store.runs()[0]["status"] == "running"
    again.close("finished")

    other = _open(tmp_path, agent="openai:x")  # another agent in the same directory: its own row
    assert not other.resumed and other.run_id != first.run_id
    other.close("finished")


def test_a_result_the_budget_cut_is_not_recorded(tmp_path):
    ledger = _open(tmp_path)
    cid, _ = ledger.candidate("best", "S", role="search")
    stopped = {"accepted": False, "failures": [{"check": "timeout"}]}
    out = ledger.evaluate("verify", cid, "S", {}, lambda: stopped, keep=lambda r: False)
    assert out.result == stopped and ledger.lookup_quietly("S", "verify", {}) is None  # a later run verifies again
    ledger.close("failed")


def test_a_long_step_prints_a_heartbeat():
    lines = []
    with heartbeat(lines.append, "verifying probe", every=0.05):
        time.sleep(0.3)
    assert len(lines) >= 3 and lines[0].startswith("  still verifying probe:")
    with heartbeat(None, "silent", every=0.01):  # no reporter: no thread
        time.sleep(0.02)
