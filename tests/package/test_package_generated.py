"""A kernel from the offline generator, packaged: it runs inside a transformers model on the model's own
shapes (batch x seq x hidden, and the q/k norms' heads), and reads each module's own eps at run time, so a
module configured with another eps than the task's runs the kernel too, with that eps.

The Triton kernel runs only in child processes started with TRITON_INTERPRET=1 (see test_package.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("kernels")
pytest.importorskip("transformers")

from conftest import ROOT  # noqa: E402
from kernelwright.package import package  # noqa: E402
from kernelwright.search import variants  # noqa: E402
from kernelwright.search.capture import capture  # noqa: E402
from kernelwright.search.codegen import generate  # noqa: E402
from kernelwright.tasks.task import load_task  # noqa: E402

OTHER_EPS = """
import logging, sys, torch
from kernelwright.package.e2e import build_model
from kernelwright.package.kernelize import kernelize_model
logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
net, _ = build_model("qwen3", "small", device="cpu", dtype=torch.float32, layers=1)
norms = [m for m in net.modules() if hasattr(m, "variance_epsilon")]
ids = torch.randint(0, 512, (1, 6))
with torch.no_grad():
    task_eps = net(input_ids=ids).logits
    for m in norms:
        m.variance_epsilon = 0.5  # far from the task's 1e-6: a kernel with 1e-6 built in would be far off
    expected = net(input_ids=ids).logits
    assert kernelize_model(net, sys.argv[1], device="cpu").swapped == 5
    got = net(input_ids=ids).logits
rel = lambda a, b: ((a - b).norm() / b.norm()).item()
print("rel_to_expected", rel(got, expected), "rel_to_task_eps", rel(got, task_eps))
"""


def _interpreted(args, **kw):
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("generated")
    candidate = work / "rmsnorm_generated.py"
    config = variants.config(one_pass=True, rows=2, warps=4)
    candidate.write_text(generate(capture(load_task("rmsnorm")), [((1, 1), config)]))
    out = work / "rmsnorm-gen"
    package(candidate, name="rmsnorm-gen", out=out, device="cpu", task="rmsnorm")
    return out


FAKE = """
import sys, torch
from pathlib import Path
from kernels import get_local_kernel
from torch._subclasses.fake_tensor import FakeTensorMode
repo = Path(sys.argv[1])
kernel = get_local_kernel(repo if torch.version.cuda else repo / "build" / "torch-cuda")  # CPU torch: no variant
with FakeTensorMode():
    y = kernel.rmsnorm(torch.empty(2, 3, 64, dtype=torch.bfloat16), torch.empty(64, dtype=torch.bfloat16), 1e-6)
assert y.shape == (2, 3, 64) and y.dtype == torch.bfloat16, (y.shape, y.dtype)
"""


def test_the_layer_passes_the_modules_own_eps_and_guards_nothing_built_in(repo):
    layers = (repo / "torch-ext" / "rmsnorm_gen" / "layers.py").read_text()
    assert "ops.rmsnorm(hidden_states, self.weight, self.variance_epsilon)" in layers
    assert "variance_epsilon !=" not in layers and "built in" not in layers
    assert "built into the kernel" not in (repo / "CARD.md").read_text()


def test_the_op_takes_eps_and_has_a_fake_for_torch_compile(repo):
    """The reference forward reads variance_epsilon, which the op now takes as an argument: its fake passes
    it on, so the layer can declare can_torch_compile."""
    layers = (repo / "torch-ext" / "rmsnorm_gen" / "layers.py").read_text()
    assert "can_torch_compile: bool = True" in layers
    assert "variance_epsilon=eps" in (repo / "torch-ext" / "rmsnorm_gen" / "op.py").read_text()
    run = _interpreted(["-c", FAKE, str(repo)])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def test_generated_kernel_runs_on_the_model_shapes_and_logits_match(repo, tmp_path):
    out = tmp_path / "e2e"
    run = _interpreted(["-m", "kernelwright", "e2e", "--model", "qwen3", "--size", "small", "--kernel", str(repo),
                        "--device", "cpu", "--no-compile", "--reps", "1", "--tokens", "8", "--out", str(out)])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    check = json.loads((out / "e2e.json").read_text())["logits_check"]
    # every Qwen3RMSNorm ran the kernel: 3-D hidden states and 4-D q/k heads alike
    assert check["passed"] and check["kernel_calls"] == 9 and check["rel_l2"] < 1e-4


def test_a_module_with_another_eps_runs_the_kernel_with_that_eps(repo):
    run = _interpreted(["-c", OTHER_EPS, str(repo)])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "using the original forward" not in run.stdout     # every norm ran the kernel
    words = run.stdout.split()
    to_expected, to_task_eps = float(words[words.index("rel_to_expected") + 1]), float(words[-1])
    assert to_expected < 1e-4 < to_task_eps, run.stdout       # its own eps, not the task's 1e-6
