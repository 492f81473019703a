import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.errors import UsageError
from kernelwright.evals import SCHEMA, run_eval
from kernelwright.evals.suites import suite_tasks
from kernelwright.run import entry
from kernelwright.tasks.task import SUITE_DIR

TASKS = ("gelu", "relu_squared")  # the cheapest bundled tasks under the interpreter


def test_an_offline_eval_scores_correctness_only_on_cpu_and_a_rerun_runs_no_optimize(tmp_path, monkeypatch):
    # one test, not a shared fixture: under xdist a module fixture would run once per worker
    suite, out = tmp_path / "suite", tmp_path / "eval"
    suite.mkdir()
    for name in TASKS:
        shutil.copyfile(SUITE_DIR / f"{name}.py", suite / f"{name}.py")
    results = run_eval(str(suite), ["offline"], out=out, device="cpu", minutes=3.0)  # headroom on a loaded CI box
    assert results["schema"] == SCHEMA
    assert sorted(u["task"] for u in results["units"]) == sorted(TASKS)
    for u in results["units"]:
        assert u["correct"] is True, u["note"]
        assert u["speedup_eager"] is None and u["speedup_compile"] is None and not u["timings_meaningful"]
        assert u["tokens"] == 0 and u["dollars"] == 0.0 and u["wall_s"] > 0
        assert (out / "units").joinpath(next((out / "units").glob(f"*--{u['task']}--r1.json")).name).is_file()
    (group,) = results["aggregates"]
    assert (group["agent"], group["skill"], group["units"], group["correct_rate"]) == ("offline", "builtin", 2, 1.0)
    assert group["fast_p_eager"]["1.0"] is None  # no timings on a CPU: not scored
    assert json.loads((out / "results.json").read_text())["units"][0]["task"] in TASKS
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["correct"] for r in rows] == ["True", "True"] and rows[0]["speedup_eager"] == ""
    assert_rerun_is_stored(suite, out, monkeypatch)


def assert_rerun_is_stored(suite, out, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a stored unit was optimized again")

    monkeypatch.setattr(entry, "optimize", refuse)
    shown = CliRunner().invoke(app, ["eval", "--suite", str(suite), "--agent", "offline", "--out", str(out),
                                     "--device", "cpu", "--json"])
    assert shown.exit_code == 0, shown.output
    results = json.loads(shown.stdout[shown.stdout.index("{"):])
    assert all(u["resumed"] for u in results["units"]) and results["aggregates"][0]["correct"] == 2
    table = CliRunner().invoke(app, ["eval", "--suite", str(suite), "--agent", "offline", "--out", str(out),
                                     "--device", "cpu", "--wide"])
    assert table.exit_code == 0 and "offline" in table.output and "2/2" in table.output


def test_suites_filter_kernelbench_style_names_and_reject_bad_input(tmp_path):
    for name in ("1_Square_matmul.py", "19_ReLU.py", "_helper.py"):
        (tmp_path / name).write_text("")
    assert [p.stem for p in suite_tasks(str(tmp_path), ["19"])] == ["19_ReLU"]
    assert [p.stem for p in suite_tasks(str(tmp_path))] == ["1_Square_matmul", "19_ReLU"]
    assert "gelu" in [p.stem for p in suite_tasks("bundled")]
    with pytest.raises(UsageError):
        suite_tasks(str(tmp_path / "missing"))
    with pytest.raises(UsageError):
        run_eval("bundled", ["offline"], skills=["no-such-skill"], out=tmp_path / "o", device="cpu")


# a scripted cmd: agent that runs in milliseconds: it logs its workspace, saves its prompt, prints a cost and
# leaves no candidate (so nothing is verified); with a `block` file beside its log it hangs on task b
STUB = """import json, pathlib, sys, time
ws, log = pathlib.Path.cwd(), pathlib.Path(sys.argv[1])
with log.open("a") as f:
    f.write(ws.name + "\\n")
(ws / "prompt.txt").write_text(sys.argv[2])
if (log.parent / "block").exists() and "--b--" in ws.name:
    time.sleep(300)
print(json.dumps({"total_cost_usd": 0.5, "usage": {"input_tokens": 10, "output_tokens": 5}}))
"""


def scripted(tmp_path, names=("a", "b", "c")):
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in names:
        shutil.copyfile(SUITE_DIR / "gelu.py", suite / f"{name}.py")
    stub, log = tmp_path / "agent.py", tmp_path / "agent.log"
    stub.write_text(STUB)
    return suite, log, f"cmd:{sys.executable} {stub} {log} {{prompt}}"


def ran(log):
    return [line.split("--")[-2] for line in log.read_text().split()] if log.exists() else []


def test_max_dollars_stops_launching_units_and_a_rerun_with_more_budget_runs_only_the_rest(tmp_path):
    suite, log, agent = scripted(tmp_path)
    evals = {"evals": [{"id": n, "prompt": f"Make {n} fast.", "task": f"{n}.py"} for n in ("a", "b", "c")]}
    (suite / "evals.json").write_text(json.dumps(evals))
    out = tmp_path / "out"
    results = run_eval(str(suite / "evals.json"), [agent], out=out, device="cpu", max_dollars=0.9)
    assert ran(log) == ["a_a", "b_b"]  # $0.50 after a is under 0.9; $1.00 after b is not: c never starts
    statuses = {u["task"]: u["status"] for u in results["units"]}
    assert statuses == {"a_a": "done", "b_b": "done", "c_c": "skipped-for-budget"}
    (group,) = results["aggregates"]
    assert (group["units"], group["correct"], group["totals"]["dollars"]) == (2, 0, 1.0)  # skipped: not a failure
    assert [r["status"] for r in csv.DictReader((out / "results.csv").open())][-1] == "skipped-for-budget"
    page = (out / "report.html").read_text()
    assert 'id="skipped"' in page and 'id="cases"' in page and "Make c fast." in page
    prompt = (out / "runs" / next(p.name for p in (out / "runs").iterdir() if "--a_a--" in p.name) / "prompt.txt")
    assert prompt.read_text().startswith("Make a fast.") and "candidate.py" in prompt.read_text()
    again = run_eval(str(suite / "evals.json"), [agent], out=out, device="cpu", max_dollars=2.0)
    assert ran(log) == ["a_a", "b_b", "c_c"] and again["aggregates"][0]["units"] == 3


def test_an_eval_killed_mid_unit_resumes_and_redoes_only_the_missing_units(tmp_path):
    suite, log, agent = scripted(tmp_path)
    (tmp_path / "block").write_text("")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "kernelwright", "eval", "--suite", str(suite), "--agent", agent, "--out",
               str(out), "--device", "cpu"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while ran(log) != ["a", "b"]:
            assert proc.poll() is None and time.monotonic() < deadline, "the eval never reached unit b"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the eval and the agent it is waiting on, mid-unit
        proc.wait()
    assert [p.name.split("--")[-2] for p in (out / "units").glob("*.json")] == ["a"]
    assert not (out / "results.json").exists()
    (tmp_path / "block").unlink()
    results = run_eval(str(suite), [agent], out=out, device="cpu")
    assert ran(log) == ["a", "b", "b", "c"]  # a was not run again; b, killed half-way, was
    assert {u["task"]: u["resumed"] for u in results["units"]} == {"a": True, "b": False, "c": False}


MATMUL_TASK = '''import torch
import torch.nn as nn

M = 64
K = 32
N = 48


class Model(nn.Module):
    def forward(self, a, b):
        return torch.matmul(a, b)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
'''


def test_a_task_the_offline_agent_does_not_cover_is_a_failed_unit_not_a_failed_eval(tmp_path):
    from kernelwright.evals import run_eval

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "matmul.py").write_text(MATMUL_TASK)
    results = run_eval(str(suite), ["offline"], out=tmp_path / "out", device="cpu", minutes=1)
    (unit,) = results["units"]
    assert unit["correct"] is False and unit["note"]  # the agent's one-sentence refusal, kept as the unit's note
    assert list((tmp_path / "out" / "units").glob("*.json"))  # stored: a rerun does not try it again
