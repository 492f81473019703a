import json
import subprocess
import sys

from typer.testing import CliRunner

from conftest import CORPUS, EXAMPLES, FIXTURES
from kernelwright.cli import app

runner = CliRunner()


def test_tasks_lists_every_bundled_task_with_shapes_and_dtypes():
    result = runner.invoke(app, ["tasks"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in ("rmsnorm", "cross_entropy", "rotary"):
        assert name in result.output
    assert "bfloat16" in result.output and "8192" in result.output


def test_verify_accepts_with_exit_0_and_json():
    result = runner.invoke(app, ["verify", "rmsnorm", str(EXAMPLES / "rmsnorm.py"), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accepted"] is True  # the heartbeat goes to stderr


def test_verify_rejects_with_exit_1_and_names_the_check():
    result = runner.invoke(app, ["verify", "rmsnorm", str(CORPUS / "bug_wrong_output_dtype.py"), "--device", "cpu"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "output_dtype" in result.output and "REJECTED" in result.output and "reproducer" in result.output


def test_verify_says_how_many_cases_fell_outside_the_task_domain():
    result = runner.invoke(app, ["verify", str(FIXTURES / "silu_two_rows_or_more.py"), str(EXAMPLES / "silu.py"),
                                 "--device", "cpu"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "skipped, outside the task's own domain" in result.output and "more than one row" in result.output


def test_usage_errors_exit_2_with_one_sentence():
    cases = [
        ["verify", "no_such_task", str(EXAMPLES / "rmsnorm.py"), "--device", "cpu"],
        ["verify", str(FIXTURES / "no_model_task.py"), str(EXAMPLES / "rmsnorm.py"), "--device", "cpu"],
        ["verify", "rmsnorm", "missing.py", "--device", "cpu"],
        ["verify", "rmsnorm", str(EXAMPLES / "rmsnorm.py"), "--device", "tpu"],
        ["bench", "rmsnorm", str(EXAMPLES / "rmsnorm.py"), "--device", "cpu", "--dtype", "float64"],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output and "Traceback" not in result.output


def test_python_dash_m_entry_point_works():
    out = subprocess.run([sys.executable, "-m", "kernelwright", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "verify" in out.stdout


def test_error_text_with_brackets_reaches_stderr_verbatim(monkeypatch):
    from kernelwright.errors import UsageError

    def missing_extra(*args, **kwargs):
        raise UsageError("the anthropic SDK is missing; install it with `pip install 'kernelwright[llm]'`.")

    monkeypatch.setattr("kernelwright.verify.verify", missing_extra)
    result = runner.invoke(app, ["verify", "rmsnorm", str(EXAMPLES / "rmsnorm.py"), "--device", "cpu"],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "pip install 'kernelwright[llm]'" in result.output


def test_help_text_keeps_the_extras_in_brackets():
    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "pip install 'kernelwright[ray]'" in result.output


def test_candidate_error_with_brackets_prints_verbatim(tmp_path):
    candidate = tmp_path / "raises_brackets.py"
    candidate.write_text(
        "import torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n"
        "    def __init__(self, hidden, eps):\n        super().__init__()\n\n"
        "    def forward(self, x):\n        raise RuntimeError('cannot open [/tmp/x] for x[i]')\n")
    result = runner.invoke(app, ["verify", "rmsnorm", str(candidate), "--device", "cpu"], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    assert "cannot open [/tmp/x] for x[i]" in result.output


def test_tasks_at_80_columns_keeps_every_shape_and_dtype_whole():
    from kernelwright.tasks import bundled_names, load_task

    result = runner.invoke(app, ["tasks"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "…" not in result.output
    words = set(result.output.replace(";", " ").replace(",", " ").split())
    for name in bundled_names():
        task = load_task(name)
        assert name in words
        for shape in task.shapes:
            assert "×".join(str(v) for v in shape.values()) in words, (name, shape)
        assert set(task.dtype_names) <= words


def _fake_bench_result():
    from kernelwright.bench.bencher import BenchResult

    timing = lambda ms: {"median_ms": ms, "iqr_ms": ms / 100}  # noqa: E731
    row = {"knobs": {"tokens": 4096, "heads": 2, "a": 32, "b": 8, "d": 128}, "dtype": "bfloat16", "fastest_baseline": "native",
           "timings": {"candidate": timing(0.1234), "candidate_repeat": timing(0.1236), "eager": timing(0.3456),
                       "native": timing(0.2345)}, "speedup": {"eager": 2.8, "native": 1.9}, "gbps": 3021.5,
           "fraction_of_copy": None, "bound": "memory", "recheck": {"passed": True}, "notes": {}}
    return BenchResult("rope", "/tmp/rope_kernel.py", "cpu", {"device_name": "CPU (x86_64), Triton interpreter"},
                       rows=[row])


def test_bench_at_80_columns_keeps_values_whole_and_says_why_compile_is_absent(monkeypatch):
    monkeypatch.setattr("kernelwright.bench.bencher.bench", lambda *a, **kw: _fake_bench_result())
    result = runner.invoke(app, ["bench", "rmsnorm", str(EXAMPLES / "rmsnorm.py"), "--device", "cpu"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "…" not in text and "4096×2×32×8×128  bfloat16" in text
    assert "candidate ms (IQR): 0.1234 (0.0012)" in text and "best baseline ×: 1.90 vs native" in text
    assert "no compile column: torch.compile is not a default baseline on the CPU" in " ".join(text.split())
    wide = runner.invoke(app, ["bench", "rmsnorm", str(EXAMPLES / "rmsnorm.py"), "--device", "cpu", "--wide"],
                         env={"COLUMNS": "80"})
    assert any("4096×2×32×8×128" in line and "1.90 vs native" in line for line in wide.output.splitlines())


def test_verify_at_80_columns_keeps_title_and_counts_whole(monkeypatch):
    from types import SimpleNamespace

    fake = SimpleNamespace(task="rmsnorm", candidate="/tmp/a_rather_long_candidate_name.py", device="cpu",
                           checks={"static": {"passed": 1, "failed": 0}, "values": {"passed": 30, "failed": 2}},
                           failures=[], cases=[{}] * 32, log_tail="", environment={}, accepted=False, seconds=3.0)
    monkeypatch.setattr("kernelwright.verify.verify", lambda *a, **kw: fake)
    result = runner.invoke(app, ["verify", "rmsnorm", "x.py", "--device", "cpu"], env={"COLUMNS": "80"})
    assert result.exit_code == 1
    assert "verify rmsnorm ← a_rather_long_candidate_name.py on cpu" in result.output.splitlines()[0]
    assert any("values" in line and "30" in line and "2" in line for line in result.output.splitlines())


def test_a_usage_error_has_the_same_error_prefix_as_every_other_error():
    for args in (["verify"], ["verify", "rmsnorm", "x.py", "--bogus"], ["nosuch"]):
        result = runner.invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error: ") and "Error" not in result.output, result.output
        assert "--help`)" in result.output
