import csv
import json
import shutil

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
