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
    assert json.loads(result.output)["accepted"] is True


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


def test_candidate_error_with_brackets_prints_verbatim(tmp_path):
    candidate = tmp_path / "raises_brackets.py"
    candidate.write_text(
        "import torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n"
        "    def __init__(self, hidden, eps):\n        super().__init__()\n\n"
        "    def forward(self, x):\n        raise RuntimeError('cannot open [/tmp/x] for x[i]')\n")
    result = runner.invoke(app, ["verify", "rmsnorm", str(candidate), "--device", "cpu"], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    assert "cannot open [/tmp/x] for x[i]" in result.output
