"""Generated candidates are accepted by the verifier (Triton interpreter): pointwise, one-pass and looped rows,
a reduction over a middle dim (the rows schedule's other forms: test_codegen_rows; ModelNew: test_codegen_launch)."""

from pathlib import Path

import pytest

from kernelwright.search import variants
from kernelwright.search.capture import capture
from kernelwright.search.codegen import generate
from kernelwright.tasks.task import load_task
from kernelwright.verify import verify

FIXTURES = Path(__file__).parents[1] / "fixtures"
LOOPED = variants.config(one_pass=False, block=16, rows=2, warps=4, programs_per_sm=1)
ONE_PASS = variants.config(one_pass=True, rows=4, warps=4)


@pytest.mark.parametrize("task, cfg", [
    ("gelu_tanh", variants.config(block=64, programs_per_sm=1)),      # pointwise, persistent grid
    ("softmax", LOOPED),                                               # two-level reduction, chunked rows
    (FIXTURES / "kernelbench_sum_dim1.py", LOOPED),                    # reduction over a non-last dim
    ("add_rmsnorm", ONE_PASS),                                         # two outputs, several rows/program
], ids=["pointwise", "softmax-looped", "sum-dim1", "add_rmsnorm"])
def test_generated_candidate_is_accepted(tmp_path, task, cfg):
    program = capture(load_task(task))
    source = generate(program, [((1, 1), cfg)])
    compile(source, "kernel.py", "exec")
    assert "class ModelNew(nn.Module)" in source and "@triton.jit" in source
    assert source.index("@triton.jit") < source.index("def fused(") < source.index("class ModelNew")
    path = tmp_path / "kernel.py"
    path.write_text(source)
    result = verify(load_task(task).path, path, device="cpu", shapes=3, seed=1)
    assert result.accepted, result.failures[:2]


def test_a_wrong_generated_kernel_is_rejected(tmp_path):
    """The test above means something: the same pipeline with a broken reduction is rejected."""
    program = capture(load_task("rmsnorm"))
    source = generate(program, [((1, 1), ONE_PASS)]).replace("tl.sum(", "tl.max(")
    path = tmp_path / "kernel.py"
    path.write_text(source)
    assert not verify(load_task("rmsnorm").path, path, device="cpu", shapes=2, seed=1).accepted
