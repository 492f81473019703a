"""The offline agent end to end on the CPU (the run directory, SIGKILL + resume, honest limits) and its
time budget with a fake clock, verifier and bench."""

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

FIXTURES = Path(__file__).parents[1] / "fixtures"
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
    assert all(b["ranked"][0]["block"].startswith("whole row") for b in plan["buckets"])  # one-pass rows
    kernels = list((out / "candidates").glob("*/kernel.py"))
    assert len(kernels) >= 2
    with sqlite3.connect(out / "run.sqlite") as con:
        runs = con.execute("SELECT status FROM runs ORDER BY id").fetchall()
        parents = con.execute("SELECT parent_id FROM candidates WHERE name = 'best'").fetchall()
    assert runs == [("finished",)] and parents[0][0] is not None  # one run row, reused; lineage: best from the probe
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"]["status"] == "untimed" and "untimed on CPU" in summary["verdict"]["sentence"]
    assert summary["resumed"] is True and summary["evaluations"]["reused"] >= 1


def test_uncovered_op_is_an_honest_limit(tmp_path):
    out = tmp_path / "never"
    result = runner.invoke(app, ["optimize", str(FIXTURES / "kernelbench_cumsum.py"), "--device", "cpu",
                                 "--out", str(out)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "aten.cumsum" in text and "LLM agent" in text
    assert "softmax-shaped rows" in text and "--agent openai-compatible:URL:MODEL" in text
    assert not out.exists()


def test_attention_refusal_names_the_family_first_and_a_local_model(tmp_path):
    result = runner.invoke(app, ["optimize", str(FIXTURES / "attention_task.py"), "--device", "cpu",
                                 "--out", str(tmp_path / "never")], env={"COLUMNS": "80"})
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "not covered: Task attention_task: matmul/attention/convolution" in text
    assert text.index("is outside what the offline agent generates") < text.index("Detail:")
    for agent in ("anthropic:MODEL", "openai:MODEL", "openai-compatible:URL:MODEL"):
        assert f"--agent {agent}" in text



@pytest.mark.gpu
def test_optimize_on_gpu_tunes_and_measures(tmp_path):
    from kernelwright.run import optimize

    result = optimize("rmsnorm", budget=3, out=tmp_path / "run", device="cuda")
    assert result.accepted, result.message
    assert any(b["round"] is not None for b in result.buckets)       # tuned by time
    assert result.final_rows and all(r["recheck"]["passed"] for r in result.final_rows)
    assert result.verdict["status"] in ("faster", "slower") and result.verdict["fastest_baseline"]
    assert (tmp_path / "run" / "bench_results.csv").read_text().count("\n") > len(result.buckets)


# -- the time budget -------------------------------------------------------------------------------


def test_projection_is_built_from_measured_costs():
    from kernelwright.run.offline import FINAL_PER_COST, Costs

    # the first probe alone: it is the probe estimate (cold); later warm ones replace it
    costs = Costs(probes=[24.0])
    assert costs.probe() == 24.0
    costs.probes += [8.0, 9.0]
    assert costs.probe() == 9.0
    # before any round: a round and the final bench are each one benchmark-shape verification (the unit)
    costs.unit = 16.0
    assert costs.round() == 16.0 and costs.final_bench() == 16.0
    assert costs.finish(40.0, probes=1, rounds=2, tuned_verify=True) == pytest.approx(40 + 9 + 32 + 16 + 16)
    # after rounds: the slowest round, and the final bench from the slower of round and unit
    costs.rounds += [10.0, 12.0, 11.0]
    assert costs.round() == 12.0 and costs.final_bench() == pytest.approx(FINAL_PER_COST * 16)
    costs.rounds.append(30.0)
    assert costs.final_bench() == pytest.approx(FINAL_PER_COST * 30)
    assert costs.finish(50.0, rounds=1) == pytest.approx(50 + 30 + FINAL_PER_COST * 30)
    # the CPU has no rounds, benchmark shape or benchmark: what is left is verifications
    assert costs.finish(30.0, probes=2, rounds=3, tuned_verify=True, on_gpu=False) == pytest.approx(30 + 18)


def test_time_limit_from_minutes():
    from kernelwright.errors import UsageError
    from kernelwright.run.offline import DEFAULT_MINUTES, time_limit_s

    assert time_limit_s(None) == DEFAULT_MINUTES * 60 == 180
    assert time_limit_s(0.5) == 30
    assert time_limit_s(0) is None
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="--max-minutes"):
            time_limit_s(bad)


class _Clock:
    """The run's clock: only the fakes below advance it, so a test controls every second."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _Outcome:
    def __init__(self, data: dict):
        self.data = data
        self.accepted = data.get("accepted", True)

    def as_json(self) -> dict:
        return self.data


def _name(path) -> str:
    """The candidate's name from its folder (``<name>-<sha prefix>``)."""
    return Path(path).parent.name.rsplit("-", 1)[0]


def _timeout(limits) -> dict:
    return {"check": "timeout", "message": f"the worker ran past its {limits.timeout_s:.0f}-s timeout"}


def _fakes(monkeypatch, clock: _Clock, calls: list, *, probe_s=(10.0, 10.0), verify_s=10.0, round_s=14.0,
           final_s=26.0, compile_ms: float = 1.0, device: str = "cuda:0", verify_s_per_shape: float | None = None,
           reject: tuple = (), final_fixed: bool = False, final_failure: dict | None = None, judge_s: float = 0.0):
    """A GPU run on the CPU: device, verify, bench and clock replaced. A small-shape verification (a
    probe) takes ``probe_s[0]`` the first time (cold) and ``probe_s[1]`` after; one with the benchmark
    shape ``verify_s`` (a number, or per candidate name with "*" for the rest); a tuning round
    ``round_s``; the final bench ``final_s`` at full repetition, less in proportion when shortened. A
    worker whose cost passes its timeout is stopped there, as the runner does. Candidates named in
    ``reject`` are rejected. Round k is fastest for bucket k % 3, so the best table takes a different
    round for different buckets. torch.compile takes ``compile_ms`` at every shape in the final bench.
    ``final_fixed``: the final bench costs ``final_s`` whatever its repetitions (a task of gigabytes, where
    drawing and re-checking the inputs dominate). ``final_failure``: the final bench fails so (a ``recheck_*``
    check comes with rows whose re-check failed; any other, with no rows, as a worker that died). ``judge_s``:
    the judge phase every accepted verification reports."""
    import kernelwright.bench.bencher as bencher
    import kernelwright.run.entry as entry
    import kernelwright.run.ledger as ledger
    import kernelwright.run.offline as offline
    import kernelwright.verify as verify_pkg

    def spend(cost: float, limits) -> bool:
        clock.now += min(cost, limits.timeout_s)
        return cost <= limits.timeout_s

    def fake_verify(task, path, *, device, limits, shapes, benchmark_shape, progress=None):
        name = _name(path)
        calls.append(("verify", Path(path).parent.name, Path(path).read_text(),
                      {"shapes": shapes, "benchmark_shape": benchmark_shape, "timeout_s": limits.timeout_s,
                       "at": clock.now}))
        if verify_s_per_shape is not None:
            cost = verify_s_per_shape * shapes
        elif benchmark_shape:
            cost = verify_s.get(name, verify_s["*"]) if isinstance(verify_s, dict) else verify_s
        else:
            cost = probe_s[0] if not any(c[0] == "verify" and not c[3]["benchmark_shape"] for c in calls[:-1]) \
                else probe_s[1]
        if not spend(cost, limits):
            return _Outcome({"accepted": False, "failures": [_timeout(limits)]})
        if name in reject:
            return _Outcome({"accepted": False, "failures": [{"check": "determinism", "message": "two runs differ"}]})
        return _Outcome({"accepted": True, "failures": [], "phases": {"judge": judge_s}})

    def fake_bench(task, path, *, device, shapes, dtype, limits, warmup_ms=25.0, rep_ms=100.0, baseline_kinds=None):
        name = _name(path)
        calls.append(("bench", Path(path).parent.name, Path(path).read_text(),
                      {"warmup_ms": warmup_ms, "rep_ms": rep_ms, "baseline_kinds": baseline_kinds,
                       "shapes": len(shapes), "timeout_s": limits.timeout_s, "at": clock.now}))
        final = not name.startswith("round")
        if not spend((final_s if final_fixed else final_s * rep_ms / 100.0) if final else round_s, limits):
            return _Outcome({"rows": [], "failures": [_timeout(limits)], "ok": False})
        failed = final_failure if final else None
        if failed and not failed["check"].startswith("recheck_"):
            return _Outcome({"rows": [], "failures": [failed], "ok": False, "timings_meaningful": True})
        k = None if final else int(name[len("round"):])
        rows = []
        for i, knobs in enumerate(shapes):
            ms = 0.5 if k is None or k % 3 == i % 3 else 1.0 + 0.01 * k
            timings = {"candidate": {"median_ms": ms, "iqr_ms": 0.01}, "eager": {"median_ms": 2.0}}
            if final:
                timings["compile"] = {"median_ms": compile_ms}
            rows.append({"knobs": knobs, "dtype": dtype, "gbps": 1.0 / ms, "fraction_of_copy": 0.5 / ms,
                         "timings": timings, "speedup": {n: t["median_ms"] / ms for n, t in timings.items()},
                         "recheck": {"passed": not failed, "rel_err": 0.5 if failed else 0.0}})
        failures = [{**failed, "knobs": knobs} for knobs in shapes] if failed else []
        return _Outcome({"rows": rows, "failures": failures, "ok": not failures, "timings_meaningful": True,
                         "ceilings": {"copy_gbps": 4000.0}})

    for module in (offline, ledger, entry):
        monkeypatch.setattr(module, "time", clock)
    monkeypatch.setattr(entry, "resolve_device", lambda _: device)
    monkeypatch.setattr(verify_pkg, "verify", fake_verify)
    monkeypatch.setattr(bencher, "bench", fake_bench)


def _within_budget(calls: list, limit_s: float, start: float = 1000.0) -> None:
    """Every worker's timeout ends it by the budget plus its margin."""
    from kernelwright.run.offline import MARGIN

    for kind, name, _, info in calls:
        assert info["at"] - start + info["timeout_s"] <= limit_s * (1 + MARGIN) + 1e-6, (kind, name, info)


def _steps(calls: list) -> list[tuple[str, str]]:
    return [(kind, name.rsplit("-", 1)[0]) for kind, name, _, _ in calls]


def _prior_source(result) -> str:
    """best.py of the prior table: every bucket's first-ranked configuration, in the run's own order."""
    from kernelwright.run.offline import prepare
    from kernelwright.search.codegen import generate
    from kernelwright.search.capture import capture
    from kernelwright.tasks.task import load_task

    prep = prepare(load_task(result.task), "cuda")
    table = [(tuple(b["key"]), b["ranked"][0]) for b in prep.buckets]
    return generate(capture(load_task(result.task)), table, label="best configuration per shape bucket")


def test_time_budget_stops_tuning_and_still_verifies_best(tmp_path, monkeypatch):
    from kernelwright.run import optimize
    from kernelwright.run.offline import FINAL_PER_COST, FULL_BENCH, STOP_TIME, TUNE_BENCH

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, final_s=20.0)
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=10, out=out, minutes=2)
    # probe 0-10 s, the prior (best.py) 10-20 s with the benchmark shape, probe 20-30 s; rounds end at 44, 58,
    # 72, 86 s; a 5th would end at 86 + 14 + 10 (the tuned table's verification) + 1.5 × 14 = 131 > 120;
    # the tuned table verified at 86-96 s, benchmarked at 96-116 s
    assert _steps(calls) == [("verify", "probe-one-pass"), ("verify", "best"), ("verify", "probe-looped"),
                             *[("bench", f"round0{k}") for k in range(4)], ("verify", "best-tuned"),
                             ("bench", "best-tuned")]
    assert result.tuning["stopped"] == STOP_TIME and result.tuning["rounds_run"] == 4
    assert result.tuning["projected_s"] == pytest.approx(86 + 14 + 10 + FINAL_PER_COST * 14)
    assert result.seconds == pytest.approx(116.0)
    assert result.accepted, result.message
    verifies = [c for c in calls if c[0] == "verify"]
    assert [c[3]["benchmark_shape"] for c in verifies] == [False, True, False, True]
    benches = [c for c in calls if c[0] == "bench"]
    assert all({k: c[3][k] for k in TUNE_BENCH} == TUNE_BENCH for c in benches[:-1])  # cheap tuning rounds
    assert {k: benches[-1][3][k] for k in FULL_BENCH} == FULL_BENCH and benches[-1][3]["baseline_kinds"] is None
    _within_budget(calls, 120)
    best = (out / "best.py").read_text()
    assert verifies[-1][2] == best == benches[-1][2] and verifies[1][2] == _prior_source(result) != best
    assert [b["round"] for b in result.buckets] == [i % 3 for i in range(len(result.buckets))]
    # the verdict: 0.5 ms against torch.compile's 1.0 ms at every shape
    assert result.verdict["status"] == "faster" and result.verdict["fastest_baseline"] == "compile"
    assert result.verdict["ratio_geomean"] == pytest.approx(2.0) and result.verdict["budget_cuts"] == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"]["sentence"].startswith("faster than torch.compile by 2.00x")
    header = (out / "bench_results.csv").read_text().splitlines()[0]
    assert header.startswith("candidate,candidate_id,role,parent,round,knobs,dtype,implementation,median_ms")

    # resumed with a budget too small for any fresh round: the stored evaluations are replayed, none re-run
    clock2, calls2 = _Clock(), []
    _fakes(monkeypatch, clock2, calls2)
    again = optimize("rmsnorm", budget=10, out=out, minutes=0.25)
    assert calls2 == [] and again.evaluations == {"run": 0, "reused": 3 + 4 + 2}
    assert again.tuning["rounds_run"] == 4 and again.tuning["stopped"] == STOP_TIME
    assert (out / "best.py").read_text() == best and again.accepted and again.resumed
    with sqlite3.connect(out / "run.sqlite") as con:
        assert con.execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "finished")


@pytest.mark.parametrize("cost_s, ends_s, shortened", [(60.0, 146.0, False), (150.0, 194.0, True)])
def test_a_big_task_ends_with_the_verified_prior_within_its_budget(tmp_path, monkeypatch, cost_s, ends_s, shortened):
    """36_RMSNorm_ on an H200: small-shape probes 14 s and 12 s, every benchmark-shape evaluation a minute
    (or 2.5). The prior is verified right after the first probe and written; no pair of rounds fits."""
    from kernelwright.run import optimize
    from kernelwright.run.offline import MARGIN, SHORT_BENCH

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, probe_s=(14.0, 12.0), verify_s=cost_s, round_s=cost_s, final_s=cost_s)
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=10, out=out, minutes=3)
    assert result.accepted, result.message
    best = (out / "best.py").read_text()
    assert best == calls[1][2] == _prior_source(result) and calls[1][3]["benchmark_shape"]
    assert not any(kind == "bench" and name.startswith("round") for kind, name, _, _ in calls)
    assert ("bench", "best") == _steps(calls)[-1] and calls[-1][2] == best  # the final bench always runs
    assert result.seconds == pytest.approx(ends_s) and result.seconds <= 180 * (1 + MARGIN)
    _within_budget(calls, 180)
    cuts = result.verdict["budget_cuts"]
    assert "tuning (no round fitted)" in cuts and result.verdict["status"] == "faster"
    if shortened:  # 150 s: probe-looped skipped, the final bench at short repetitions on the shapes that fit
        assert calls[-1][3]["rep_ms"] == SHORT_BENCH["rep_ms"] and calls[-1][3]["shapes"] == 1
        assert any("probe-looped not verified" in c for c in cuts) and any("repetitions" in c for c in cuts)
    else:  # 60 s: the second probe fits (74 + 14 + 60 = 148 s), the full final bench too (86-146 s)
        assert ("verify", "probe-looped") in _steps(calls) and calls[-1][3]["rep_ms"] == 100.0


def test_a_small_task_tunes_after_a_cold_first_probe(tmp_path, monkeypatch):
    """40_LayerNorm on an H200: the first probe 24 s (cold compile), the next 8 s, a benchmark-shape
    verification 16 s, rounds 10 s, the final bench 15 s: the measured projection leaves room for rounds."""
    from kernelwright.run import optimize
    from kernelwright.run.offline import STOP_EXHAUSTED, STOP_TIME

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, probe_s=(24.0, 8.0), verify_s=16.0, round_s=10.0, final_s=15.0)
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=10, out=out, minutes=3)
    steps = _steps(calls)
    assert steps[:3] == [("verify", "probe-one-pass"), ("verify", "best"), ("verify", "probe-looped")]
    rounds = [s for s in steps if s[1].startswith("round")]
    # round k starts at 48 + 10 k s and needs 10 + 16 + 1.5 × 16 = 50 s more: rounds 0-8 fit
    assert len(rounds) == result.tuning["rounds_run"] and result.tuning["rounds_run"] >= 3
    assert result.tuning["stopped"] in (STOP_TIME, STOP_EXHAUSTED)
    assert steps[-2:] == [("verify", "best-tuned"), ("bench", "best-tuned")]
    best = (out / "best.py").read_text()
    assert result.accepted and best == calls[-2][2] == calls[-1][2] != _prior_source(result)
    assert result.seconds <= 180 and result.verdict["budget_cuts"] == []
    _within_budget(calls, 180)


def test_a_tuned_table_that_fails_verification_leaves_the_prior(tmp_path, monkeypatch):
    from kernelwright.run import optimize

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, probe_s=(24.0, 8.0), verify_s=16.0, round_s=10.0, final_s=15.0,
           reject=("best-tuned",))
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=4, out=out, minutes=3)
    assert _steps(calls)[-2:] == [("verify", "best-tuned"), ("bench", "best")]
    prior = _prior_source(result)
    assert result.accepted and (out / "best.py").read_text() == prior == calls[-1][2]
    assert [b["round"] for b in result.buckets] == [0] * len(result.buckets)  # the prior's own timings, round 0
    assert "the tuned table failed verification (determinism: two runs differ" in result.verdict["sentence"]
    assert result.verdict["notes"] and result.verdict["budget_cuts"] == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] and "keeps the prior configuration" in summary["verdict"]["sentence"]


def test_a_later_probe_that_fails_keeps_the_verified_prior_and_tunes_nothing(tmp_path, monkeypatch):
    from kernelwright.run import optimize
    from kernelwright.run.offline import STOP_PROBE

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, reject=("probe-looped",))
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=10, out=out, minutes=3)
    assert _steps(calls) == [("verify", "probe-one-pass"), ("verify", "best"), ("verify", "probe-looped"),
                             ("bench", "best")]
    assert result.accepted and (out / "best.py").read_text() == _prior_source(result)
    assert result.tuning["stopped"] == STOP_PROBE and result.tuning["rounds_run"] == 0
    assert "probe-looped failed verification (determinism" in result.verdict["sentence"]


def test_a_tuned_table_cut_by_the_budget_leaves_the_prior_and_says_so(tmp_path, monkeypatch):
    """The tuned table's verification runs far past its projection: its worker is stopped at the budget,
    best.py stays the verified prior and the final bench still runs, shortened."""
    from kernelwright.run import optimize
    from kernelwright.run.offline import MARGIN

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, probe_s=(24.0, 8.0), verify_s={"*": 16.0, "best-tuned": 100.0}, round_s=10.0,
           final_s=15.0)
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=10, out=out, minutes=3)
    assert _steps(calls)[-2:] == [("verify", "best-tuned"), ("bench", "best")]
    assert result.accepted and (out / "best.py").read_text() == _prior_source(result)
    cuts = result.verdict["budget_cuts"]
    assert any(c.startswith("the verification of the tuned table (stopped at its timeout") for c in cuts)
    assert any("repetitions" in c for c in cuts) and result.verdict["status"] == "faster"
    assert result.seconds <= 180 * (1 + MARGIN)
    _within_budget(calls, 180)


def test_a_short_budget_skips_probes_and_tuning_and_shortens_the_final_bench(tmp_path, monkeypatch):
    from kernelwright.run import optimize
    from kernelwright.run.offline import SHORT_BENCH

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, probe_s=(12.0, 12.0), final_s=10.0)
    result = optimize("rmsnorm", budget=10, out=tmp_path / "run", minutes=0.5)
    # 30 s: the probe 0-12 s, the prior 12-22 s; the second probe would end the run at 22 + 12 + 10 = 44 s:
    # skipped; no round fits; the full final bench (projected 10 s) does not fit in 8 s: shortened
    assert _steps(calls) == [("verify", "probe-one-pass"), ("verify", "best"), ("bench", "best")]
    assert calls[-1][3]["rep_ms"] == SHORT_BENCH["rep_ms"] and calls[-1][3]["shapes"] == len(result.buckets)
    assert result.accepted and result.tuning["rounds_run"] == 0
    assert result.seconds == pytest.approx(24.0)
    _within_budget(calls, 30)
    cuts = result.verdict["budget_cuts"]
    assert any("probe" in c for c in cuts) and any("tuning" in c for c in cuts)
    assert any("repetitions" in c for c in cuts) and "the time budget cut" in result.verdict["sentence"]


def test_a_verified_kernel_slower_than_compile_is_reported_not_a_win(tmp_path, monkeypatch):
    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, compile_ms=0.15)
    out = tmp_path / "run"
    result = runner.invoke(app, ["optimize", "rmsnorm", "--budget", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output  # verified: slower is reported, not an error
    data = json.loads(result.stdout)
    assert data["schema"] == "kernelwright.optimize/1" and data["accepted"]
    verdict = data["verdict"]
    assert verdict["status"] == "slower" and verdict["fastest_baseline"] == "compile"
    assert verdict["ratio_geomean"] == pytest.approx(0.3)
    assert verdict["sentence"] == ("verified but 3.33x slower than torch.compile (geomean over 5 shape(s)): "
                                   "not worth using")
    assert json.loads((out / "summary.json").read_text())["verdict"] == verdict

    table = runner.invoke(app, ["optimize", "rmsnorm", "--budget", "1", "--out", str(out)])
    text = " ".join(table.output.split())
    assert table.exit_code == 0 and "SLOWER THAN ITS BASELINE" in text and "not worth using" in text
    assert "BEST KERNEL VERIFIED" not in text

    refused = runner.invoke(app, ["package", str(out), "--name", "rmsnorm-slow", "--out", str(tmp_path / "pkg")])
    assert refused.exit_code == 1
    said = " ".join(refused.output.split())
    assert "3.33x slower than torch.compile" in said and "--allow-slower" in said
    assert not (tmp_path / "pkg").exists()
    by_file = runner.invoke(app, ["package", str(out / "best.py"), "--name", "rmsnorm-slow", "--out", str(tmp_path / "pkg")])
    assert by_file.exit_code == 1 and "--allow-slower" in " ".join(by_file.output.split())  # the run's best.py: same verdict


HOST_OOM = {"check": "out_of_memory", "message": "the candidate process used 32771 MB of host memory (limit "
            "32768 MB) and was killed."}


def test_a_bench_killed_for_host_memory_leaves_the_verified_kernel_untimed(tmp_path, monkeypatch):
    """36_RMSNorm_ on an H200: the final bench's worker hit the host memory limit. That says nothing about
    the kernel's correctness: best.py stays verified (exit 0) and the verdict claims no speed."""
    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, final_failure=HOST_OOM)
    out = tmp_path / "run"
    result = runner.invoke(app, ["optimize", "rmsnorm", "--budget", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["accepted"] and data["best_path"] == str(out / "best.py")
    assert (out / "best.py").read_text() == calls[-1][2] and calls[-1][0] == "bench"
    verdict = data["verdict"]
    assert verdict["status"] == "untimed" and verdict["ratio_geomean"] is None and verdict["shapes"] == []
    assert verdict["sentence"].startswith("verified; not benchmarked: its worker was killed at the host memory "
                                          "limit, a limit of this machine, not of the kernel (the candidate "
                                          "process used 32771 MB of host memory")
    assert "faster" not in verdict["sentence"] and "slower" not in verdict["sentence"]
    assert data["final_rows"] == []
    assert json.loads((out / "summary.json").read_text())["verdict"] == verdict


def test_a_failed_recheck_in_the_final_bench_still_rejects(tmp_path, monkeypatch):
    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls,
           final_failure={"check": "recheck_mismatch", "message": "max relative error 0.5 above 1e-05"})
    out = tmp_path / "run"
    result = runner.invoke(app, ["optimize", "rmsnorm", "--budget", "1", "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert not data["accepted"] and data["verdict"]["status"] == "none"
    assert data["message"] == "best.py failed its benchmark re-check: max relative error 0.5 above 1e-05"


@pytest.mark.parametrize("task, ends_s, benched", [(str(FIXTURES / "kernelbench_softmax_huge.py"), 147.0, False),
                                                   ("rmsnorm", 198.0, True)])
def test_a_huge_task_ends_within_its_margin_verified_and_untimed(tmp_path, monkeypatch, task, ends_s, benched):
    """A 7.5-GB task on an H200: the prior's benchmark-shape verification costs 137 s, the final bench
    60 s at any repetition. With one benchmark shape even the shortest bench cannot fit in the 33 s
    left (+ 18 s margin): it is skipped. With five, one shape is projected to fit (137 / 5 s), runs, and
    is stopped at its timeout, the budget plus its margin. Either way: verified, untimed, within 198 s."""
    from kernelwright.run import optimize
    from kernelwright.run.offline import MARGIN

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, verify_s=137.0, final_s=60.0, final_fixed=True)
    out = tmp_path / "run"
    result = optimize(task, budget=10, out=out, minutes=3)
    assert result.accepted, result.message
    assert result.seconds == pytest.approx(ends_s) and result.seconds <= 180 * (1 + MARGIN)
    _within_budget(calls, 180)
    assert (out / "best.py").read_text() == calls[1][2] and calls[1][3]["benchmark_shape"]
    assert [kind for kind, *_ in calls] == ["verify", "verify"] + (["bench"] if benched else [])
    verdict = result.verdict
    assert verdict["status"] == "untimed" and verdict["ratio_geomean"] is None
    assert verdict["sentence"].startswith("verified; not benchmarked: the time budget ran out; run `kernelwright "
                                          f"bench {_task_path(task)} {out / 'best.py'}`")
    cut = "the final benchmark (stopped at its timeout)" if benched else "the final benchmark (no time left)"
    assert cut in verdict["budget_cuts"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] and summary["verdict"] == verdict


@pytest.mark.parametrize("judge_s, benched", [(0.0, True), (12.0, False)])
def test_the_final_bench_is_tried_when_half_its_projection_fits(tmp_path, monkeypatch, judge_s, benched):
    """The 120-s verification of best.py projects the final bench at 120 s; 50 s are left (+ 18 s margin).
    A bench costs about half a verification at these sizes (FINAL_TRY_FRACTION), so it is tried, and its
    40 s fit: timed. When the verification's judging took 12 s, that is held back for the bench's own
    re-check: 56 s are then too few for even half the projection, and best.py stays untimed."""
    from kernelwright.run import optimize
    from kernelwright.run.offline import MARGIN

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, verify_s=120.0, final_s=40.0, final_fixed=True, judge_s=judge_s)
    result = optimize(str(FIXTURES / "kernelbench_softmax_huge.py"), budget=10, out=tmp_path / "run", minutes=3)
    assert result.accepted, result.message
    assert result.seconds <= 180 * (1 + MARGIN)
    assert [kind for kind, *_ in calls][-1] == ("bench" if benched else "verify")
    assert (result.verdict["status"] == "untimed") is not benched
    if benched:
        assert calls[-1][3]["timeout_s"] == pytest.approx(50 + MARGIN * 180)  # 10-s probe + 120-s verify: 50 s left


def _task_path(task: str) -> Path:
    from kernelwright.tasks.task import load_task

    return load_task(task).path


def test_on_the_cpu_the_budget_covers_verification_with_fewer_shapes(tmp_path, monkeypatch):
    from kernelwright.run import optimize

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls, device="cpu", verify_s_per_shape=5.0)
    result = optimize("rmsnorm", out=tmp_path / "run", minutes=1)
    # the probe: 8 shapes in 40 s; 20 s left buy best.py 4 shapes at 5 s each: the run ends at 60 s
    assert [(c[1].split("-")[0], c[3]["shapes"]) for c in calls] == [("probe", 8), ("best", 4)]
    assert result.accepted and result.seconds == pytest.approx(60.0)
    _within_budget(calls, 60)
    assert result.verdict["status"] == "untimed"
    assert "best.py verified on 4 of 8 drawn shapes" in result.verdict["budget_cuts"]


def test_round_budget_and_no_time_limit(tmp_path, monkeypatch):
    from kernelwright.run import optimize
    from kernelwright.run.offline import STOP_ROUNDS

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls)
    result = optimize("rmsnorm", budget=2, out=tmp_path / "run", minutes=0)
    assert {k: result.tuning[k] for k in ("rounds_budget", "rounds_run", "time_budget_s", "stopped")} == \
        {"rounds_budget": 2, "rounds_run": 2, "time_budget_s": None, "stopped": STOP_ROUNDS}
    assert all(c[3]["timeout_s"] == 600 for c in calls)  # no budget: the workers keep their own limit
    clock.now, calls[:] = 1000.0, []
    slow = optimize("rmsnorm", budget=4, out=tmp_path / "slow", minutes=0)
    assert slow.tuning["rounds_run"] == 4


def test_cli_passes_the_options_to_the_one_entry_point(tmp_path, monkeypatch):
    import kernelwright.run as run
    from kernelwright.run.result import OptimizeResult

    seen = {}

    def fake_optimize(task, **kwargs):
        seen.update(kwargs, task=task)
        return OptimizeResult(task=task, agent=kwargs["agent"], out=tmp_path, device="cuda:0",
                              best_path=tmp_path / "best.py", accepted=True, message="best.py verified", seconds=171.0,
                              tuning={"rounds_budget": 4, "rounds_run": 3, "time_budget_s": 150.0,
                                      "stopped": "time budget"})

    monkeypatch.setattr(run, "optimize", fake_optimize)
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
    from kernelwright.run.offline import _layout
    from kernelwright.search.capture import capture
    from kernelwright.tasks.task import load_task

    task = load_task(Path(__file__).parents[1] / "search" / "tasks" / "layernorm_3d.py")
    program = capture(task)
    assert _layout(task, program, {"batch": 9, "channels": 11, "height": 13, "width": 10})[:2] == (9, 11 * 13 * 10)


def test_tuning_plan_shows_a_one_pass_row_kernel_block_as_the_whole_row():
    from kernelwright.run.offline import _plan_config
    from kernelwright.search.variants import config

    one_pass, looped = config(one_pass=True, rows=4), config(one_pass=False, block=8192)
    assert _plan_config("rows", one_pass)["block"] == "whole row (up to 32768 elements; 4096-wide chunks past that)"
    assert _plan_config("rows", looped)["block"] == 8192           # a looped kernel's chunk is its real block
    assert _plan_config("pointwise", one_pass)["block"] == 4096     # a flat kernel's BLOCK is real too


def test_a_reduced_middle_dim_leads_with_the_column_schedule_and_probes_it():
    from kernelwright.run.offline import prepare
    from kernelwright.tasks.task import load_task

    prep = prepare(load_task(FIXTURES / "kernelbench_sum_dim1.py"), "cpu")
    assert "probe-column" in [label for label, _, _ in prep.probes]
    assert all(b["ranked"][0].column for b in prep.buckets)


def test_a_call_past_its_own_deadline_is_a_verdict_not_a_budget_cut():
    from kernelwright.run.offline import cut_by_budget
    from kernelwright.sandbox.runner import Limits

    base, shortened = Limits(timeout_s=600), Limits(timeout_s=100)
    hang = {"failures": [{"check": "timeout", "limit": "call"}]}
    stopped = {"failures": [{"check": "timeout", "limit": "process"}]}
    assert not cut_by_budget(hang, shortened, base)  # a hanging candidate is rejected, not retried on resume
    assert cut_by_budget(stopped, shortened, base) and not cut_by_budget(stopped, base, base)


def test_every_config_the_run_stores_reads_back_as_it_was_written(tmp_path, monkeypatch):
    """The run store's meta, summary.json's buckets and best.py's CONFIGS hold plain dicts (the form earlier
    runs stored, so their directories resume), each of which loads as the LaunchConfig it came from."""
    from kernelwright.run import optimize
    from kernelwright.search.config import LaunchConfig

    clock, calls = _Clock(), []
    _fakes(monkeypatch, clock, calls)
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=3, out=out, minutes=10)
    assert result.accepted and result.tuning["rounds_run"] == 3
    with sqlite3.connect(out / "run.sqlite") as con:
        metas = [json.loads(m) for (m,) in con.execute("SELECT meta FROM candidates ORDER BY id")]
    stored = [m["config"] for m in metas if "config" in m]
    stored += [cfg for m in metas for _, cfg in m.get("table", [])]
    stored += [b["config"] for b in json.loads((out / "summary.json").read_text())["buckets"]]
    namespace: dict = {}
    exec("CONFIGS = " + (out / "best.py").read_text().split("CONFIGS = ", 1)[1].split("\nMAX_TILE", 1)[0], namespace)
    stored += [cfg for _, cfg in namespace["CONFIGS"]]
    assert len(stored) >= 2 + 3 * len(result.buckets)  # probes, and each round's table
    for cfg in stored:
        assert isinstance(cfg, dict) and LaunchConfig.from_dict(cfg).as_dict() == cfg


FIXED_WIDTH_TASK = """import torch
tokens = 50
hidden = 64
class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(64))
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight
def get_inputs():
    return [torch.rand(tokens, hidden)]
def get_init_inputs():
    return []
"""


def test_the_run_says_which_shape_relation_it_inferred(tmp_path):
    from kernelwright.run import optimize

    task = tmp_path / "fixed_width_norm.py"
    task.write_text(FIXED_WIDTH_TASK)  # the weight's 64 is no knob: hidden must stay 64
    heard = []
    result = optimize(str(task), out=tmp_path / "run", device="cpu", minutes=2, report=heard.append)
    relation = result.verdict["shape_relations"]
    assert "`hidden` at 64" in relation and relation in heard
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["verdict"]["shape_relations"] == relation


def test_the_budget_gives_each_evaluation_a_deadline_for_its_gpu_waits_too():
    from kernelwright.run.offline import MARGIN, Clock
    from kernelwright.sandbox.runner import Limits

    base = Limits(timeout_s=600)
    clock = Clock(started=time.monotonic(), limit_s=100.0)
    limits = clock.limits(base, keep_s=30.0)
    allowed = 100.0 - 30.0 + MARGIN * 100.0
    assert limits.timeout_s == pytest.approx(allowed, abs=0.5)
    assert limits.deadline == pytest.approx(time.monotonic() + allowed, abs=0.5)
    assert Clock(started=time.monotonic(), limit_s=None).limits(base) is base  # no budget, no deadline


def test_a_broadcasting_rows_graph_is_bucketed_by_the_dim_its_kernel_groups_by(tmp_path):
    """BatchNorm in inference is a per-channel affine map of (N, C, H, W): its kernel groups by channel, so
    the bucket's columns are C and its inner dim H*W, which lets the column schedule read H*W runs (the
    last-dim bucket picked a [rows, C] tile of 16-byte runs 1 MiB apart: 0.35x torch.compile on an H200)."""
    from kernelwright.run.offline import _layout, prepare
    from kernelwright.tasks.task import load_task

    path = tmp_path / "batchnorm.py"
    path.write_text("import torch\nimport torch.nn as nn\n\nbatch_size = 16\nfeatures = 64\ndim1 = 256\ndim2 = 256\n\n\n"
                    "class Model(nn.Module):\n    def __init__(self, num_features):\n        super().__init__()\n"
                    "        self.bn = nn.BatchNorm2d(num_features=num_features)\n\n    def forward(self, x):\n"
                    "        return self.bn(x)\n\n\ndef get_inputs():\n"
                    "    return [torch.randn(batch_size, features, dim1, dim2)]\n\n\n"
                    "def get_init_inputs():\n    return [features]\n")
    task = load_task(path)
    prep = prepare(task, "cuda")
    knobs = {"batch_size": 4, "features": 8, "dim1": 16, "dim2": 32}
    assert _layout(task, prep.program, knobs) == (4 * 16 * 32, 8, 16 * 32)
    assert all(b["ranked"][0].column for b in prep.buckets)
