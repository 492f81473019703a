"""Lowering: bundled tasks lower to the IR the generator needs; uncovered ops are named."""

from pathlib import Path

import pytest

from kernelwright.search.capture import Unsupported, capture
from kernelwright.search.ir import POINTWISE_BINARY, POINTWISE_UNARY, Op
from kernelwright.search.lowering import RULES, VIEWS
from kernelwright.tasks.task import load_task

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_rmsnorm_is_one_row_reduction_with_weight_parameter():
    program = capture(load_task("rmsnorm"))
    assert program.kind == "rows" and program.rank == 2 and program.reduce_dim == 1
    by_ref = {s.ref: s for s in program.inputs}
    assert by_ref["weight"].source == "param" and by_ref["weight"].dim_map == (1,)
    assert by_ref["x"].source == "input" and by_ref["x"].dim_map == (0, 1)
    ops = [n.op for n in program.nodes]
    assert ops.count("sum") == 1 and "rsqrt" in ops
    # the explicit .to(input_dtype) of LlamaRMSNorm survives as a cast to the task dtype
    assert any(n.op == "cast" and n.dtype == "case" for n in program.nodes)


def test_softmax_has_two_dependent_reductions():
    program = capture(load_task("softmax"))
    reductions = [n for n in program.nodes if n.op in ("max", "sum")]
    assert [n.op for n in reductions] == ["max", "sum"]


def test_add_rmsnorm_has_two_outputs_and_pointwise_tasks_are_flat():
    program = capture(load_task("add_rmsnorm"))
    assert len(program.outputs) == 2 and program.output_is_tuple
    assert capture(load_task("gelu")).kind == "pointwise"
    assert capture(load_task("swiglu")).kind == "pointwise"


def test_layernorm_variance_is_lowered_without_baked_sizes():
    program = capture(load_task("layernorm"))
    assert sum(n.op == "sum" for n in program.nodes) == 2  # mean, then squared deviations
    assert any(n.op == "ncols" for n in program.nodes)       # the row length is read at run time


def test_non_last_dimension_reduction():
    program = capture(load_task(FIXTURES / "kernelbench_sum_dim1.py"))
    assert program.rank == 3 and program.reduce_dim == 1
    assert program.outputs[0].dim_map == (0, None, 2)  # keepdim=True


@pytest.mark.parametrize("task, op", [(FIXTURES / "kernelbench_cumsum.py", "cumsum")])
def test_uncovered_ops_are_named(task, op):
    with pytest.raises(Unsupported) as info:
        capture(load_task(task))
    assert op in info.value.op


TASKS = Path(__file__).parent / "tasks"


def test_attention_is_refused_as_a_family_a_user_understands_with_the_detail_after():
    with pytest.raises(Unsupported) as info:
        capture(load_task(FIXTURES / "attention_task.py"))
    text = str(info.value)
    assert info.value.outside.startswith("matmul/attention/convolution (here `aten.bmm`) is outside")
    assert text.index("is outside what the offline agent generates") < text.index("the generator stopped at")
    assert info.value.op  # the internal detail is kept, after the sentence


def test_an_uncovered_op_outside_the_families_keeps_its_own_name():
    with pytest.raises(Unsupported) as info:
        capture(load_task(FIXTURES / "kernelbench_cumsum.py"))
    assert info.value.outside == "" and str(info.value).startswith("aten.cumsum")


def test_cross_entropy_picks_the_target_logit_in_the_first_pass():
    """The gathered log-softmax is recomputed from the picked logit, so the per-row loss waits only for
    the max and the sum of exp: its looped kernel (online form) reads the logits in one pass."""
    from kernelwright.search import variants
    from kernelwright.search.ir import REDUCTIONS
    from kernelwright.search.codegen import generate

    program = capture(load_task(TASKS / "cross_entropy_mean.py"))
    rows = program.stages[0]
    sums = [n for n in rows.nodes if n.op in REDUCTIONS]
    picked = [n for n in sums if rows.node_by_name[n.args[0]].op == "where"]
    assert len(picked) == 1 and rows.node_by_name[rows.node_by_name[picked[0].args[0]].args[1]].op == "input"
    source = generate(program, [((1, 1), variants.config(one_pass=False, block=64))])
    kernel = source[source.index("def _rows_kernel_0"):source.index("def _rows_kernel_1")]
    online = kernel[kernel.index("if ONLINE:"):kernel.index("else:", kernel.index("if ONLINE:"))]
    assert online.count("for start in range(") == 1                 # one read of the logits per row


def test_every_pointwise_op_and_view_has_its_rule_and_other_ops_none():
    """The table is the whole list of what lowers: a pointwise IR op is lowered from the ATen op of its name."""
    for op in POINTWISE_UNARY | POINTWISE_BINARY:
        assert RULES[op].__name__ == "_pointwise" and Op(str(op)) is op
    assert all(RULES[v].__name__ == "_alias" for v in VIEWS)
    assert "cumsum" not in RULES and "mm" not in RULES
