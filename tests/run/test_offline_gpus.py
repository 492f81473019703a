"""``optimize --gpus 0,1``: the offline agent's later probes verify on the second GPU while its tuning rounds
benchmark on the first (issue 17). On the CPU, with a fake verifier and bench that record their GPU and
when they ran; the two meet through events, so a run that did them one after the other fails."""

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.errors import UsageError

WAIT_S = 5.0  # how long one side waits for the other before going on alone


def _name(path) -> str:
    return Path(path).parent.name.rsplit("-", 1)[0]


class _Outcome:
    def __init__(self, data: dict):
        self.data = data

    def as_json(self) -> dict:
        return self.data


class _Fakes:
    """verify and bench that record (kind, candidate, device, start, end). The later probes wait for a tuning
    round to start, and round 0 waits for a later probe to end: beside each other both go at once, one after
    the other each waits ``WAIT_S`` in vain. ``reject``: candidates the verifier rejects."""

    def __init__(self, reject: tuple = ()):
        self.calls: list[tuple[str, str, str, float, float]] = []
        self.reject = reject
        self.round_started = threading.Event()
        self.probes_done = threading.Event()
        self.lock = threading.Lock()

    def _record(self, kind: str, path, device: str, start: float) -> None:
        with self.lock:
            self.calls.append((kind, _name(path), device, start, time.monotonic()))

    def verify(self, task, path, *, device, limits, shapes, benchmark_shape, progress=None):
        start = time.monotonic()
        later_probe = not benchmark_shape and any(c[0] == "verify" for c in self.calls)
        if later_probe:
            self.round_started.wait(WAIT_S)
            time.sleep(0.05)
        self._record("verify", path, device, start)
        if later_probe:
            self.probes_done.set()
        if _name(path) in self.reject:
            return _Outcome({"accepted": False, "failures": [{"check": "determinism", "message": "two runs differ"}]})
        return _Outcome({"accepted": True, "failures": [], "phases": {"judge": 0.0}})

    def bench(self, task, path, *, device, shapes, dtype, limits, warmup_ms=25.0, rep_ms=100.0, baseline_kinds=None):
        start = time.monotonic()
        name = _name(path)
        if name == "round00":
            self.round_started.set()
            self.probes_done.wait(WAIT_S)
            time.sleep(0.2)  # the probe's thread records its verdict before the next round asks for it
        self._record("bench", path, device, start)
        k = int(name[len("round"):]) if name.startswith("round") else None
        rows = []
        for knobs in shapes:
            ms = 0.5 if k == 1 else 1.0  # round 1 is fastest at every shape: a tuned table differs from the prior
            timings = {"candidate": {"median_ms": ms, "iqr_ms": 0.01}, "eager": {"median_ms": 2.0}}
            if k is None:
                timings["compile"] = {"median_ms": 1.0}
            rows.append({"knobs": knobs, "dtype": dtype, "gbps": 1.0 / ms, "fraction_of_copy": 0.5 / ms,
                         "timings": timings, "speedup": {n: t["median_ms"] / ms for n, t in timings.items()},
                         "recheck": {"passed": True, "rel_err": 0.0}})
        return _Outcome({"rows": rows, "failures": [], "ok": True, "timings_meaningful": True,
                         "ceilings": {"copy_gbps": 4000.0}})

    def of(self, kind: str, prefix: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind and c[1].startswith(prefix)]


@pytest.fixture
def fakes(monkeypatch):
    import kernelwright.bench.bencher as bencher
    import kernelwright.executor.local as local
    import kernelwright.run.entry as entry
    import kernelwright.verify as verify_pkg

    def make(**kwargs) -> _Fakes:
        made = _Fakes(**kwargs)
        monkeypatch.setattr(entry, "resolve_device", lambda device: "cuda:0" if device == "auto" else device)
        monkeypatch.setattr(local, "visible_gpus", lambda: ["0", "1"])
        monkeypatch.setattr(verify_pkg, "verify", made.verify)
        monkeypatch.setattr(bencher, "bench", made.bench)
        return made

    return make


def _overlap(a: tuple, b: tuple) -> bool:
    return a[3] < b[4] and b[3] < a[4]


def _prior_source() -> str:
    from kernelwright.run.offline import prepare
    from kernelwright.search.codegen import generate
    from kernelwright.tasks.task import load_task

    prep = prepare(load_task("rmsnorm"), "cuda")
    table = [(tuple(b["key"]), b["ranked"][0]) for b in prep.buckets]
    return generate(prep.program, table, label="best configuration per shape bucket")


def test_later_probes_verify_on_the_second_gpu_while_the_first_tunes(tmp_path, fakes):
    from kernelwright.run import optimize

    fake = fakes()
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=3, out=out, minutes=0, gpus="0,1")
    assert result.accepted, result.message
    later = fake.of("verify", "probe-")[1:]
    rounds = fake.of("bench", "round")
    assert later and all(c[2] == "cuda:1" for c in later)
    assert rounds and all(c[2] == "cuda:0" for c in rounds)
    assert any(_overlap(p, r) for p in later for r in rounds)
    # timings and benchmark-shape verifications stay on the first GPU
    assert all(c[2] == "cuda:0" for c in fake.calls if c not in later)
    # the tuned table (round 1, fastest) verified on the first GPU and adopted, as with one GPU
    assert [c[1] for c in fake.calls[-2:]] == ["best-tuned", "best-tuned"]
    assert result.tuning["rounds_run"] == 3 and [b["round"] for b in result.buckets] == [1] * len(result.buckets)
    assert (out / "best.py").read_text() != _prior_source()
    # the plan shows each evaluation's GPU and times: a later probe on cuda:1 during a round on cuda:0
    plan = json.loads((out / "tuning_plan.json").read_text())
    assert plan["gpus"] == ["cuda:0", "cuda:1"]
    logged = plan["evaluations"]
    beside = [e for e in logged if e["gpu"] == "cuda:1"]
    assert {e["candidate"] for e in beside} == {c[1] for c in later}
    timed = [e for e in logged if e["kind"] == "bench"]
    assert any(p["start_s"] < r["end_s"] and r["start_s"] < p["end_s"] for p in beside for r in timed)


def test_a_probe_rejected_beside_the_rounds_keeps_the_prior_and_says_why(tmp_path, fakes):
    from kernelwright.run import optimize
    from kernelwright.run.offline import STOP_PROBE

    fake = fakes(reject=("probe-looped",))
    out = tmp_path / "run"
    result = optimize("rmsnorm", budget=3, out=out, minutes=0, gpus="0,1")
    assert fake.of("verify", "probe-looped")[0][2] == "cuda:1"
    # round 0 ended after the rejection: no round more, no tuned table verified, the prior benchmarked
    assert result.tuning["stopped"] == STOP_PROBE and result.tuning["rounds_run"] == 1
    assert not fake.of("verify", "best-tuned") and fake.calls[-1][:2] == ("bench", "best")
    assert result.accepted and (out / "best.py").read_text() == _prior_source()
    sentence = result.verdict["sentence"]
    assert "probe-looped failed verification (determinism: two runs differ" in sentence
    assert "the tuned table was not adopted and best.py keeps the prior configuration" in sentence
    assert result.verdict["budget_cuts"] == []


def test_one_gpu_verifies_every_probe_before_tuning(tmp_path, fakes, monkeypatch):
    from kernelwright.run import optimize

    monkeypatch.setattr(sys.modules[__name__], "WAIT_S", 0.2)  # here the waits are in vain: keep them short
    fake = fakes()
    result = optimize("rmsnorm", budget=2, out=tmp_path / "run", minutes=0)
    assert result.accepted, result.message
    assert {c[2] for c in fake.calls} == {"cuda:0"}
    last_probe, first_round = fake.of("verify", "probe-")[-1], fake.of("bench", "round")[0]
    assert last_probe[4] <= first_round[3]
    plan = json.loads((tmp_path / "run" / "tuning_plan.json").read_text())
    assert plan["gpus"] == ["cuda:0"] and {e["gpu"] for e in plan["evaluations"]} == {"cuda:0"}


def test_gpus_that_cannot_work_are_usage_errors(tmp_path, fakes):
    from kernelwright.run import optimize

    fakes()
    with pytest.raises(UsageError, match="LLM agents use one GPU"):
        optimize("rmsnorm", agent="replay:" + str(tmp_path), out=tmp_path / "llm", gpus="0,1")
    with pytest.raises(UsageError, match="disagree"):
        optimize("rmsnorm", device="cuda:1", out=tmp_path / "r", gpus="0,1")
    with pytest.raises(UsageError, match="indices 0 to 1"):
        optimize("rmsnorm", out=tmp_path / "r", gpus="0,2")
    with pytest.raises(UsageError, match="--gpus needs a GPU device"):
        optimize("rmsnorm", device="cpu", out=tmp_path / "r", gpus="0")
    assert not (tmp_path / "llm").exists() and not (tmp_path / "r").exists()


def test_cli_passes_gpus_to_the_entry_point(tmp_path, monkeypatch):
    import kernelwright.run as run
    from kernelwright.run.result import OptimizeResult

    seen = {}

    def fake_optimize(task, **kwargs):
        seen.update(kwargs)
        return OptimizeResult(task=task, agent="offline", out=tmp_path, device="cuda:0", best_path=tmp_path / "best.py",
                              accepted=True, message="best.py verified")

    monkeypatch.setattr(run, "optimize", fake_optimize)
    result = CliRunner().invoke(app, ["optimize", "rmsnorm", "--gpus", "0,1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["gpus"] == "0,1"


def test_a_companion_ledger_records_from_another_thread_into_the_same_run(tmp_path):
    from kernelwright.run.artifacts import RunDir
    from kernelwright.run.ledger import Ledger

    ledger = Ledger.open(RunDir(tmp_path), task="rmsnorm", agent="offline", device="cuda:0", config={})
    errors = []

    def beside():
        other = ledger.companion()  # the owner's connection would raise here: sqlite ties it to its thread
        try:
            cid, _ = other.candidate("probe", "SOURCE", role="search")
            other.evaluate("verify", cid, "SOURCE", {"shapes": 8}, lambda: {"accepted": True})
        except Exception as exc:  # noqa: BLE001 -- reported on the main thread
            errors.append(exc)
        finally:
            other.release()

    thread = threading.Thread(target=beside)
    thread.start()
    thread.join()
    assert errors == []
    assert ledger.lookup_quietly("SOURCE", "verify", {"shapes": 8}).result == {"accepted": True}
    assert ledger.counts == {"run": 1, "reused": 0}
    ledger.close("finished")
