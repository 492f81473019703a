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
    assert plan["tuning"]["rounds_run"] == 0 and plan["tuning"]["stopped"] == "the CPU tunes nothing by time"
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


# -- the time budget -------------------------------------------------------------------------------


def test_projection_uses_the_slowest_round_and_scales_the_final_phase():
    from kernelwright.optimize import FINAL_PER_ROUND, ROUND_PER_VERIFY, projected_finish

    # before any round: the round is estimated from the slowest probe verification
    assert projected_finish(20.0, [], 10.0) == pytest.approx(20 + ROUND_PER_VERIFY * 10 + 10 + FINAL_PER_ROUND * 15)
    # afterwards the slowest round so far, not the last one, is the projection
    assert projected_finish(50.0, [12.0, 16.0, 11.0], 10.0) == pytest.approx(50 + 16 + 10 + FINAL_PER_ROUND * 16)
    assert projected_finish(50.0, [12.0, 16.0, 11.0], 10.0) > projected_finish(50.0, [12.0, 11.0], 10.0)


def test_rounds_admitted_by_the_rule_end_within_the_budget():
    """Simulated runs: if rounds cost no more than the slowest seen and the final phase costs what is
    projected, the run ends within its limit, and it stops only when another round would not fit."""
    from kernelwright.optimize import FINAL_PER_ROUND, projected_finish

    for limit, costs in ((180.0, [12.0] * 20), (180.0, [9.0, 14.0, 10.0, 13.0] * 5), (60.0, [30.0] * 5),
                         (500.0, [12.0] * 10)):
        verify_s, elapsed, done = 11.0, 24.0, []
        for cost in costs[:10]:
            if projected_finish(elapsed, done, verify_s) > limit:
                break
            elapsed += cost
            done.append(cost)
        final = verify_s + FINAL_PER_ROUND * max(done, default=0.0)
        assert elapsed + final <= limit or not done
        if len(done) < 10:  # stopped by time: the next round would not have fit
            assert projected_finish(elapsed, done, verify_s) > limit
    # 60 s with 11-s verifications: the first round (16.5 s + 11 s + 41 s) does not fit after 24 s
    assert projected_finish(24.0, [], 11.0) > 60.0


def test_time_limit_from_minutes():
    from kernelwright.errors import UsageError
    from kernelwright.optimize import DEFAULT_MINUTES, time_limit_s

    assert time_limit_s(None) == DEFAULT_MINUTES * 60 == 180
    assert time_limit_s(0.5) == 30
    assert time_limit_s(0) is None
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="--max-minutes"):
            time_limit_s(bad)


class _Clock:
    """optimize's clock: only the fakes below advance it, so a test controls every second."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _Outcome:
    def __init__(self, data: dict):
        self.data = data
        self.accepted = data.get("accepted", True)
        self.ok = not data.get("failures")

    def as_json(self) -> dict:
        return self.data


VERIFY_S, ROUND_S, FINAL_S = 10.0, 14.0, 26.0


def _fakes(monkeypatch, clock: _Clock, calls: list):
    """A GPU run on the CPU: device, verify, bench and clock replaced. Round k is fastest for bucket
    k % 3, so the best table takes a different round for different buckets."""
    import kernelwright.bench.bencher as bencher
    import kernelwright.optimize as opt
    import kernelwright.verify as verify_pkg

    def fake_verify(task, path, *, device, limits, shapes):
        calls.append(("verify", Path(path).parent.name, Path(path).read_text(), {}))
        clock.now += VERIFY_S
        return _Outcome({"accepted": True, "failures": []})

    def fake_bench(task, path, *, device, shapes, dtype, limits, warmup_ms=25.0, rep_ms=100.0, baseline_kinds=None):
        name = Path(path).parent.name
        calls.append(("bench", name, Path(path).read_text(),
                      {"warmup_ms": warmup_ms, "rep_ms": rep_ms, "baseline_kinds": baseline_kinds}))
        final = name.startswith("best")
        clock.now += FINAL_S if final else ROUND_S
        k = None if final else int(name[len("round"):].split("-")[0])
        rows = []
        for i, knobs in enumerate(shapes):
            ms = 0.5 if k is None or k % 3 == i % 3 else 1.0 + 0.01 * k
            rows.append({"knobs": knobs, "dtype": dtype, "gbps": 1.0 / ms, "fraction_of_copy": 0.5 / ms,
                         "timings": {"candidate": {"median_ms": ms, "iqr_ms": 0.01}, "eager": {"median_ms": 2.0}},
                         "speedup": {"eager": 2.0 / ms}, "recheck": {"passed": True, "rel_err": 0.0}})
        return _Outcome({"rows": rows, "failures": [], "ceilings": {"copy_gbps": 4000.0}})

    monkeypatch.setattr(opt, "time", clock)
    monkeypatch.setattr(opt, "resolve_device", lambda device: "cuda:0")
    monkeypatch.setattr(verify_pkg, "verify", fake_verify)
    monkeypatch.setattr(bencher, "bench", fake_bench)


def test_time_budget_stops_tuning_and_still_verifies_best(tmp_path, monkeypatch):
    from kernelwright.optimize import FINAL_PER_ROUND, STOP_TIME, TUNE_BENCH, optimize

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls)
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=10, out=out, minutes=2)
    # two probes (20 s); rounds end at 34, 48, 62, 76 s; a 5th would end at 76 + 14 + 10 + 1.8 × 14 = 125.2 > 120
    assert FINAL_PER_ROUND == 1.8
    assert result.tuning["stopped"] == STOP_TIME and result.tuning["rounds_run"] == 4
    assert result.tuning["projected_s"] == pytest.approx(125.2)
    assert result.seconds == pytest.approx(76 + VERIFY_S + FINAL_S) and result.seconds <= 120
    assert result.tuning["projected_end_s"] == pytest.approx(76 + VERIFY_S + FINAL_PER_ROUND * ROUND_S)
    assert result.accepted, result.message
    benches = [c for c in calls if c[0] == "bench"]
    assert [c[1].split("-")[0] for c in benches] == ["round00", "round01", "round02", "round03", "best"]
    assert all(c[3] == TUNE_BENCH for c in benches[:-1])           # cheap tuning rounds
    assert benches[-1][3] == {"warmup_ms": 25.0, "rep_ms": 100.0, "baseline_kinds": None}  # the full method
    # best.py is what the last verify saw, and each bucket kept its fastest round
    best = (out / "best.py").read_text()
    assert calls[-2][0] == "verify" and calls[-2][2] == best
    assert [b["round"] for b in result.buckets] == [i % 3 for i in range(len(result.buckets))]
    plan = json.loads((out / "tuning_plan.json").read_text())
    assert plan["time_budget_s"] == 120 and plan["tuning"]["stopped"] == STOP_TIME
    assert plan["tuning"]["rounds_run"] == 4
    with sqlite3.connect(out / "run.sqlite") as con:
        settings = [json.loads(s) for (s,) in con.execute("SELECT settings FROM evaluations WHERE kind = 'bench'")]
    assert [s["what"] for s in settings] == ["tune"] * 4 + ["final"] and settings[0]["rep_ms"] == TUNE_BENCH["rep_ms"]

    # resumed with a budget too small for any fresh round: the stored rounds are replayed, nothing re-run
    clock2, calls2 = _Clock(), []
    _fakes(monkeypatch, clock2, calls2)
    again = optimize("rmsnorm", budget=10, out=out, minutes=0.25)
    assert calls2 == [] and again.evaluations == {"run": 0, "reused": 2 + 4 + 2}
    assert again.tuning["rounds_run"] == 4 and again.tuning["stopped"] == STOP_TIME
    assert (out / "best.py").read_text() == best and again.accepted


def test_round_budget_and_no_time_limit(tmp_path, monkeypatch):
    from kernelwright.optimize import FINAL_PER_ROUND, STOP_ROUNDS, optimize

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls)
    result = optimize("rmsnorm", budget=2, out=tmp_path / "run", minutes=0)
    assert result.tuning == {"rounds_budget": 2, "rounds_run": 2, "time_budget_s": None, "stopped": STOP_ROUNDS,
                             "tuning_s": 2 * ROUND_S, "projected_end_s": 20 + 2 * ROUND_S + VERIFY_S + FINAL_PER_ROUND * ROUND_S}
    # no limit: even a projection far past 3 minutes does not stop it
    clock.now, calls[:] = 1000.0, []
    slow = optimize("rmsnorm", budget=4, out=tmp_path / "slow", minutes=0)
    assert slow.tuning["rounds_run"] == 4


def test_cli_passes_max_minutes_to_the_offline_agent(tmp_path, monkeypatch):
    import kernelwright.optimize as opt

    seen = {}

    def fake_optimize(task, **kwargs):
        seen.update(kwargs, task=task)
        return opt.OptimizeResult(task=task, out=tmp_path, device="cuda:0", best_path=tmp_path / "best.py",
                                  accepted=True, message="best.py verified", seconds=171.0,
                                  tuning={"rounds_budget": 4, "rounds_run": 3, "time_budget_s": 150.0,
                                          "stopped": opt.STOP_TIME})

    monkeypatch.setattr(opt, "optimize", fake_optimize)
    result = runner.invoke(app, ["optimize", "rmsnorm", "--max-minutes", "2.5", "--budget", "4", "--out",
                                 str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["minutes"] == 2.5 and seen["budget"] == 4 and seen["agent"] == "offline"
    text = " ".join(result.output.split())
    assert "3 of 4 round(s), stopped: time budget; run 171 s of a 150-s budget" in text
    runner.invoke(app, ["optimize", "rmsnorm", "--out", str(tmp_path)])
    assert seen["minutes"] is None  # optimize's own default (3 minutes) applies


def test_cli_rejects_a_negative_time_budget(tmp_path):
    result = runner.invoke(app, ["optimize", "rmsnorm", "--max-minutes", "-1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "--max-minutes" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()


def test_a_shape_bucket_is_keyed_like_the_launcher_over_a_block_of_reduced_dims():
    from kernelwright.optimize import _bucket_key
    from kernelwright.search.capture import capture
    from kernelwright.tasks.task import load_task

    task = load_task(Path(__file__).parent / "search" / "tasks" / "layernorm_3d.py")
    program = capture(task)
    assert _bucket_key(task, program, {"batch": 9, "channels": 11, "height": 13, "width": 10}) == (9, 11 * 13 * 10)
