"""The launcher and ModelNew around a generated kernel: leading dims folded into rows, a rank it cannot take
refused, and constructor arguments read at run time."""

from pathlib import Path

import pytest

from kernelwright.search import variants
from kernelwright.search.capture import capture
from kernelwright.search.codegen import generate
from kernelwright.tasks.task import load_task

ONE_PASS = variants.config(one_pass=True, rows=4, warps=4)


BATCHED_CHECK = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("kernel", sys.argv[1])
kernel = importlib.util.module_from_spec(spec); spec.loader.exec_module(kernel)
model = kernel.ModelNew(*[{init}]).eval()
torch.manual_seed(0)
with torch.no_grad():
    model.weight.normal_(1.0, 0.1)
    for shape in [(3, 5, 64), (2, 3, 4, 64)]:
        x = torch.randn(*shape)
        want = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)) * model.weight
        got = model(x)
        assert got.shape == x.shape, (got.shape, x.shape)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    try:
        model(torch.randn(64))
    except ValueError as exc:
        print("refused:", exc)
"""


def test_generated_rows_kernel_takes_extra_leading_dims(tmp_path):
    """A kernel captured on 2-D (tokens, hidden) runs on (batch, seq, hidden) and (batch, seq, heads, dim):
    the leading dims fold into its independent rows (how transformers calls a norm), and a rank it cannot
    take is refused with a sentence, never read out of shape."""
    import os
    import subprocess
    import sys

    task = load_task("rmsnorm")
    path = tmp_path / "kernel.py"
    path.write_text(generate(capture(task), [((1, 1), ONE_PASS)]))
    init = "64, 1e-6"  # hidden, eps
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", BATCHED_CHECK.format(init=init), str(path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: x has 1 dims; this kernel was generated for 2" in done.stdout, done.stdout


OTHER_VALUES = """
import importlib.util, sys, torch
from kernelwright.tasks.task import load_task
spec = importlib.util.spec_from_file_location("kernel", sys.argv[1])
kernel = importlib.util.module_from_spec(spec); spec.loader.exec_module(kernel)
task = load_task(sys.argv[2]).load()
for init in eval(sys.argv[3]):
    torch.manual_seed(0)
    model = task.Model(*init).eval()
    new = kernel.ModelNew(*init).eval()
    new.load_state_dict(model.state_dict())
    x = 0.1 * torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x), rtol=1e-5, atol=1e-6)
print("ok")
"""


@pytest.mark.parametrize("task, inits", [
    ("rmsnorm", [(64, 1e-6), (64, 0.1), (64, 3.0)]),                          # eps inside the rsqrt
    (Path(__file__).parent / "tasks" / "init_scalars.py", [(4.0, 0.25, 0.1), (0.5, 0.9, 0.3)]),  # 1/s, 1-p, slope
], ids=["rmsnorm-eps", "reciprocal-affine-slope"])
def test_generated_model_computes_with_the_constructor_values_it_is_given(tmp_path, task, inits):
    """ModelNew keeps its constructor arguments and the kernel reads them at run time (best.py of rmsnorm
    had eps=1e-6 baked in: off by 1.94 at eps=0.1)."""
    import os
    import subprocess
    import sys

    path = tmp_path / "kernel.py"
    source = generate(capture(load_task(task)), [((1, 1), ONE_PASS)])
    path.write_text(source)
    assert "1e-06" not in source.split("class ModelNew")[0]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", OTHER_VALUES, str(path), str(load_task(task).path), repr(inits)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
