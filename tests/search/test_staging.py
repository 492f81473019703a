"""Staging: reductions over two blocks of dims become two stages; the value between them is stored."""

from kernelwright.search.ir import Const, Dtype, Node, Op, Program, Source, TensorSpec
from kernelwright.search.staging import stage


def _row_sums_then_total() -> Program:
    """total = sum over rows of (sum over columns of x) * 2: a per-row reduction, then one over rows."""
    nodes = [Node("x", Op.INPUT, [], frozenset({0, 1}), Dtype.F32),
             Node("s", Op.SUM, ["x"], frozenset({0}), Dtype.F32, {"dim": (1,)}),
             Node("d", Op.MUL, ["s", Const(2.0)], frozenset({0}), Dtype.F32),
             Node("total", Op.SUM, ["d"], frozenset(), Dtype.F32, {"dim": (0,)})]
    x = TensorSpec(name="x", source=Source.INPUT, ref="x", dim_map=(0, 1), dtype=Dtype.F32)
    out = TensorSpec(name="out0", source=Source.OUTPUT, ref="0", dim_map=(), dtype=Dtype.F32, node="total")
    return Program(task="t", nodes=nodes, inputs=[x], outputs=[out], rank=2, reduce_dim=None, forward_args=["x"],
                   scalar_args={}, init_source="", ops=[], output_is_tuple=False)


def test_two_blocks_make_two_stages_and_the_crossing_value_is_stored_then_loaded():
    program = _row_sums_then_total()
    stage(program, {(1,), (0,)})
    first, second = program.stages
    assert program.reduce_dims == (1,) and program.reduce_dim == 1  # the first reduction's block
    assert [o.name for o in first.outputs] == ["d"] and first.outputs[0].source == Source.STAGE
    assert [n.name for n in second.nodes] == ["d", "total"] and second.nodes[0].op is Op.INPUT
    assert second.rank == 1 and second.reduce_dims == (0,)  # its own compact space: the rows only


def test_one_block_makes_no_stages():
    program = _row_sums_then_total()
    program.nodes, program.outputs[0].node = program.nodes[:2], "s"
    stage(program, {(1,)})
    assert program.stages == [] and program.reduce_dims == (1,)
