import pytest

from conftest import FIXTURES
from kernelwright.errors import UsageError
from kernelwright.tasks import bundled_names, instantiate, load_task


def test_bundled_suite_has_the_required_operators():
    required = {"rmsnorm", "layernorm", "softmax", "log_softmax", "gelu_tanh", "silu", "swiglu", "geglu",
                "add_rmsnorm", "rotary", "cross_entropy", "l2norm"}
    assert required <= set(bundled_names())
    assert len(bundled_names()) >= 12


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_task_loads_with_knobs_dtypes_and_shapes(name):
    task = load_task(name)
    assert task.knobs, "a bundled task must expose shape knobs"
    assert task.shapes, "a bundled task must declare benchmark SHAPES"
    assert dict(task.knobs) in [dict(s) for s in task.shapes], "the file's defaults must be one of its SHAPES"
    assert set(task.dtype_names) <= {"bfloat16", "float16", "float32"}
    module = task.load()
    inputs, init_inputs = instantiate(module, {k: 3 * task.knob_multiple_of.get(k, 1) for k in task.knobs})
    assert all(getattr(x, "device", None) is None or x.device.type == "cpu" for x in inputs)


def test_rmsnorm_task_reads_knobs_and_extensions():
    task = load_task("rmsnorm")
    assert task.knobs == {"tokens": 8192, "hidden": 4096}
    assert task.dtype_names == ("bfloat16", "float16", "float32")
    assert task.replaces == "transformers.models.llama.modeling_llama.LlamaRMSNorm"
    assert task.has_native


def test_kernelbench_file_loads_unmodified_with_small_constants_fixed():
    task = load_task(FIXTURES / "kernelbench_softmax_huge.py")
    assert task.knobs == {"batch_size": 65536, "dim": 393216}
    assert task.dtype_names == ("float32",)
    assert task.bench_shapes == [{"batch_size": 65536, "dim": 393216}]


def test_rebinding_knobs_changes_the_inputs():
    module = load_task("rmsnorm").load()
    inputs, init_inputs = instantiate(module, {"tokens": 3, "hidden": 7})
    assert inputs[0].shape == (3, 7)
    assert init_inputs[0] == 7


@pytest.mark.parametrize("fixture, phrase", [
    ("bad_syntax_task.py", "failed to import"),
    ("no_model_task.py", "does not define `Model`"),
    ("broken_inputs_task.py", "get_inputs()/get_init_inputs() failed"),
])
def test_broken_task_files_get_one_clear_sentence(fixture, phrase):
    with pytest.raises(UsageError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        load_task(FIXTURES / fixture)


def test_unknown_task_name_lists_the_bundled_ones():
    with pytest.raises(UsageError, match="rmsnorm"):
        load_task("no_such_task")
