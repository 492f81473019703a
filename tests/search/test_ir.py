"""The IR's kinds are enums that read as the strings codegen, variants and the offline run compare with."""

import json

from kernelwright.search.capture import describe
from kernelwright.search.ir import Dtype, Kind, Node, Op, Program, Source, TensorSpec


def _program(reduce_dim=None, out_map=(0, 1)) -> Program:
    x = TensorSpec(name="x", source=Source.INPUT, ref="x", dim_map=(0, 1), dtype=Dtype.CASE)
    out = TensorSpec(name="out0", source=Source.OUTPUT, ref="0", dim_map=out_map, dtype=Dtype.CASE, node="y")
    nodes = [Node("x", Op.INPUT, [], frozenset({0, 1}), Dtype.CASE),
             Node("y", Op.EXP, ["x"], frozenset({0, 1}), Dtype.CASE)]
    return Program(task="t", nodes=nodes, inputs=[x], outputs=[out], rank=2, reduce_dim=reduce_dim,
                   forward_args=["x"], scalar_args={}, init_source="", ops=["aten.exp.default"],
                   output_is_tuple=False)


def test_kinds_compare_hash_and_format_as_their_strings():
    assert Op.ADD == "add" and {"add": 1}[Op.ADD] == 1 and Op.SUM in {"sum"}
    assert f"{Op.ADD}" == "add" and str(Dtype.F32) == "f32" and "{}".format(Kind.ROWS) == "rows"
    assert "x_" + Op.SUB == "x_sub"  # node names built from an op's name


def test_program_kind_is_pointwise_only_when_every_tensor_spans_the_whole_space():
    assert _program().kind is Kind.POINTWISE and _program().kind == "pointwise"
    assert _program(out_map=(0, None)).kind is Kind.ROWS
    assert _program(reduce_dim=1).kind == "rows"


def test_describe_is_plain_json():
    summary = describe(_program())
    assert type(summary["kind"]) is str and type(summary["inputs"][0]["dtype"]) is str
    assert json.loads(json.dumps(summary))["inputs"][0] == {"name": "x", "source": "input", "ref": "x",
                                                          "dims": [0, 1], "dtype": "case"}
