"""A task without REPLACES packages as a functions-only `kernels` repository: no layers, a card that says
so, and generated tests that check the function against the task's own Model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("kernels")

from conftest import EXAMPLES, ROOT  # noqa: E402
from kernelwright.package import package, validate_repository  # noqa: E402

TASK = (ROOT / "src/kernelwright/tasks/suite/rmsnorm.py").read_text()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fn")
    task = root / "rms_fn.py"  # the bundled RMSNorm without REPLACES, one dtype and one small shape: fast
    text = TASK.replace('REPLACES = "transformers.models.llama.modeling_llama.LlamaRMSNorm"\n', "")
    text = text.replace("DTYPES = [torch.bfloat16, torch.float16, torch.float32]", "DTYPES = [torch.float32]")
    head, rest = text.split("SHAPES = [", 1)
    task.write_text(head + "SHAPES = [dict(tokens=64, hidden=256)]\n" + rest.split("]\n", 1)[1])
    result = package(EXAMPLES / "rmsnorm.py", name="rms-fn", out=root / "rms-fn", task=str(task), device="cpu")
    assert result.layer is None and result.layer_key is None and result.function == "rms_fn"
    return root / "rms-fn"


def test_the_repository_has_no_layer_and_says_so(repo):
    assert not (repo / "build/torch-cuda/layers.py").exists() and not (repo / "torch-ext/rms_fn/layers.py").exists()
    assert "layers" not in (repo / "build/torch-cuda/__init__.py").read_text()
    card = (repo / "CARD.md").read_text()
    assert "no layer to kernelize" in card and "kernelize(model" not in card
    meta = json.loads((repo / "kernelwright.json").read_text())
    assert meta["functions_only"] is True and meta["replaces"] is None and meta["layer"] is None
    assert list(validate_repository(repo)) == ["torch-cuda"]


def test_generated_tests_check_the_function_against_the_task_s_own_model(repo):
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout  # the function test for float32; no layer tests
