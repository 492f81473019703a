"""Tasks emitted for modeling functions (apply_rotary_pos_emb): captured at profile time, loadable, running,
and accepted by verify with their own reference or a Triton rotary as the candidate."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from kernelwright.profile import profile_model
from kernelwright.profile.run import FunctionCall, TensorArgument
from kernelwright.profile.tasks import Unsupported, function_task_source
from kernelwright.sandbox.runner import Limits
from kernelwright.tasks import load_task
from kernelwright.tasks.task import instantiate
from kernelwright.verify import verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROTARY = "apply_rotary_pos_emb()"
SEQ = 16


@pytest.fixture(scope="module", params=["qwen3", "llama"])
def emitted(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    result, capture = profile_model(request.param, "small", device="cpu", layers=1, seq=SEQ, steps=1,
                                    emit_tasks=out, top=1, only={"apply_rotary_pos_emb"})
    return result, capture, out / "apply_rotary_pos_emb.py"


def _rotary_shapes(config: dict) -> dict[str, tuple]:
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return {"q": (1, heads, SEQ, head_dim), "k": (1, kv, SEQ, head_dim), "cos": (1, SEQ, head_dim),
            "sin": (1, SEQ, head_dim)}


def test_the_rotary_call_is_captured_with_its_arguments_and_minimal_bytes(emitted):
    result, capture, _ = emitted
    call = capture.functions[ROTARY]
    assert call.function.__module__ == f"transformers.models.{result.model}.modeling_{result.model}"
    assert call.tensors == ["q", "k", "cos", "sin"] and call.constants == {"unsqueeze_dim": 1}
    shapes = _rotary_shapes(result.config)
    assert capture.signatures[ROTARY] == [tuple((shapes[n], "float32") for n in call.tensors)]
    target = next(t for t in result.targets if t["module_class"] == ROTARY)
    # a fused rotary reads q, k, cos and sin once and writes q and k once, in each of the layer's calls
    elements = sum(torch.Size(s).numel() for s in shapes.values()) + torch.Size(shapes["q"]).numel() \
        + torch.Size(shapes["k"]).numel()
    assert target["leaf"] and target["calls"] == 1 and target["bytes"] == 4 * elements


def test_the_emitted_task_carries_the_profiled_shapes_and_dtype_and_names_no_replaces(emitted):
    result, capture, path = emitted
    assert result.tasks["written"] == [str(path)]
    task = load_task(path)
    assert task.replaces is None and task.dtype_names == ("float32",)
    assert "% of a prefill step" in task.description and "functions-only" in task.description
    inputs, init = instantiate(task.load(), task.shapes[0])
    assert [tuple(x.shape) for x in inputs] == [s for s, _ in capture.signatures[ROTARY][0]]
    assert init == [1]  # unsqueeze_dim, a constructor argument
    assert task.knob_multiple_of["q_3"] == 2  # the head dim (q's last) stays even: rotate_half halves it


def test_the_emitted_model_rotates_q_and_k_at_another_batch_and_length(emitted):
    _, _, path = emitted
    module = load_task(path).load()
    knobs = {**load_task(path).shapes[0], "q_0": 2, "q_2": 5}  # batch and sequence are knobs of every argument
    q, k, cos, sin = instantiate(module, knobs)[0]
    q_out, k_out = module.Model(*module.get_init_inputs())(q, k, cos, sin)

    def rotated(x):
        half = x.shape[-1] // 2
        return x * cos[:, None] + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin[:, None]

    torch.testing.assert_close(q_out, rotated(q))
    torch.testing.assert_close(k_out, rotated(k))


def test_the_task_s_own_reference_passes_every_value_check_and_is_refused_only_for_having_no_kernel(emitted, tmp_path):
    _, _, path = emitted
    source = path.read_text()
    candidate = tmp_path / "reference.py"
    candidate.write_text(source.split("\nDTYPES")[0] + "\n\n" + source[source.index("class Model("):]
                         .replace("class Model(", "class ModelNew(").split("\ndef get_inputs")[0])
    result = verify(path, candidate, device="cpu", shapes=2, limits=Limits(timeout_s=120))
    assert result.checks["values"]["failed"] == 0 and result.checks["values"]["passed"] > 0
    # refused only for being PyTorch: no kernel launched, and (on a drawn shape of 4096 elements or more) its
    # ops traced over the inputs; the shapes are drawn at random, so either set may come
    checks = {f["check"] for f in result.failures}
    assert "no_kernel" in checks and checks <= {"no_kernel", "torch_ops"}


def test_a_triton_rotary_is_accepted_on_the_emitted_task(emitted, tmp_path):
    _, _, path = emitted
    example = (EXAMPLES / "rotary.py").read_text()
    candidate = tmp_path / "rotary.py"
    candidate.write_text(example[:example.index("class ModelNew")] + '''class ModelNew(nn.Module):
    def __init__(self, unsqueeze_dim):
        super().__init__()
        assert unsqueeze_dim == 1  # cos and sin are (batch, seq, head_dim): one table per batch row

    def forward(self, q, k, cos, sin):
        out = [(_apply_rotary(q[b], cos[b].contiguous(), sin[b].contiguous()),
                _apply_rotary(k[b], cos[b].contiguous(), sin[b].contiguous())) for b in range(q.shape[0])]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])
''')
    result = verify(path, candidate, device="cpu", shapes=2, limits=Limits(timeout_s=120))
    assert result.accepted, result.failures[:3]


def _target(name: str) -> dict:
    return {"module_class": name, "share": 0.05, "calls": 2, "bound": "memory", "fraction_of_roofline": 0.1,
            "speedup_if_roofline": 1.04}


PROFILE = SimpleNamespace(model="qwen3", phase="prefill", dtype="float32", device="cpu")


def test_the_same_mechanism_emits_repeat_kv_with_its_integer_argument_as_a_constructor_argument(tmp_path):
    from transformers.models.qwen3.modeling_qwen3 import repeat_kv

    call = FunctionCall(repeat_kv, {"hidden_states": TensorArgument((1, 2, 16, 32), "float32"), "n_rep": 2})
    path = tmp_path / "repeat_kv.py"
    path.write_text(function_task_source(call, [(((1, 2, 16, 32), "float32"),)], _target("repeat_kv()"), PROFILE))
    module = load_task(path).load()
    (x,), init = instantiate(module, {"hidden_states_0": 3, "hidden_states_2": 7})
    assert init == [2]
    torch.testing.assert_close(module.Model(*init)(x), x.repeat_interleave(2, dim=1))


def test_functions_a_task_cannot_call_standalone_are_refused_with_the_reason():
    from transformers.models.qwen3.modeling_qwen3 import eager_attention_forward, repeat_kv

    tensor = TensorArgument((1, 2, 16, 32), "float32")
    signature = [(((1, 2, 16, 32), "float32"),)]
    with pytest.raises(Unsupported, match=r"\*\*kwargs"):
        function_task_source(FunctionCall(eager_attention_forward, {"query": tensor}), signature,
                             _target("eager_attention_forward()"), PROFILE)
    with pytest.raises(Unsupported, match="n_rep, a Linear"):
        function_task_source(FunctionCall(repeat_kv, {"hidden_states": tensor, "n_rep": torch.nn.Linear(1, 1)}),
                             signature, _target("repeat_kv()"), PROFILE)
    with pytest.raises(Unsupported, match="floating-point"):
        function_task_source(FunctionCall(repeat_kv, {"hidden_states": tensor, "n_rep": 2}),
                             [(((1, 2, 16, 32), "int64"),)], _target("repeat_kv()"), PROFILE)
