"""The rows schedule's forms beyond the plain one: compensated (accurate) row sums, column tiles over a
reduced middle dim, and rows split across programs with their partials combined."""

from pathlib import Path

import pytest

from kernelwright.search import variants
from kernelwright.search.capture import capture
from kernelwright.search.codegen import generate
from kernelwright.tasks.task import load_task
from kernelwright.verify import verify

FIXTURES = Path(__file__).parents[1] / "fixtures"
TASKS = Path(__file__).parent / "tasks"


ACCURACY_CHECK = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("kernel", sys.argv[1])
kernel = importlib.util.module_from_spec(spec); spec.loader.exec_module(kernel)
shape = (1, 64, 128)
model = kernel.ModelNew(shape).eval()
torch.manual_seed(0)
x = 8.0 + torch.randn(1, *shape)
ref = torch.nn.functional.layer_norm(x.double(), shape, model.ln.weight.double(), model.ln.bias.double(), model.ln.eps)
for accurate in (False, True):
    kernel.CONFIGS[0][1]["accurate"] = accurate
    kernel.pick_config.cache_clear(), kernel._row_plan.cache_clear()
    with torch.no_grad():
        y = model(x)
    print(accurate, ((y.double() - ref).norm() / ref.norm()).item())
"""


def test_compensated_row_sums_are_more_accurate_on_long_rows(tmp_path):
    """A LayerNorm row of 8192 elements in 16-wide chunks: each lane adds 512 values in turn. Against a
    float64 reference the plain running sums are several times further off than the compensated ones
    (on 40_LayerNorm's 4M-element rows the plain form missed fp32's bound on an H200)."""
    import os
    import subprocess
    import sys

    program = capture(load_task(Path(__file__).parent / "tasks" / "layernorm_long_rows.py"))
    path = tmp_path / "kernel.py"
    path.write_text(generate(program, [((1, 1), variants.config(one_pass=False, block=16, rows=2))]))
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", ACCURACY_CHECK, str(path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    errors = dict(line.split() for line in done.stdout.split("\n") if line)
    plain, compensated = float(errors["False"]), float(errors["True"])
    assert compensated < 5e-7 and plain > 3 * compensated, (plain, compensated)


COLUMN = variants.config(one_pass=False, block=16, rows=16, warps=4, programs_per_sm=1, column=True)


@pytest.mark.parametrize("task", [
    FIXTURES / "kernelbench_sum_dim1.py",                   # sum (inner 32: two full tiles)
    Path(__file__).parent / "tasks" / "nan_reductions.py",    # max keeps NaN, argmin's first NaN; inner 6 < tile
    Path(__file__).parent / "tasks" / "middle_dim_mean_min.py",  # mean and min; inner 37 and length 50: tails
], ids=["sum-dim1", "max-argmin-nan", "mean-min-odd-inner"])
def test_column_schedule_is_accepted(tmp_path, task):
    """The column schedule (a program per outer index and tile of adjacent inner elements, looping over the
    reduced middle dim) computes what the eager model does, tails and NaN included."""
    source = generate(capture(load_task(task)), [((1, 1), COLUMN)])
    assert "if COLUMN:" in source and "COLUMN=column" in source
    path = tmp_path / "kernel.py"
    path.write_text(source)
    result = verify(load_task(task).path, path, device="cpu", shapes=3, seed=1)
    assert result.accepted, result.failures[:2]


def test_a_wrong_column_kernel_is_rejected(tmp_path):
    """The column path is the one that runs: break only its inner index and the verifier rejects it."""
    task = FIXTURES / "kernelbench_sum_dim1.py"
    source = generate(capture(load_task(task)), [((1, 1), COLUMN)])
    broken = source.replace("    i = tile * ROWS + tl.arange(0, ROWS)", "    i = tile * ROWS + 0 * tl.arange(0, ROWS)")
    assert broken != source
    path = tmp_path / "kernel.py"
    path.write_text(broken)
    assert not verify(load_task(task).path, path, device="cpu", shapes=2, seed=1).accepted


SPLIT = variants.config(one_pass=False, block=64, rows=8, warps=4, split=1)
COLUMN_SPLIT = variants.config(one_pass=False, block=16, rows=16, warps=4, column=True, split=1)


@pytest.mark.parametrize("task, cfg", [
    (TASKS / "layernorm_long_rows.py", variants.accurate(SPLIT)),      # two dependent levels, 3 launches
    (TASKS / "log_softmax_rows.py", SPLIT),                            # online max/sum-exp partials
    (FIXTURES / "kernelbench_sum_dim1.py", COLUMN_SPLIT),             # tall columns split over the reduced dim
    (TASKS / "cross_entropy_mean.py", SPLIT),                          # staged: per-row loss, then the mean
], ids=["layernorm-split", "log-softmax-split", "column-split", "cross-entropy-split"])
def test_split_schedules_are_accepted(tmp_path, task, cfg):
    """Rows (or column tiles) split into parts whose partial statistics a later launch combines: the
    verifier accepts them on its drawn shapes (at least two parts each, whatever the shape)."""
    source = generate(capture(load_task(task)), [((1, 1), cfg)])
    assert "def _split_kernel" in source and "_split_parts(" in source
    path = tmp_path / "kernel.py"
    path.write_text(source)
    result = verify(load_task(task).path, path, device="cpu", shapes=2, seed=1)
    assert result.accepted, result.failures[:2]


def test_a_split_kernel_that_skips_the_combine_is_rejected(tmp_path):
    """The split test above means something: a kernel that reads only part 0's partials is rejected."""
    task = load_task(TASKS / "log_softmax_rows.py")
    source = generate(capture(task), [((1, 1), SPLIT)])
    broken = source.replace("tl.arange(0, SPLIT)[None, :]", "0 * tl.arange(0, SPLIT)[None, :]")
    assert broken != source
    path = tmp_path / "kernel.py"
    path.write_text(broken)
    assert not verify(task.path, path, device="cpu", shapes=2, seed=1).accepted


def test_a_split_schedule_is_refused_where_partials_have_no_combine():
    """argmax keeps an index per part, which the split combine does not carry: no split form."""
    from kernelwright.search.capture import Unsupported
    from kernelwright.search.codegen import splittable

    argmax = capture(load_task(TASKS / "nan_reductions.py"))
    assert splittable(capture(load_task("softmax"))) and not splittable(argmax)
    with pytest.raises(Unsupported, match="split"):
        generate(argmax, [((1, 1), SPLIT)])


def test_a_split_layernorm_takes_its_statistics_in_one_launch():
    """Mean and variance of each part in one launch (a second sweep over the part for its squared
    deviations), combined exactly (Chan) by the launch that normalises: two launches, not three."""
    source = generate(capture(load_task(TASKS / "layernorm_long_rows.py")), [((1, 1), SPLIT)])
    kernel = source[source.index("def _split_kernel"):source.index("# launch configurations")]
    assert "if LEVEL == 1:" in kernel and "LEVEL == 2" not in kernel and "elif LEVEL == 3:" in kernel
    assert "- tl.arange(0, SPLIT)[None, :] * span" in kernel         # each part's count in the combine
    launches = [line for line in source.splitlines() if "_split_kernel[" in line]
    assert [line.split("LEVEL=")[1] for line in launches] == ["1)", "3)"]
