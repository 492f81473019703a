"""Bytes from recorded shapes, the ranked rows, and the per-op diff of two profiles."""

import json

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.profile.attribute import OpSample
from kernelwright.profile.costs import op_bytes
from kernelwright.profile.run import SCHEMA
from kernelwright.profile.table import compare, rows

CEILINGS = {"copy_gbps": 100.0, "tflops": 1.0}


def test_bytes_follow_the_op_s_inferred_output():
    f32, bf16 = "float", "c10::BFloat16"
    assert op_bytes("aten::view", [[4, 8]], [f32], [None, [32]]) == 0
    assert op_bytes("aten::mul", [[4, 8], [4, 1]], [f32, f32], []) == 4 * (32 + 4 + 32)  # broadcast output
    assert op_bytes("aten::mean", [[4, 8], [], [], []], [f32, "ScalarList", "Scalar", ""], [None, [-1], True]) \
        == 4 * (32 + 4)
    assert op_bytes("aten::to", [[4, 8], [], [], [], []], [bf16, "Scalar"], [None, 6, False]) == 2 * 32 + 4 * 32
    assert op_bytes("aten::linear", [[2, 16, 64], [128, 64], []], [bf16, bf16, ""], []) \
        == 2 * (2 * 16 * 64 + 128 * 64 + 2 * 16 * 128)
    # an embedding reads the rows it looks up (and its indices), not the whole table
    assert op_bytes("aten::embedding", [[151936, 64], [1, 16], [], [], []], [bf16, "long int", "Scalar"], [None]) \
        == 16 * 8 + 2 * 16 * 64 * 2


def _sample(owner, op, us, shape=(1024, 1024), step=0, kernel_us=(), dtype="float"):
    return OpSample(owner, owner.lower(), op, us, [list(shape)], [dtype], [], kernel_us=list(kernel_us), step=step)


def test_rows_rank_by_savings_with_amdahl_and_cumulative_share():
    samples = [_sample("Norm", "aten::mul", 300.0, step=i) for i in range(2)] + \
        [_sample("Act", "aten::silu", 100.0, step=i) for i in range(2)]
    table = rows(samples, steps=2, total_us=1000.0, ceilings=CEILINGS)
    norm, act = table
    assert (norm["module_class"], norm["calls"], norm["time_ms"]) == ("Norm", 1, 0.3)
    assert norm["share"] == pytest.approx(0.6) and act["cumulative_share"] == pytest.approx(0.8)
    # 8 MB (read once, written once) at 100 GB/s: 0.08 ms at the roofline, 0.22 ms saved of a 0.5 ms step
    assert norm["roofline_ms"] == pytest.approx(0.08388608) and norm["bound"] == "memory"
    assert norm["speedup_if_roofline"] == pytest.approx(0.5 / (0.5 - norm["savings_ms"]))


def _profile(rows_, step_ms):
    return {"schema": SCHEMA, "model": "qwen3", "phase": "prefill", "step_ms": step_ms, "rows": rows_}


def _row(cls, op, ms, calls=9):
    return {"module_class": cls, "op": op, "time_ms": ms, "calls": calls}


def test_compare_pairs_ops_and_keeps_those_on_one_side_only():
    before = _profile([_row("Qwen3RMSNorm", "aten::pow", 1.0), _row("Linear", "aten::linear", 5.0, 15)], 7.0)
    after = _profile([_row("Qwen3RMSNorm", "_rms_kw::rmsnorm", 0.2), _row("Linear", "aten::linear", 5.0, 15)], 5.3)
    diff = {(r["module_class"], r["op"]): r for r in compare(before, after)}
    assert diff[("Qwen3RMSNorm", "aten::pow")]["after_ms"] is None
    assert diff[("Qwen3RMSNorm", "_rms_kw::rmsnorm")]["before_ms"] is None
    assert diff[("Linear", "aten::linear")]["speedup"] == 1.0 and diff[("Linear", "aten::linear")]["delta_ms"] == 0
    assert compare(before, after)[0]["op"] == "aten::pow"  # the largest saving first


def test_cli_compare_renders_the_diff_and_refuses_a_file_that_is_not_a_profile(tmp_path):
    a, b, bad = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "bad.json"
    a.write_text(json.dumps(_profile([_row("Qwen3RMSNorm", "aten::pow", 1.0)], 2.0)))
    b.write_text(json.dumps(_profile([_row("Qwen3RMSNorm", "aten::pow", 0.5)], 1.5)))
    bad.write_text("{}")
    runner = CliRunner()
    ok = runner.invoke(app, ["profile", "--compare", str(a), str(b), "--wide"], env={"COLUMNS": "200"})
    assert ok.exit_code == 0 and "aten::pow" in ok.output and "2.00" in ok.output, ok.output
    refused = runner.invoke(app, ["profile", "--compare", str(a), str(bad)])
    assert refused.exit_code == 2 and "not a kernelwright profile" in refused.output


@pytest.mark.parametrize("args, words", [
    (["--model", "gpt-5"], "Unknown model"),
    (["--top", "0"], "--top must be at least 1"),
])
def test_cli_bad_inputs_are_one_sentence_and_exit_2(args, words):
    result = CliRunner().invoke(app, ["profile", "--device", "cpu", *args])
    assert result.exit_code == 2 and words in result.output
    assert result.output.strip().count("\n") == 0  # one line: no traceback


GPU = {"copy_gbps": 3000.0, "tflops": 700.0, "min_call_ms": 0.002}


def test_tiny_kernels_are_launch_bound_and_never_ideal_below_the_kernel_floor():
    samples = [_sample("Qwen3RMSNorm", "aten::mul", 2.0, shape=(1, 4096), kernel_us=[2.0])] * 145  # decode's norms
    (row,) = rows(samples, steps=1, total_us=10_000.0, ceilings=GPU)
    assert row["bound"] == "launch" and row["calls"] == 145
    assert row["roofline_ms"] == pytest.approx(145 * 0.002) and row["savings_ms"] == 0.0


def test_a_large_elementwise_op_is_memory_bound_however_many_calls_it_makes():
    # 2048x4096 bf16 in and out: 33.5 MB, 11 us at 3000 GB/s; measured 20 us a kernel
    samples = [_sample("Qwen3RMSNorm", "aten::mul", 20.0, shape=(2048, 4096), kernel_us=[20.0], dtype="c10::BFloat16",
                       step=i % 2) for i in range(290 * 2)]
    (row,) = rows(samples, steps=2, total_us=100_000.0, ceilings=GPU)
    assert (row["bound"], row["calls"], row["bytes"]) == ("memory", 290, 290 * 2048 * 4096 * 2 * 2)


def test_an_op_whose_bytes_are_unknown_is_bound_by_unknown_and_claims_no_saving():
    cat = OpSample("Qwen3Attention", "attn", "aten::cat", 15.0, [[[1, 8, 2048, 128], [1, 8, 1, 128]], []],
                   ["TensorList", "Scalar"], [None, -2], kernel_us=[1.0])  # no dtype for a list of tensors
    (row,) = rows([cat], steps=1, total_us=100.0, ceilings=GPU)
    assert (row["bound"], row["savings_ms"], row["fraction_of_roofline"]) == ("unknown", 0.0, None)
