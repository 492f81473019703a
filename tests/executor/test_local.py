import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.errors import UsageError
from kernelwright.evals import run_eval
from kernelwright.executor import INFRASTRUCTURE, ERROR, UnitStore, Work, execute, make_executor
from kernelwright.executor import local
from kernelwright.executor.local import LocalExecutor, Slot, parse_gpus, plan_slots
from kernelwright.tasks.task import SUITE_DIR

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GOOD = ROOT / "examples" / "gelu.py"
# Leaves the given kernel in its first run (later runs leave nothing: one verification per eval keeps the test
# fast) and logs when it ran, so a test can see overlap and count runs.
AGENT = """import pathlib, shutil, sys, time
ws, log = pathlib.Path(sys.argv[1]), sys.argv[2]
start = time.time()
time.sleep(1.0)
if len(sys.argv) > 3 and ws.name.endswith("--r1"):
    shutil.copyfile(sys.argv[3], ws / "candidate.py")
with open(log, "a") as f:
    f.write(f"{ws.name} {start} {time.time()}\\n")
"""
COMPARED = ("agent", "skill", "task", "run", "status", "correct", "timings_meaningful", "note")


def suite_and_agents(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copyfile(SUITE_DIR / "gelu.py", suite / "gelu.py")
    stub, log = tmp_path / "agent.py", tmp_path / "runs.log"
    stub.write_text(AGENT)
    good = f"cmd:{sys.executable} {stub} {{workspace}} {log} {GOOD}"
    empty = f"cmd:{sys.executable} {stub} {{workspace}} {log}"
    return suite, [good, empty], log


def intervals(log: Path) -> list[tuple[str, float, float]]:
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(name, float(a), float(b)) for name, a, b in rows]


def overlapping(spans) -> bool:
    spans = sorted(spans, key=lambda s: s[1])
    return any(later[1] < earlier[2] for earlier, later in zip(spans, spans[1:]))


def test_two_slots_score_a_suite_as_one_slot_does_concurrently_and_a_rerun_redoes_only_the_missing_unit(tmp_path):
    suite, agents, log = suite_and_agents(tmp_path)
    one = run_eval(str(suite), agents, runs=2, out=tmp_path / "one", device="cpu", minutes=2)
    one_log = intervals(log)
    log.unlink()
    two = run_eval(str(suite), agents, runs=2, out=tmp_path / "two", device="cpu", minutes=2, workers=2)
    assert [{k: u[k] for k in COMPARED} for u in two["units"]] == [{k: u[k] for k in COMPARED} for u in one["units"]]
    assert [u["correct"] for u in two["units"]] == [True, False, False, False]
    assert not overlapping(one_log) and overlapping(intervals(log))  # two slots really ran side by side
    assert len(intervals(log)) == 4 and all(not u["resumed"] for u in two["units"])

    # a lost result (a unit killed before it was stored) is the only one a rerun redoes
    lost = next((tmp_path / "two" / "units").glob("cmd-*--none--gelu--r2.json"))
    lost.unlink()
    log.unlink()
    again = run_eval(str(suite), agents, runs=2, out=tmp_path / "two", device="cpu", minutes=2, workers=2)
    assert sorted(u["resumed"] for u in again["units"]) == [False, True, True, True]
    assert len(intervals(log)) == 1 and lost.is_file()


def test_a_dead_worker_is_an_infrastructure_failure_not_stored_while_the_other_units_are(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{HERE}:{ROOT / 'src'}")
    store = UnitStore(tmp_path / "units")
    works = [Work("dies", "executor_helpers:die", {}, tmp_path / "runs" / "dies"),
             Work("raises", "executor_helpers:broken", {}, tmp_path / "runs" / "raises"),
             Work("fine", "executor_helpers:echo", {"value": 7}, tmp_path / "runs" / "fine")]
    executor = LocalExecutor([Slot("gpu3", "3"), Slot("gpu5", "5")])  # pins work without a GPU: nothing uses CUDA
    lines = []
    try:
        finished = execute(executor, works, store, report=lines.append, live=False)
    finally:
        executor.close()
    assert finished["dies"].failure == INFRASTRUCTURE and "signal 9" in finished["dies"].message
    assert finished["raises"].failure == ERROR and "kernelwright bug" in finished["raises"].message
    assert finished["fine"].ok and store.load("fine")["value"] == 7
    assert store.load("fine")["pin"] in ("3", "5")  # the worker process saw only its slot's GPU
    assert store.load("fine")["ran_on"] == f"gpu{store.load('fine')['pin']}"  # and the result says which
    assert not store.has("dies") and not store.has("raises")  # a rerun redoes exactly these
    assert (tmp_path / "runs" / "fine" / "echo.txt").read_text() == "7"
    assert any("infrastructure failure" in line for line in lines) and lines[-1].startswith("[3/3]")


def test_an_eval_unit_whose_worker_dies_is_listed_as_an_infrastructure_failure_and_redone_by_a_rerun(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copyfile(SUITE_DIR / "gelu.py", suite / "gelu.py")
    agents = ["cmd:kill -9 $PPID", "cmd:true"]  # the first kills the unit's worker process (its shell's parent)
    first = run_eval(str(suite), agents, out=tmp_path / "out", device="cpu", workers=2)
    dead, fine = first["units"]
    assert dead["status"] == "infrastructure-failure" and dead["correct"] is None and "signal 9" in dead["note"]
    assert fine["status"] == "done" and fine["correct"] is False
    assert [g["agent"] for g in first["aggregates"]] == ["cmd:true"]  # no verdict on the dead unit's agent
    assert len(list((tmp_path / "out" / "units").glob("*.json"))) == 1
    shown = CliRunner().invoke(app, ["eval", "--suite", str(suite), "--agent", agents[0], "--agent", agents[1],
                                     "--out", str(tmp_path / "out"), "--device", "cpu", "--workers", "2"])
    assert shown.exit_code == 0 and "1 unit(s) not finished" in shown.output, shown.output
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(u["status"], u["resumed"]) for u in again["units"]] == [("infrastructure-failure", False), ("done", True)]


def alive(pid: int) -> bool:
    """Running, not a zombie (a killed orphan stays one until init reaps it, and some containers' init never does)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_killed_eval_takes_its_units_agents_with_it_and_the_rerun_runs_every_unit_once(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copyfile(SUITE_DIR / "gelu.py", suite / "gelu.py")
    pids = tmp_path / "pids"
    pids.mkdir()
    # the first eval's agents hang (and say who they are); the rerun's agents finish at once
    script = tmp_path / "agent.sh"
    script.write_text(f"echo $$ > {pids}/$$\nif [ ! -e {tmp_path}/fast ]; then sleep 60; fi\n")
    agent = f"cmd:sh {script}"
    command = [sys.executable, "-m", "kernelwright", "eval", "--suite", str(suite), "--agent", agent, "--runs", "2",
               "--out", str(tmp_path / "out"), "--device", "cpu", "--workers", "2", "--json"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    agents = [int(p.name) for p in pids.iterdir()]
    assert len(agents) == 2, "both slots should have started an agent"
    driver.kill()  # SIGKILL: no handler runs; the unit processes see their liveness pipe close
    driver.wait()
    deadline = time.monotonic() + 10
    while any(map(alive, agents)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, agents)), "an agent outlived its killed eval"
    assert not list((tmp_path / "out" / "units").glob("*.json"))
    (tmp_path / "fast").touch()
    again = run_eval(str(suite), [agent], runs=2, out=tmp_path / "out", device="cpu", workers=2)
    assert [(u["status"], u["resumed"]) for u in again["units"]] == [("done", False), ("done", False)]


def test_without_ray_installed_the_ray_executor_is_a_usage_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(UsageError, match=r"kernelwright\[ray\]"):
        make_executor("ray:10.0.0.1:6379", device="cpu")
    with pytest.raises(UsageError, match="--gpus"):
        make_executor("ray", device="cpu", gpus="0")


def test_slots_are_one_per_gpu_pinned_and_extra_workers_share_gpus(monkeypatch):
    monkeypatch.setattr(local, "visible_gpus", lambda: ["4", "6"])
    assert parse_gpus(None, "cuda:0") == ["4", "6"] and parse_gpus("1", "cuda:0") == ["6"]
    assert [(s.name, s.gpu) for s in plan_slots("cuda:0", ["4", "6"], None)] == [("gpu4", "4"), ("gpu6", "6")]
    assert [s.gpu for s in plan_slots("cuda:0", ["4", "6"], 4)] == ["4", "6", "4", "6"]
    assert [(s.name, s.gpu) for s in plan_slots("cpu", [], 3)] == [("cpu0", None), ("cpu1", None), ("cpu2", None)]
    assert LocalExecutor(plan_slots("cpu", [], None)).inline  # one CPU slot runs in this process, as before
    for bad in (lambda: parse_gpus("2", "cuda:0"), lambda: parse_gpus("a,b", "cuda:0"),
                lambda: parse_gpus("0", "cpu"), lambda: plan_slots("cpu", [], 0),
                lambda: make_executor("kubernetes", device="cpu")):
        with pytest.raises(UsageError):
            bad()
