"""KernelBench's memory-bound kinds beyond the bundled suite: decomposed activations, reductions over a
block of trailing dims, losses reduced to a 0-dim tensor, run-time dimension sizes, per-channel norms.
Each generated candidate goes through the real verifier (Triton interpreter), and each capture is
checked for the structure that makes it right."""

from pathlib import Path

import pytest

from kernelwright.search import variants
from kernelwright.search.capture import Unsupported, capture
from kernelwright.search.codegen import generate
from kernelwright.tasks.task import load_task
from kernelwright.verify import verify

TASKS = Path(__file__).parent / "tasks"
FIXTURES = Path(__file__).parents[1] / "fixtures"
LOOPED = variants.config(one_pass=False, block=16, rows=2, warps=4, programs_per_sm=1)
ONE_PASS = variants.config(one_pass=True, rows=4, warps=4)
POINTWISE = variants.config(block=64, programs_per_sm=1)


def _verified(tmp_path, name: str, cfg: dict, *, mutate=None):
    task = load_task(TASKS / f"{name}.py")
    source = generate(capture(task), [((1, 1), cfg)])
    if mutate:
        source = mutate(source)
    path = tmp_path / "kernel.py"
    path.write_text(source)
    return verify(task.path, path, device="cpu", shapes=2, seed=3)


@pytest.mark.parametrize("name, cfg", [
    ("activations", POINTWISE),       # leaky_relu, elu, selu, celu, hardtanh, softplus, hardsigmoid, hardswish
    ("loss_mean", LOOPED),            # smooth L1 over every element: one flattened row, a 0-dim output
    ("frobenius_norm", LOOPED),       # x / ||x||: the one flattened row written back in chunks
    ("kl_batchmean", ONE_PASS),       # / batch size read at run time
    ("layernorm_3d", LOOPED),         # reduction over (C, H, W) with (C, H, W) weight and bias
    ("layernorm_3d", LOOPED.replace(accurate=True)),  # compensated sums: mean, then squared deviations
    ("loss_mean", LOOPED.replace(accurate=True)),  # compensated sum of a whole tensor, 0-dim output
    ("instance_norm", ONE_PASS),      # (N, C) rows over (H, W), through torch's (1, N*C, H, W) view
    ("batchnorm_eval", ONE_PASS),     # (C,) statistics broadcast along dim 1
    ("triplet_margin", LOOPED),       # per-row distances, then the mean over rows: two kernels
    ("cross_entropy_mean", ONE_PASS),  # gather as a one-hot row sum, then the mean over rows
    ("nan_reductions", LOOPED),       # NaN kept by max, first NaN found by argmin, chunk by chunk
    ("nan_reductions", ONE_PASS),     # the same on whole rows
])
def test_memory_bound_candidate_is_verified(tmp_path, name, cfg):
    result = _verified(tmp_path, name, cfg)
    assert result.accepted, result.failures[:2]


def test_a_baked_batch_size_is_rejected(tmp_path):
    """kl_batchmean is accepted only because the size is read at run time: the traced value is wrong at
    every other shape the verifier draws."""
    def bake(source: str) -> str:
        import re
        return re.sub(r"(size\w*) = float\(size0\)", r"\1 = 23.0", source)

    result = _verified(tmp_path, "kl_batchmean", ONE_PASS, mutate=bake)
    assert not result.accepted


def test_captures_have_the_structure_that_makes_them_right():
    ln = capture(load_task(TASKS / "layernorm_3d.py"))
    assert ln.reduce_dims == (1, 2, 3) and ln.reduce_dim == 1
    loss = capture(load_task(TASKS / "loss_mean.py"))
    assert loss.reduce_dims == (0, 1) and loss.outputs[0].dim_map == ()
    kl = capture(load_task(TASKS / "kl_batchmean.py"))
    sizes = [n for n in kl.nodes if n.op == "numel"]
    assert len(sizes) == 1 and sizes[0].attrs["of"] == (0,) and not sizes[0].attrs["inverse"]
    inorm = capture(load_task(TASKS / "instance_norm.py"))
    assert inorm.reduce_dims == (2, 3)
    bn = capture(load_task(TASKS / "batchnorm_eval.py"))
    assert bn.reduce_dims == () and bn.kind == "rows"
    triplet = capture(load_task(TASKS / "triplet_margin.py"))
    assert [st.reduce_dims for st in triplet.stages] == [(1,), (0,)]
    crossing = [o.name for o in triplet.stages[0].outputs]
    assert [i.name for i in triplet.stages[1].inputs] == crossing  # the per-row losses, nothing else
    assert triplet.stages[1].rank == 1 and triplet.stages[1].outputs[0].dim_map == ()
    ce = capture(load_task(TASKS / "cross_entropy_mean.py"))
    assert len(ce.stages) == 2 and any(n.op == "column" for n in ce.stages[0].nodes)
    acts = capture(load_task(TASKS / "activations.py"))
    assert acts.kind == "pointwise" and {"where", "expm1"} <= {n.op for n in acts.nodes}


def test_out_of_scope_ops_are_still_refused_by_name():
    with pytest.raises(Unsupported) as info:
        capture(load_task(FIXTURES / "kernelbench_cumsum.py"))
    assert "cumsum" in info.value.op


def test_online_softmax_saves_a_pass_and_both_forms_verify(tmp_path):
    """Looped softmax: the online form reads each row twice (max and sum together, then the write), the
    three-pass form three times; the kernel carries both behind ONLINE, and the three-pass one still
    verifies (the online one is verified by test_codegen's softmax-looped case, the default)."""
    program = capture(load_task(TASKS / "log_softmax_rows.py"))
    source = generate(program, [((1, 1), LOOPED.replace(online=False))])
    looped = source.split("if ONE_PASS:")[1].split("# launch")[0]
    online, rest = looped.split("if ONLINE:")[1].split("else:", 1)
    assert online.count("for start in range(0, n_cols, BLOCK)") == 1      # max and sum together
    assert rest.count("for start in range(0, n_cols, BLOCK)") == 3        # max, sum, then the shared write
    assert 'ONLINE=config.get("online", True)' in source
    path = tmp_path / "kernel.py"
    path.write_text(source)
    result = verify(TASKS / "log_softmax_rows.py", path, device="cpu", shapes=2, seed=5)
    assert result.accepted, result.failures[:2]
    assert "ONLINE" not in generate(capture(load_task("rmsnorm")), [((1, 1), LOOPED)])  # no softmax pair


SPECIAL_SUMS = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("kernel", sys.argv[1])
kernel = importlib.util.module_from_spec(spec); spec.loader.exec_module(kernel)
x = torch.randn(3, 64, 5)
x[0, 7, 1], x[1, 9, 2], x[1, 40, 2], x[2, 3, 0], x[2, 50, 0] = float("inf"), float("inf"), 1.0, float("-inf"), float("inf")
x[0, 20, 3] = float("nan")
with torch.no_grad():
    torch.testing.assert_close(kernel.ModelNew(1)(x), x.sum(1, keepdim=True) * 0.5, equal_nan=True)
print("ok")
"""


def test_compensated_sums_keep_inf_and_nan_as_torch_does(tmp_path):
    """Kahan's correction of an infinite sum is inf - inf = NaN: the compensated form leaves the correction
    alone where the running sum is not finite, so a row with an inf sums to inf (and inf + -inf to NaN)."""
    import os
    import subprocess
    import sys

    cfg = LOOPED.replace(accurate=True)
    path = tmp_path / "kernel.py"
    path.write_text(generate(capture(load_task(FIXTURES / "kernelbench_sum_dim1.py")), [((1, 1), cfg)]))
    done = subprocess.run([sys.executable, "-c", SPECIAL_SUMS, str(path)], env={**os.environ, "TRITON_INTERPRET": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
