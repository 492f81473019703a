"""Profiling the small Qwen3 and Llama models on the CPU: ops attributed to their modules, nothing twice."""

import json

import pytest

from kernelwright.errors import UsageError
from kernelwright.profile import load, profile_model


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen3")
    result, capture = profile_model("qwen3", "small", device="cpu", layers=2, seq=16, steps=2, out=out)
    return result, capture, out


def _owners(result) -> set[str]:
    return {r["module_class"] for r in result.rows}


def test_qwen3_lists_rmsnorm_rotary_silu_mul_and_attention_with_shares_under_one(qwen3):
    result, _, _ = qwen3
    owners = _owners(result)
    assert {"Qwen3RMSNorm", "apply_rotary_pos_emb()", "Qwen3RotaryEmbedding", "SiLUActivation", "Qwen3MLP",
            "Qwen3Attention"} <= owners
    ops = {(r["module_class"], r["op"]) for r in result.rows}
    assert ("SiLUActivation", "aten::silu") in ops and ("Qwen3MLP", "aten::mul") in ops  # SiLU, then the gating mul
    assert ("Qwen3Attention", "aten::scaled_dot_product_attention") in ops
    assert 0 < sum(r["share"] for r in result.rows) <= 1.0
    assert result.rows[-1]["cumulative_share"] == pytest.approx(sum(r["share"] for r in result.rows))


def test_each_call_is_counted_once_at_its_outermost_op(qwen3):
    result, _, _ = qwen3
    by_key = {(r["module_class"], r["op"]): r for r in result.rows}
    # two layers: input, post-attention, q and k norms each, plus the final norm
    assert sum(r["calls"] for r in result.rows if r["module_class"] == "Qwen3RMSNorm" and r["op"] == "aten::pow") == 9
    assert by_key[("Linear", "aten::linear")]["calls"] == 2 * 7 + 1  # q, k, v, o, gate, up, down; lm_head
    assert not any(r["op"] in ("aten::mm", "aten::matmul", "aten::t") for r in result.rows)  # inside aten::linear
    assert not any(r["op"].startswith(("kw.", "ProfilerStep")) for r in result.rows)  # ranges are not ops
    # rotate_half runs inside apply_rotary_pos_emb: one owner, not two
    assert "rotate_half()" not in _owners(result)


def test_rows_rank_by_savings_and_carry_roofline_numbers(qwen3):
    result, _, _ = qwen3
    savings = [r["savings_ms"] for r in result.rows]
    assert savings == sorted(savings, reverse=True)
    norm = next(t for t in result.targets if t["module_class"] == "Qwen3RMSNorm")
    assert norm["leaf"] and norm["calls"] == 9 and norm["bytes"] > 0 and norm["bound"] in ("memory", "launch")
    assert result.ceilings["copy_gbps"] > 0
    assert all(r["speedup_if_roofline"] >= 1.0 for r in result.rows)
    assert any("copy bandwidth" in note for note in result.notes)


def test_json_and_chrome_trace_are_written_and_load_back(qwen3):
    result, _, out = qwen3
    data = load(out / "profile.json")
    assert data["rows"][0]["op"] == result.rows[0]["op"] and data["phase"] == "prefill"
    trace = json.loads((out / "trace.json").read_text())
    names = {e.get("name", "") for e in trace["traceEvents"]}
    assert any(n.startswith("kw.module::Qwen3RMSNorm::") for n in names)


def test_llama_decode_attributes_to_llama_modules(tmp_path):
    result, _ = profile_model("llama", "small", phase="decode", device="cpu", layers=1, seq=8, steps=1)
    owners = _owners(result)
    assert {"LlamaRMSNorm", "LlamaAttention", "apply_rotary_pos_emb()"} <= owners
    shapes = [s for r in result.rows if r["module_class"] == "LlamaRMSNorm" for s in r["shapes"]]
    assert any(s.startswith("1x1x128") for s in shapes)  # one new token per step


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="gpt-5"), "Unknown model"),
    (dict(model="qwen3", phase="train"), "--phase"),
    (dict(model="qwen3", top=0), "--top"),
    (dict(model="qwen3", dtype="int8"), "--dtype"),
])
def test_bad_inputs_are_one_usage_error(kwargs, message):
    with pytest.raises(UsageError, match=message):
        profile_model(device="cpu", **kwargs)


def test_a_config_transformers_cannot_build_is_a_usage_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-model", "hidden_size": 8}))
    with pytest.raises(UsageError, match="transformers cannot"):
        profile_model(str(tmp_path), device="cpu")


def test_a_local_config_file_is_profiled(tmp_path):
    from kernelwright.package.e2e import CONFIGS

    config = {"model_type": "qwen3", **CONFIGS[("qwen3", "small")], "num_hidden_layers": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result, _ = profile_model(str(tmp_path / "config.json"), device="cpu", seq=8, steps=1)
    assert result.size == "config" and "Qwen3RMSNorm" in _owners(result)
