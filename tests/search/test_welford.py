"""A variance's two statistics in one pass over the row (Welford per lane, Chan's combine over the lanes
and over a split row's parts): the looped and split kernels read the input once for mean and variance,
the verifier accepts them, and on long rows far from zero they are as accurate as torch's fp32."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelwright.search import variants
from kernelwright.search.capture import capture
from kernelwright.search.codegen import generate
from kernelwright.tasks.task import load_task
from kernelwright.verify import verify

TASKS = Path(__file__).parent / "tasks"
LOOPED = variants.config(one_pass=False, block=16, rows=2, warps=4, programs_per_sm=1)
SPLIT = variants.config(one_pass=False, block=64, rows=8, warps=4, split=1)


def _looped_body(source: str) -> str:
    """The rows kernel's chunked branch (ONE_PASS off)."""
    kernel = source[source.index("def _rows_kernel"):source.index("# launch configurations")]
    return kernel[kernel.index("\n        else:\n"):]


def _branch(source: str, level: str) -> str:
    """The split kernel's lines for one LEVEL."""
    kernel = source[source.index("def _split_kernel"):source.index("# launch configurations")]
    body = kernel[kernel.index(f"LEVEL == {level}:"):]
    return body[:body.index("elif LEVEL")] if "elif LEVEL" in body else body


@pytest.mark.parametrize("task, passes", [
    (TASKS / "instance_norm.py", 2),   # statistics, then normalise: 34_InstanceNorm's rows of 262144
    ("layernorm", 2),                  # the bundled task, past MAX_TILE
    (TASKS / "layernorm_3d.py", 2),    # weight and bias over the reduced block
    (TASKS / "var_rows.py", 1),        # unbiased var: the statistics are the output
])
def test_looped_norms_read_the_input_once_for_both_statistics(task, passes):
    body = _looped_body(generate(capture(load_task(task)), [((1, 1), LOOPED)]))
    assert body.count("for start in range(") == passes
    assert body.count("tl.load(x_ptr") == passes
    stats = body[:body.index("_mu = ")]  # up to the combine over lanes: one loop, both running sums
    assert stats.count("for start in range(") == 1 and "_sum_acc +=" in stats and "_ss_acc +=" in stats


def test_split_norm_parts_read_their_columns_once():
    """Each part's sum and squared deviations from the part's own mean in one sweep; the last launch
    combines the parts (Chan) and normalises its part: one read per launch."""
    source = generate(capture(load_task(TASKS / "layernorm_long_rows.py")), [((1, 1), SPLIT)])
    first, last = _branch(source, "1"), _branch(source, "3")
    assert first.count("for start in range(col_lo, col_hi, BLOCK):") == 1
    assert last.count("for start in range(col_lo, col_hi, BLOCK):") == 1
    assert "- tl.arange(0, SPLIT)[None, :] * span" in last   # each part's count in the combine


@pytest.mark.parametrize("name, cfg", [
    ("instance_norm", LOOPED),
    ("instance_norm", LOOPED.replace(accurate=True)),
    ("var_rows", LOOPED),
    ("var_rows", variants.accurate(SPLIT)),
], ids=["instance-norm", "instance-norm-accurate", "var", "var-split"])
def test_one_pass_statistics_are_verified(tmp_path, name, cfg):
    task = load_task(TASKS / f"{name}.py")
    path = tmp_path / "kernel.py"
    path.write_text(generate(capture(task), [((1, 1), cfg)]))
    result = verify(task.path, path, device="cpu", shapes=2, seed=3)
    assert result.accepted, result.failures[:2]


def test_a_combine_that_drops_the_lanes_spread_is_rejected(tmp_path):
    """The verification above means something: without each lane's count * (lane mean - row mean)^2 the
    variance is only the lanes' own, and the verifier sees it."""
    task = load_task(TASKS / "var_rows.py")
    source = generate(capture(task), [((1, 1), LOOPED)])
    broken = source.replace(" + var_ss_n * var_ss_dm * var_ss_dm", "")
    assert broken != source
    path = tmp_path / "kernel.py"
    path.write_text(broken)
    assert not verify(task.path, path, device="cpu", shapes=2, seed=3).accepted


ACCURACY_CHECK = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("kernel", sys.argv[1])
kernel = importlib.util.module_from_spec(spec); spec.loader.exec_module(kernel)
model = kernel.ModelNew().eval()
torch.manual_seed(0)
x = 100.0 + torch.randn(2, 1 << 20)
ref = torch.var(x.double(), dim=-1)
def error(var):
    return ((var.double() - ref) / ref).abs().max().item()
print("torch", error(torch.var(x, dim=-1)))
for accurate in (False, True):
    kernel.CONFIGS[0][1]["accurate"] = accurate
    kernel.pick_config.cache_clear(), kernel._row_plan.cache_clear()
    with torch.no_grad():
        print(accurate, error(model(x)))
"""


def test_welford_statistics_match_float64_on_long_rows(tmp_path):
    """Rows of 2^20 elements around 100 in 256-wide chunks: each lane takes 4096 values in turn. Compensated,
    the variance is within two fp32 roundings of float64 or no further off than torch's own fp32 var; the
    plain running sums drift several times further (the check can fail)."""
    program = capture(load_task(TASKS / "var_rows.py"))
    path = tmp_path / "kernel.py"
    path.write_text(generate(program, [((1, 1), variants.config(one_pass=False, block=256, rows=2))]))
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", ACCURACY_CHECK, str(path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    errors = dict(line.split() for line in done.stdout.splitlines() if line)
    torch_fp32, compensated, plain = (float(errors[k]) for k in ("torch", "True", "False"))
    assert compensated <= max(2 * 2.0 ** -24, torch_fp32), errors
    assert plain > 3 * compensated, errors
