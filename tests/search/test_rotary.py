"""Rotary embeddings (rotate_half) in the offline generator: the half-slice bound is captured as
``size // 2`` of its dim, the generated kernel matches the task's Model through the verifier, and a slice
anywhere else is still refused."""

from __future__ import annotations

import textwrap

import pytest

from kernelwright.search import capture
from kernelwright.search.codegen import generate
from kernelwright.search.ir import Unsupported
from kernelwright.search.trace import CAPTURE_SIZES, HALF, iteration_space, size_constants, trace
from kernelwright.tasks.task import load_task

CONFIG = dict(one_pass=True, block=64, rows=1, warps=4, stages=2, programs_per_sm=0)

SLICED = '''
import torch
import torch.nn as nn

rows = 64
width = 16
DTYPES = [torch.float32]
SHAPES = [dict(rows=64, width=16)]
KNOB_MULTIPLE_OF = {{"width": 2}}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, scale):
        return torch.cat((-x[..., {second}], x[..., {first}]), dim=-1) * scale


def get_inputs():
    return [torch.randn(rows, width), torch.randn(width)]


def get_init_inputs():
    return []
'''


def _task(tmp_path, first=": x.shape[-1] // 2", second="x.shape[-1] // 2 :"):
    path = tmp_path / "sliced.py"
    path.write_text(textwrap.dedent(SLICED.format(first=first, second=second)))
    return load_task(path)


def test_half_slice_is_captured_as_half_of_the_last_dim():
    task = load_task("rotary")
    a, b = (trace(task, sizes)[0] for sizes in CAPTURE_SIZES[:2])
    found = size_constants(a, b)
    slices = {key: value for key, value in found.items() if key[0].startswith("slice")}
    last = len(iteration_space(a)) - 1
    assert slices and set(slices.values()) == {((last,), HALF)}
    # the bound is the half at both shapes, where the head dims differ
    bounds = [[n.args[2] for n in g.graph.nodes if n.name == "slice_2"][0] for g in (a, b)]
    assert bounds == [iteration_space(a)[last] // 2, iteration_space(b)[last] // 2] and bounds[0] != bounds[1]


def test_rotary_lowers_to_one_remapped_read_per_output():
    program = capture.capture(load_task("rotary"))
    assert program.kind == "pointwise" and len(program.parts) == 2
    for part in program.parts:
        ops = [n.op for n in part.nodes]
        assert ops.count("roll_half") == 1 and ops.count("first_half") == 1 and ops.count("where") == 1
    source = generate(program, [((1024, 128), CONFIG)])
    assert source.count("@triton.jit") == 1 and source.count("_pointwise_kernel[") == 1  # one launch
    assert "// 2" in source and " 23" not in source and " 53" not in source  # no baked half


def _verify(task, candidate, shapes):
    from kernelwright.verify import verify

    result = verify(task, candidate, device="cpu", shapes=shapes)
    assert not result.failures, result.failures[:2]
    return result


def test_rotary_kernel_verifies_on_several_shapes_and_dtypes(tmp_path):
    task = load_task("rotary")
    candidate = tmp_path / "rotary_candidate.py"
    candidate.write_text(generate(capture.capture(task), [((1024, 128), CONFIG)]))
    result = _verify(task.path, candidate, shapes=4)
    assert {c["dtype"] for c in result.cases} == {"bfloat16", "float16", "float32"}
    assert len({tuple(sorted(c["knobs"].items())) for c in result.cases}) >= 4
    # grouped-query shapes: q and k with different head counts
    assert any(c["knobs"]["heads"] != c["knobs"]["kv_heads"] for c in result.cases)


def test_halves_in_either_order_and_a_broadcast_factor_verify(tmp_path):
    task = _task(tmp_path)
    candidate = tmp_path / "sliced_candidate.py"
    candidate.write_text(generate(capture.capture(task), [((64, 16), CONFIG)]))
    _verify(task.path, candidate, shapes=3)


def test_a_slice_not_at_the_half_is_refused(tmp_path):
    with pytest.raises(Unsupported, match="not one half of a dimension"):
        capture.capture(_task(tmp_path, first=":3", second="3:"))


def test_a_cos_table_of_another_length_is_refused_before_any_read(tmp_path):
    """The kernel reads cos and sin at offsets from q's and k's sizes: a shorter table would be read out of
    bounds, so the launcher refuses it in one sentence."""
    import torch

    from kernelwright.tasks.task import import_file

    path = tmp_path / "rotary_kernel.py"
    path.write_text(generate(capture.capture(load_task("rotary")), [((1024, 128), CONFIG)]))
    module = import_file(path, prefix="kw_test_rotary")
    q, k = torch.randn(1, 4, 8, 16), torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match=r"cos has shape \(6, 16\); with the other inputs this kernel needs \(8, 16\)"):
        module.fused(q=q, k=k, cos=torch.randn(6, 16), sin=torch.randn(8, 16))
    with pytest.raises(ValueError, match=r"sin has shape \(8, 8\)"):
        module.fused(q=q, k=k, cos=torch.randn(8, 16), sin=torch.randn(8, 8))
