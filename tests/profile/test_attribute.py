"""Attribution from the profiler's Chrome trace: each kernel counted once, on the outermost op above it,
with that op's own shapes; kernels launched straight from Python under their module.

The fixture is an excerpt of a real trace (qwen3 8b-shape prefill, seq 2048, on an H200, torch 2.11): one
layer's post-attention RMSNorm, its residual add and its attention, with the CUDA runtime events, the
kernels and a CUPTI "Activity Buffer Request" span that overlaps them all, as the profiler wrote them
(only unused args dropped). There the kernels of ``aten::to`` are launched by its child ``aten::copy_``
and those of ``scaled_dot_product_attention`` by ``_cudnn_attention_forward``."""

import json
from pathlib import Path

import pytest

from kernelwright.profile.attribute import FUNCTION, MODULE, STEP, load_trace, samples, step_time_us
from kernelwright.profile.costs import op_bytes, op_flops
from kernelwright.profile.table import rows

EXCERPT = Path(__file__).parent / "fixtures" / "h200_qwen3_prefill_excerpt.json"
H200 = {"copy_gbps": 4210.6, "tflops": 603.2, "min_call_ms": 0.002}
TOKENS, HIDDEN = 2048, 4096


@pytest.fixture(scope="module")
def excerpt():
    events = load_trace(EXCERPT)
    return events, samples(events, on_gpu=True)


def test_every_kernel_of_the_real_trace_lands_on_one_top_level_op_with_that_op_s_shapes(excerpt):
    events, found = excerpt
    kernels = [e for e in events if e.get("cat") in ("kernel", "gpu_memset")]
    assert sum(s.time_us for s in found) == pytest.approx(sum(k["dur"] for k in kernels))
    assert sum(len(s.kernels) for s in found) == len(kernels)
    assert step_time_us(events, on_gpu=True) == pytest.approx(sum(k["dur"] for k in kernels))
    ops = sorted((s.owner_class, s.op) for s in found)
    assert ops == sorted([("Qwen3Attention", "aten::scaled_dot_product_attention"), ("Qwen3DecoderLayer", "aten::add"),
                          *[("Qwen3RMSNorm", op) for op in ("aten::to", "aten::to", "aten::pow", "aten::mean",
                                                            "aten::add", "aten::rsqrt", "aten::mul", "aten::mul")]])
    assert all(s.shapes and s.dtypes for s in found)  # the issue: every row had shapes [""] and 0 bytes
    assert not any("Activity Buffer" in s.op or "copy_" in s.op or "cudnn" in s.op for s in found)


def test_a_cast_takes_its_bytes_from_its_own_shapes_not_from_the_copy_that_launched_its_kernel(excerpt):
    _, found = excerpt
    to_f32, to_bf16 = [s for s in found if s.op == "aten::to"]
    assert (to_f32.shapes[0], to_f32.dtypes[0]) == ([1, TOKENS, HIDDEN], "c10::BFloat16")
    assert op_bytes(to_f32.op, to_f32.shapes, to_f32.dtypes, to_f32.concrete) == TOKENS * HIDDEN * (2 + 4)
    assert op_bytes(to_bf16.op, to_bf16.shapes, to_bf16.dtypes, to_bf16.concrete) == TOKENS * HIDDEN * (4 + 2)
    assert len(to_f32.kernels) == 1 and "copy" in to_f32.kernels[0]


def test_attention_has_bytes_and_causal_flops_and_is_compute_bound(excerpt):
    _, found = excerpt
    (sdpa,) = [s for s in found if s.op == "aten::scaled_dot_product_attention"]
    assert sdpa.concrete[5] is True  # is_causal, read back from the trace's text
    heads, dim = 32, 128
    assert op_flops(sdpa.op, sdpa.shapes, sdpa.dtypes, sdpa.concrete) == 2 * heads * TOKENS * TOKENS * 2 * dim // 2
    table = {r["op"]: r for r in rows([sdpa], steps=1, total_us=sdpa.time_us, ceilings=H200)}
    assert table["aten::scaled_dot_product_attention"]["bound"] == "compute"


def test_rows_of_the_real_excerpt_have_bytes_whole_calls_and_a_sane_bound(excerpt):
    events, found = excerpt
    table = {(r["module_class"], r["op"]): r for r in rows(found, steps=1, total_us=step_time_us(events, on_gpu=True),
                                                           ceilings=H200)}
    mul = table[("Qwen3RMSNorm", "aten::mul")]
    assert mul["calls"] == 2 and "calls_range" not in mul and mul["bytes"] > 0 and mul["shapes"] != [""]
    assert mul["bound"] == "memory"  # 2048x4096 elementwise, kernels of 20-30 us: never "launch"
    rsqrt = table[("Qwen3RMSNorm", "aten::rsqrt")]
    assert rsqrt["bound"] == "launch"  # one value per token: a 1 us kernel
    assert all(r["bound"] in ("memory", "compute", "launch") for r in table.values())


# hand-built traces: the cases the excerpt does not hold

def _span(name, ts, dur, ext, cat="user_annotation", **args):
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": 1, "ts": ts, "dur": dur,
            "args": {"External id": ext, **args}}


def _kernel(name, ts, dur, ext):
    return {"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": 7, "ts": ts, "dur": dur,
            "args": {"External id": ext}}


def _two_steps():
    f32 = {"Input Dims": [[4, 8]], "Input type": ["float"], "Concrete Inputs": [""]}
    return [
        _span(STEP, 0, 100, 1), _span(f"{MODULE}Qwen3RMSNorm::model.norm", 1, 40, 2),
        _span("aten::pow", 2, 10, 3, cat="cpu_op", **f32), _kernel("pow_kernel", 50, 2.0, 3),
        _span(f"{MODULE}Qwen3RMSNorm::model.layers.0.input_layernorm", 50, 20, 4), _kernel("_rmsnorm", 60, 5.0, 4),
        _span(f"{FUNCTION}apply_rotary_pos_emb", 71, 20, 5),
        _span("aten::item", 72, 3, 6, cat="cpu_op", **f32),  # host-only: no device time, no row
        _span(STEP, 200, 100, 10), _span(f"{MODULE}Qwen3RMSNorm::model.norm", 201, 40, 11),
        _span("aten::pow", 202, 10, 12, cat="cpu_op", **f32), _kernel("pow_kernel", 250, 2.0, 12),
        _span("aten::pow", 220, 10, 13, cat="cpu_op", **f32), _kernel("pow_kernel", 260, 2.0, 13),
    ]


def test_a_kernel_launched_from_a_range_is_its_own_op_and_steps_are_told_apart():
    found = samples(_two_steps(), on_gpu=True)
    assert sorted((s.owner_class, s.op, s.step) for s in found) == [
        ("Qwen3RMSNorm", "aten::pow", 0), ("Qwen3RMSNorm", "aten::pow", 1), ("Qwen3RMSNorm", "aten::pow", 1),
        ("Qwen3RMSNorm", "kernel:_rmsnorm", 0)]
    assert step_time_us(_two_steps(), on_gpu=True) == 11.0
    assert step_time_us(_two_steps(), on_gpu=False) == 200.0


def test_steps_that_disagree_give_whole_counts_and_their_range_never_a_mean():
    found = samples(_two_steps(), on_gpu=True)
    (pow_row,) = [r for r in rows(found, steps=2, total_us=11.0, ceilings=H200) if r["op"] == "aten::pow"]
    assert isinstance(pow_row["calls"], int) and pow_row["calls_range"] == [1, 2]


def test_the_trace_file_round_trips(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": _two_steps()}))
    assert load_trace(path) == _two_steps()
