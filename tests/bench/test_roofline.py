"""Byte and FLOP counts of the bundled tasks, and the bound they imply."""

import pytest
import torch

from kernelwright.bench import roofline
from kernelwright.tasks import load_task
from kernelwright.verify.inputs import build_case, reference_outputs

T, H, V = 6, 40, 50  # tokens, hidden/intermediate, vocab at a small shape
EXPECTED_BYTES = {  # bf16 = 2 bytes: inputs read once, parameters read once, outputs written once
    "rmsnorm": ({"tokens": T, "hidden": H}, 2 * T * H * 2 + H * 2),
    "layernorm": ({"tokens": T, "hidden": H}, 2 * T * H * 2 + 2 * H * 2),
    "add_rmsnorm": ({"tokens": T, "hidden": H}, 4 * T * H * 2 + H * 2),
    "swiglu": ({"tokens": T, "intermediate": H}, 3 * T * H * 2),
    "silu": ({"tokens": T, "intermediate": H}, 2 * T * H * 2),
    "softmax": ({"tokens": T, "vocab": V}, 2 * T * V * 2),
    "cross_entropy": ({"tokens": T, "vocab": V}, T * V * 2 + T * 8 + 4),  # int64 targets, fp32 scalar loss
}


@pytest.mark.parametrize("name", sorted(EXPECTED_BYTES))
def test_minimal_bytes_of_bundled_tasks(name):
    knobs, expected = EXPECTED_BYTES[name]
    case = build_case(load_task(name).load(), case_id="x", label="x", knobs=knobs, dtype="bfloat16",
                      distribution="task", seed=0)
    _, eager = reference_outputs(case, "cpu")
    assert roofline.minimal_bytes(case.inputs, eager, case.model.parameters()) == expected


def test_rotary_bytes_count_q_k_cos_sin_and_both_outputs():
    task = load_task("rotary")
    knobs = {k: (4 if k == "head_dim" else 2) for k in task.knobs}
    case = build_case(task.load(), case_id="x", label="x", knobs=knobs, dtype="bfloat16", distribution="task", seed=0)
    _, eager = reference_outputs(case, "cpu")
    q, k = case.inputs[0], case.inputs[1]
    cos_sin = sum(x.numel() for x in case.inputs[2:])
    assert roofline.minimal_bytes(case.inputs, eager, []) == 2 * (2 * q.numel() + 2 * k.numel() + cos_sin)


def test_flop_counter_sees_matmuls_and_not_pointwise_work():
    rms = build_case(load_task("rmsnorm").load(), case_id="x", label="x", knobs={"tokens": 4, "hidden": 8},
                     dtype="float32", distribution="task", seed=0)
    assert roofline.count_flops(rms.model, rms.inputs, "cpu") == 0
    linear = torch.nn.Linear(32, 16, bias=False)
    assert roofline.count_flops(linear, [torch.randn(8, 32)], "cpu") == 2 * 8 * 32 * 16


def test_bound_follows_the_larger_ideal_time():
    assert roofline.bound(4 * 10**9, 0, gbps=3000.0, tflops=800.0) == "memory"
    assert roofline.bound(10**6, 10**13, gbps=3000.0, tflops=800.0) == "compute"
    assert roofline.bound(10**3, 0, gbps=3000.0, tflops=800.0) == "launch"
    assert roofline.bound(10**9, 0, gbps=None, tflops=None) == "unknown"
