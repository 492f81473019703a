"""Tracing: constructor constants read at run time, shrunk shapes that keep what the Model needs."""

from pathlib import Path

import pytest

from kernelwright.search.capture import Const, Unsupported, capture
from kernelwright.tasks.task import load_task

TASKS = Path(__file__).parent / "tasks"


def _init_nodes(program) -> dict[str, dict]:
    return {n.attrs["param"]: n.attrs for n in program.nodes if n.op == "init"}


def test_constants_from_constructor_arguments_are_read_at_run_time():
    """Each float constructor argument is traced with other values: the constants that move with it become
    run-time values (as itself, an affine map, or of its reciprocal); a literal that does not move stays."""
    found = _init_nodes(capture(load_task(TASKS / "init_scalars.py")))
    assert found["scale"] == {"param": "scale", "scale": 1.0, "offset": 0.0, "inverse": True}
    assert found["p"] == {"param": "p", "scale": -1.0, "offset": 1.0, "inverse": False}
    assert found["slope"] == {"param": "slope", "scale": 1.0, "offset": 0.0, "inverse": False}
    program = capture(load_task(TASKS / "init_scalars.py"))
    assert any(isinstance(a, Const) and a.value == 0.5 for n in program.nodes for a in n.args)  # stays baked
    # none of the three is stored as such by Model.__init__: the generated one stores them
    assert program.init_attrs == {"scale": "scale", "p": "p", "slope": "slope"}
    assert "self.scale = scale" in program.init_source and "self.p = p" in program.init_source


def test_eps_of_norms_and_margins_of_losses_are_constructor_arguments():
    rms = capture(load_task("rmsnorm"))
    assert set(_init_nodes(rms)) == {"eps"} and rms.init_attrs == {"eps": "eps"}  # Model keeps self.eps
    assert set(_init_nodes(capture(load_task("layernorm")))) == {"eps"}            # F.layer_norm's eps
    triplet = capture(load_task(TASKS / "triplet_margin.py"))                      # inside nn.TripletMarginLoss
    assert set(_init_nodes(triplet)) == {"margin"} and triplet.init_attrs == {"margin": "margin"}
    assert not _init_nodes(capture(load_task(TASKS / "layernorm_3d.py")))          # a tuple: a shape, not a value


# Synthetic tasks whose Model accepts only some shapes (issue 11): capture shrinks them keeping what the
# Model needs, and says so.
DIVISIBLE = """import torch
batch_size = 64
features = 48
groups = 4
class Model(torch.nn.Module):
    def __init__(self, features, groups):
        super().__init__()
        if features % groups:
            raise ValueError("features must be a multiple of groups\\nsecond line of the error")
    def forward(self, x):
        return torch.relu(x) * 2
def get_inputs():
    return [torch.rand(batch_size, features)]
def get_init_inputs():
    return [features, groups]
"""
HINGE = """import torch
batch_size = 8192
input_shape = (8192,)
class Model(torch.nn.Module):
    def forward(self, predictions, targets):
        return torch.mean(torch.clamp(1 - predictions * targets, min=0))
def get_inputs():
    return [torch.rand(batch_size, *input_shape), torch.rand(batch_size)]
def get_init_inputs():
    return []
"""


def _write(tmp_path, name, source):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return load_task(path)


def test_a_model_that_needs_a_multiple_is_captured_at_one_and_the_plan_says_which(tmp_path):
    from kernelwright.search.capture import capture_shape, describe

    task = _write(tmp_path, "divisible", DIVISIBLE)
    program = capture(task)
    assert program.kind == "pointwise"
    assert capture_shape(task, (11, 13))["features"] % 4 == 0
    assert "`features` a multiple of `groups` (4)" in describe(program)["notes"][0]


def test_a_batch_the_model_never_lets_change_stays_fixed_and_is_traced_on_meta(tmp_path):
    from kernelwright.search.capture import CAPTURE_SIZES, trace

    task = _write(tmp_path, "hinge", HINGE)
    graph = trace(task, CAPTURE_SIZES[0])[0]
    assert {n.meta["val"].device.type for n in graph.graph.nodes if n.op == "placeholder"} == {"meta"}
    # predictions * targets broadcasts targets along the row, but a (8192,) tensor over (8192, 8192) could be
    # either dim: refused, not guessed
    with pytest.raises(Unsupported) as info:
        capture(task)
    assert info.value.op == "dimensions of one size"
    assert "`batch_size` at 8192" in info.value.why


def test_a_model_no_relation_helps_is_refused_in_one_sentence(tmp_path):
    # only the task's own element count is accepted: no single knob or pair of knobs kept makes it hold
    own_count_only = """import torch
batch_size = 64
features = 48
dim = 40
class Model(torch.nn.Module):
    def forward(self, x):
        if x.numel() != 64 * 48 * 40:
            raise ValueError("only the task's own element count\\nsecond line of the error")
        return torch.relu(x)
def get_inputs():
    return [torch.rand(batch_size, features, dim)]
def get_init_inputs():
    return []
"""
    with pytest.raises(Unsupported) as info:
        capture(_write(tmp_path, "own_count_only", own_count_only))
    assert info.value.op == "shrunk shapes"
    assert "ValueError: only the task's own element count)" in info.value.why
    assert "second line" not in info.value.why and "\n" not in str(info.value)
    assert ";" not in info.value.why  # one sentence: the refusal's own text adds what to do next


def test_a_model_without_an_init_of_its_own_gets_a_plain_one_not_nn_modules(tmp_path):
    """nn.Module.__init__'s source (torch._C calls) copied into ModelNew would fail the static policy."""
    from kernelwright.search.codegen import generate
    from kernelwright.verify import static

    path = tmp_path / "no_init.py"
    path.write_text("import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n    def forward(self, x):\n"
                    "        return torch.relu(x) * 2\n\n\nbatch = 64\ndim = 128\n\n\ndef get_inputs():\n"
                    "    return [torch.randn(batch, dim)]\n\n\ndef get_init_inputs():\n    return []\n")
    program = capture(load_task(path))
    source = generate(program, [((64, 128), dict(one_pass=True, block=128, rows=1, warps=4, stages=2,
                                                 programs_per_sm=0))])
    assert "    def __init__(self):\n        super().__init__()\n" in source
    assert "torch._C" not in source and not static.check_source(source)
