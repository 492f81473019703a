"""`kernelwright optimize` end to end on the CPU: the run directory, SIGKILL + resume, honest limits."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def _evaluations(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return con.execute("SELECT candidate_id, kind, status FROM evaluations ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # schema not written yet
            return []


def test_optimize_cpu_killed_and_resumed(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kernelwright", "optimize", "rmsnorm", "--device", "cpu", "--out", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not _evaluations(out / "run.sqlite") and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    finished_before_kill = _evaluations(out / "run.sqlite")
    assert finished_before_kill, "the first run recorded no evaluation"
    os.killpg(first.pid, signal.SIGKILL)  # the run and any worker it started
    first.wait()
    assert not (out / "best.py").exists()

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "reused" in second.stdout
    evaluations = _evaluations(out / "run.sqlite")
    # the evaluation finished before the kill is not run again
    first_candidate = finished_before_kill[0][0]
    assert [e for e in evaluations if e[0] == first_candidate and e[1] == "verify"] == [finished_before_kill[0]]
    assert all(status == "accepted" for _, kind, status in evaluations if kind == "verify")

    best = (out / "best.py").read_text()
    assert "class ModelNew(nn.Module)" in best and "@triton.jit" in best and "CONFIGS = [" in best
    plan = json.loads((out / "tuning_plan.json").read_text())
    assert plan["task"] == "rmsnorm" and plan["program"]["reduce_dim"] == 1 and len(plan["buckets"]) == 5
    kernels = list((out / "candidates").glob("*/kernel.py"))
    assert len(kernels) >= 2
    with sqlite3.connect(out / "run.sqlite") as con:
        runs = con.execute("SELECT status FROM runs ORDER BY id").fetchall()
        parents = con.execute("SELECT parent_id FROM candidates WHERE name = 'best'").fetchall()
    assert runs[-1] == ("finished",) and parents[0][0] is not None  # lineage: best came from the probe


def test_uncovered_op_is_an_honest_limit(tmp_path):
    out = tmp_path / "never"
    result = runner.invoke(app, ["optimize", str(FIXTURES / "kernelbench_cumsum.py"), "--device", "cpu",
                                 "--out", str(out)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "aten.cumsum" in text and "LLM agent" in text
    assert not out.exists()



@pytest.mark.gpu
def test_optimize_on_gpu_tunes_and_measures(tmp_path):
    from kernelwright.optimize import optimize

    result = optimize("rmsnorm", budget=3, out=tmp_path / "run", device="cuda")
    assert result.accepted, result.message
    assert any(b["round"] is not None for b in result.buckets)       # tuned by time
    assert result.final_rows and all(r["recheck"]["passed"] for r in result.final_rows)
    assert (tmp_path / "run" / "bench_results.csv").read_text().count("\n") > len(result.buckets)
