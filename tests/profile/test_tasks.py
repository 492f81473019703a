"""Tasks emitted from a profile load, match the module they were cut from, and run under verify."""

from pathlib import Path

import pytest
import torch

from kernelwright.profile import profile_model
from kernelwright.sandbox.runner import Limits
from kernelwright.tasks import load_task
from kernelwright.verify import verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    result, capture = profile_model("qwen3", "small", device="cpu", layers=1, seq=16, steps=1, emit_tasks=out, top=5)
    return result, capture, out


def test_the_norm_and_the_activation_are_emitted_and_the_embedding_skipped_with_a_reason(emitted):
    result, _, out = emitted
    names = {Path(p).name for p in result.tasks["written"]}
    assert {"qwen3_rms_norm.py", "silu_activation.py"} <= names
    assert "Linear" not in result.tasks["skipped"]  # compute-bound: not a candidate at all
    assert "floating-point" in result.tasks["skipped"]["Embedding"]


def test_an_emitted_task_carries_the_profiled_shapes_dtype_replaces_and_share(emitted):
    _, _, out = emitted
    task = load_task(out / "qwen3_rms_norm.py")
    assert task.replaces == "transformers.models.qwen3.modeling_qwen3.Qwen3RMSNorm"
    assert task.dtype_names == ("float32",)
    assert {"hidden_states_0": 1, "hidden_states_1": 16, "hidden": 128} in task.shapes  # (batch 1, 16 tokens, 128)
    assert task.knobs["hidden_states_0"] == 1  # the batch stays a knob: verify draws other batches
    assert "% of a prefill step" in task.description


def test_the_emitted_model_computes_what_the_profiled_module_does(emitted):
    _, capture, out = emitted
    module = load_task(out / "qwen3_rms_norm.py").load()
    model = module.Model(*module.get_init_inputs())
    original = capture.instances["Qwen3RMSNorm"]
    model.load_state_dict(original.state_dict())  # same constructor, same parameter names and shapes
    x = torch.randn(1, 16, 128)
    torch.testing.assert_close(model(x), original(x))


def test_the_replaced_class_builds_from_the_task_s_own_init_inputs(emitted):
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    module = load_task(emitted[2] / "qwen3_rms_norm.py").load()
    built = Qwen3RMSNorm(*module.get_init_inputs())
    assert built.weight.shape == (128,) and built.variance_epsilon == 1e-6


def test_a_triton_rmsnorm_is_accepted_on_the_emitted_task(emitted):
    result = verify(emitted[2] / "qwen3_rms_norm.py", EXAMPLES / "rmsnorm.py", device="cpu", shapes=2,
                    limits=Limits(timeout_s=120))
    assert result.accepted, result.failures[:3]


def test_the_task_s_own_reference_passes_every_value_check_and_is_refused_only_for_having_no_kernel(emitted, tmp_path):
    source = (emitted[2] / "silu_activation.py").read_text()
    candidate = tmp_path / "reference.py"
    candidate.write_text(source.split("\nDTYPES")[0] + "\n\n" + source[source.index("class Model("):]
                         .replace("class Model(", "class ModelNew(").split("\ndef get_inputs")[0])
    result = verify(emitted[2] / "silu_activation.py", candidate, device="cpu", shapes=2, limits=Limits(timeout_s=120))
    assert result.checks["values"]["failed"] == 0 and result.checks["values"]["passed"] > 0
    assert {f["check"] for f in result.failures} == {"no_kernel"}
