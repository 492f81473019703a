"""The conductor's search with a scripted provider and a deterministic evaluator (fast).

"Faster" is decided by ``fakes.fake_bench``, which reads a ``# cost_ms`` marker the script puts in each
kernel: CPU timings under the Triton interpreter mean nothing, so the test controls the number.
"""

import json
import sqlite3

import pytest

from fakes import EXAMPLE, Counter, fake_bench, fake_verify, kernel, scripted_answer

from kernelwright.agents import Budget, ScriptedProvider, Strategy, run_session
from kernelwright.agents.evaluate import Evaluator
from kernelwright.agents.llm import AgentSpec, make_provider

SEEDS = [("examples/relu_squared.py", kernel(EXAMPLE, 0.9))]


def session(out, provider=None, verify=None, bench=None, **kw):
    ev = Evaluator("relu_squared", "cpu", verify_fn=verify or fake_verify(), bench_fn=bench or fake_bench())
    options = dict(budget=Budget(candidates=20), strategy=Strategy(samples=2, rounds=3, variants=1))
    options.update(kw)
    return run_session("relu_squared", provider=provider or ScriptedProvider(scripted_answer), out=out,
                       evaluator=ev, seeds=SEEDS, **options)


def test_full_session_finds_the_faster_kernel_with_every_artifact(tmp_path):
    provider = ScriptedProvider(scripted_answer)
    result = session(tmp_path, provider)
    assert result.best == "r02-s00" and abs(result.best_score - 1 / 0.3) < 1e-9
    assert "# cost_ms: 0.3" in (tmp_path / "best.py").read_text()
    for name in ("tuning_plan.json", "candidate_variants.json", "profile_report.json", "bench_results.csv",
                 "summary.json", "agent.log", "run.sqlite", "candidates/r01-s00/kernel.py",
                 "candidates/r01-s00/kernel_fixed.py", "rounds/r01/tuning_plan.json"):
        assert (tmp_path / name).is_file(), name
    plan = json.loads((tmp_path / "rounds/r01/tuning_plan.json").read_text())
    assert plan["ideas"][0]["title"] == "vectorise loads"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["lineage"] == ["seed-0", "r01-s00", "r01-s00-fix1", "r02-s00"]
    # the seed was refined (beam), the cheat's rejection reached the next round's writers
    writes = [m[-1]["content"] for s, m in provider.requests if s.startswith("You are the kernelwright writer")]
    assert all("Kernel to improve: `seed-0`" in w for w in writes[:2])
    assert "mutated_input" in writes[2] and "ModelNew wrote to input(s)" in writes[2]
    # tokens and lineage of every call are in the store
    con = sqlite3.connect(tmp_path / "run.sqlite")
    calls = con.execute("SELECT call_key, role, input_tokens, candidate_id FROM llm_calls ORDER BY id").fetchall()
    assert [c[0] for c in calls[:3]] == ["r01/plan", "r01/s00/write", "r01/s01/write"] or \
        {c[0] for c in calls[:3]} == {"r01/plan", "r01/s00/write", "r01/s01/write"}
    assert all(c[2] > 0 for c in calls)
    fix = dict((c[0], c[3]) for c in calls)["r01/s00/fix1"]
    assert con.execute("SELECT role, source_path FROM candidates WHERE id = ?", (fix,)).fetchone() == \
        ("debugger", "candidates/r01-s00/kernel_fixed.py")


def test_debugger_attempts_are_bounded(tmp_path):
    def never_fixed(role, system, messages):
        if role == "writer" or role == "debugger":
            return "```python\n" + kernel(EXAMPLE, 0.5, broken=True) + "```"
        return scripted_answer(role, system, messages)

    result = session(tmp_path, ScriptedProvider(never_fixed), strategy=Strategy(samples=1, rounds=1, repairs=2,
                                                                                  variants=0))
    names = json.loads((tmp_path / "summary.json").read_text())
    con = sqlite3.connect(tmp_path / "run.sqlite")
    keys = [k for (k,) in con.execute("SELECT call_key FROM llm_calls")]
    assert sorted(keys) == ["r01/plan", "r01/s00/fix1", "r01/s00/fix2", "r01/s00/write"]
    assert result.best == "seed-0" and names["best"] == "seed-0"
    assert (result.candidates, result.accepted) == (3, 0)  # a write and two repairs, all rejected; the seed in neither


def test_budget_stops_the_session(tmp_path):
    result = session(tmp_path / "c", budget=Budget(candidates=3))
    assert result.stop_reason == "candidates" and result.candidates == 3
    result = session(tmp_path / "t", budget=Budget(tokens=1500))
    assert result.stop_reason == "tokens"
    con = sqlite3.connect(tmp_path / "t" / "run.sqlite")
    assert con.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] < 4  # stopped after the first batch or two


def test_replay_gives_the_same_session_without_calling_a_model(tmp_path):
    first = session(tmp_path / "rec")
    verify, bench = Counter(), Counter()
    replay = make_provider(AgentSpec.parse(f"replay:{tmp_path / 'rec'}"))
    again = session(tmp_path / "rep", replay, verify=fake_verify(verify), bench=fake_bench(bench),
                    budget=Budget(candidates=1), strategy=Strategy(samples=1))  # overridden by the recording
    assert (again.best, again.best_score, again.stop_reason, again.candidates) == \
        (first.best, first.best_score, first.stop_reason, first.candidates)
    assert (tmp_path / "rep/best.py").read_text() == (tmp_path / "rec/best.py").read_text()
    rec = sqlite3.connect(tmp_path / "rec/run.sqlite").execute(
        "SELECT call_key, reply FROM llm_calls ORDER BY call_key").fetchall()
    rep = sqlite3.connect(tmp_path / "rep/run.sqlite").execute(
        "SELECT call_key, reply FROM llm_calls ORDER BY call_key").fetchall()
    assert rec == rep  # every reply came from the recording
    assert verify.calls and not bench.calls  # verified afresh, ranked by the recorded timings


def test_the_verdict_compares_the_best_with_the_fastest_baseline(tmp_path, monkeypatch):
    """Fake GPU timings: the best kernel (0.3 ms) against eager at 1.0 ms, then against eager at 0.1 ms."""
    import kernelwright.hardware as hardware

    monkeypatch.setattr(hardware, "resolve_device", lambda device: "cuda:0")
    monkeypatch.setattr(hardware, "describe", lambda device: {"device_name": "fake GPU"})

    def timed(eager_ms):
        inner = fake_bench()

        def bench(path):
            data = inner(path)
            row = data["rows"][0]
            row["timings"]["eager"]["median_ms"] = eager_ms
            return {**data, "timings_meaningful": True}
        return bench

    fast = session(tmp_path / "fast", bench=timed(1.0), device="cuda")
    assert fast.verdict["status"] == "faster" and fast.verdict["ratio_geomean"] == pytest.approx(1 / 0.3)
    assert fast.verdict["sentence"] == "faster than eager PyTorch by 3.33x (at its one shape)"
    slow = session(tmp_path / "slow", bench=timed(0.1), device="cuda")
    assert slow.verdict["status"] == "slower"
    summary = json.loads((tmp_path / "slow" / "summary.json").read_text())
    assert summary["verdict"]["sentence"] == "verified but 3.00x slower than eager PyTorch (at its one shape): not worth using"
    rows = (tmp_path / "slow" / "bench_results.csv").read_text().splitlines()
    assert rows[0].startswith("candidate,candidate_id,role,parent,round,knobs,dtype,implementation")  # one layout
    with sqlite3.connect(tmp_path / "slow" / "run.sqlite") as con:
        assert con.execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "finished")
