"""The offline search's IR: what capture produces and codegen reads.

The IR is a list of :class:`Node` in topological order. Every tensor value spans a subset of the
*iteration space* ``S`` (the largest tensor's dimensions), recorded as ``dims``; ``dtype`` is symbolic:
``case`` (the task's dtype: the case being verified or timed), ``f32``, ``i64`` or ``bool``.

The kinds are str-valued enums so that code comparing them with plain strings (codegen, variants, the
offline run) and dicts keyed by those strings keep working, and so that they format as their values
in generated source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Tag(str, Enum):
    """A string-valued kind. ``str()`` and f-strings give the value on every Python the package supports
    (a plain ``(str, Enum)`` formats as ``Class.MEMBER`` from 3.11 on; ``StrEnum`` needs 3.11)."""

    __str__ = str.__str__
    __format__ = str.__format__


class Op(Tag):
    """A node's operation. Pointwise ops keep their ATen names: the lowering maps one onto the other."""

    INPUT = "input"
    CAST = "cast"
    WHERE = "where"
    NCOLS = "ncols"      # the reduced block's element count
    NUMEL = "numel"      # a product of iteration dims' sizes, passed in at run time
    INIT = "init"        # a constructor argument, passed in at run time
    COLUMN = "column"    # the index along one dim
    # rotate_half's slices at the half of a dim and their cat, as an index remap within the dim:
    ROLL_HALF = "roll_half"    # an input read half the dim further on, wrapping: x[(i + n // 2) % n]
    FIRST_HALF = "first_half"  # whether the index along the dim is below n // 2 (which part of the cat)
    # reductions
    SUM = "sum"
    MAX = "max"
    MIN = "min"
    ARGMAX = "argmax"
    ARGMIN = "argmin"
    # pointwise, unary
    NEG = "neg"
    EXP = "exp"
    EXP2 = "exp2"
    LOG = "log"
    LOG2 = "log2"
    LOG1P = "log1p"
    EXPM1 = "expm1"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    ABS = "abs"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    ERF = "erf"
    RELU = "relu"
    SILU = "silu"
    GELU = "gelu"
    RECIPROCAL = "reciprocal"
    SIN = "sin"
    COS = "cos"
    SIGN = "sign"
    FLOOR = "floor"
    CEIL = "ceil"
    LOGICAL_NOT = "logical_not"
    ISNAN = "isnan"
    ISINF = "isinf"
    SQUARE = "square"
    # pointwise, binary
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    POW = "pow"
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    LOGICAL_AND = "logical_and"
    LOGICAL_OR = "logical_or"
    RSUB = "rsub"
    ATAN2 = "atan2"


POINTWISE_UNARY = frozenset({
    Op.NEG, Op.EXP, Op.EXP2, Op.LOG, Op.LOG2, Op.LOG1P, Op.EXPM1, Op.SQRT, Op.RSQRT, Op.ABS, Op.SIGMOID, Op.TANH,
    Op.ERF, Op.RELU, Op.SILU, Op.GELU, Op.RECIPROCAL, Op.SIN, Op.COS, Op.SIGN, Op.FLOOR, Op.CEIL, Op.LOGICAL_NOT,
    Op.ISNAN, Op.ISINF, Op.SQUARE})
POINTWISE_BINARY = frozenset({
    Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM, Op.MINIMUM, Op.POW, Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE,
    Op.LOGICAL_AND, Op.LOGICAL_OR, Op.RSUB, Op.ATAN2})
REDUCTIONS = frozenset({Op.SUM, Op.MAX, Op.MIN, Op.ARGMAX, Op.ARGMIN})
# nodes that read along a dim by index: only the pointwise schedule computes indices per dim
REMAPS = frozenset({Op.ROLL_HALF, Op.FIRST_HALF})


class Dtype(Tag):
    """A value's dtype, symbolically: the generated kernel serves every dtype of the task."""

    CASE = "case"        # the task's dtype: the case being verified or timed
    F32 = "f32"
    I64 = "i64"
    BOOL = "bool"


class Source(Tag):
    """Where a :class:`TensorSpec`'s tensor comes from or goes to."""

    INPUT = "input"      # a forward argument
    PARAM = "param"      # self.<attr>: a parameter or buffer
    OUTPUT = "output"    # a value the Model returns
    STAGE = "stage"      # a value one stage stores for a later one


class Kind(Tag):
    """The schedule family a Program needs."""

    POINTWISE = "pointwise"
    ROWS = "rows"


class Unsupported(Exception):
    """The graph holds something the generator does not cover; ``op`` names it. ``outside`` is set when
    the whole operator is of a family the generator never writes (matmul, attention, convolution): a
    user reads that first, and the op the lowering stopped at only as detail."""

    def __init__(self, op: str, why: str = "", outside: str = ""):
        detail = f"{op}: {why}" if why else op
        super().__init__(f"{outside} (the generator stopped at {detail})" if outside else detail)
        self.op, self.why, self.outside = op, why, outside


@dataclass
class Node:
    """One IR value. ``args`` hold other Node names (str) or Python constants (wrapped in Const)."""

    name: str
    op: Op
    args: list[Any]
    dims: frozenset[int]
    dtype: Dtype
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Const:
    value: float | int | bool


@dataclass
class TensorSpec:
    """A graph input or output: how its tensor dimensions map onto the iteration space."""

    name: str                    # python identifier used in generated code
    source: Source
    ref: str                     # forward argument name, or the module attribute path
    dim_map: tuple[int | None, ...]  # per tensor dim: iteration dim, or None for a size-1 dim
    dtype: Dtype
    node: str = ""               # for outputs: the IR node stored


@dataclass
class Program:
    """What the code generator needs: IR, inputs, outputs, iteration rank and the reduced dim."""

    task: str
    nodes: list[Node]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    rank: int
    reduce_dim: int | None       # None: pointwise only; else the first of ``reduce_dims``
    forward_args: list[str]
    scalar_args: dict[str, Any]  # forward arguments that are not tensors (baked at capture)
    init_source: str
    ops: list[str]               # the ATen ops seen, for the plan and the README of a candidate
    output_is_tuple: bool
    # the reduced iteration dims: adjacent, so on contiguous tensors they read as one flattened dim
    reduce_dims: tuple[int, ...] = ()
    # reductions over different blocks of dims (a per-row norm, then the mean over rows): one kernel per
    # stage, in order; values crossing stages go through fp32 buffers. Empty: one kernel.
    stages: list[Program] = field(default_factory=list)
    # size constants (``numel`` nodes) and constructor arguments (``init`` nodes) the caller computes and
    # passes in (a stage sees only its own dims)
    scalar_params: list[str] = field(default_factory=list)
    # constructor argument -> the ModelNew attribute that holds it (``init_source`` sets it)
    init_attrs: dict[str, str] = field(default_factory=dict)
    # what shrunk shapes keep because the task's Model needs it (``knobs.relations``), for the run's notes
    shape_relations: str = ""
    # outputs whose iteration spaces differ (q and k of rotary, with fewer key heads): one pointwise
    # Program per output, all computed by one launch; this Program's inputs and outputs are their union
    parts: list[Program] = field(default_factory=list)

    @property
    def node_by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @property
    def kind(self) -> Kind:
        if self.reduce_dim is None and (self.parts or any(n.op in REMAPS for n in self.nodes)):
            return Kind.POINTWISE  # the pointwise schedule indexes broadcast inputs per dim
        if self.reduce_dim is None and all(len(s.dim_map) == self.rank and None not in s.dim_map
                                           and set(s.dim_map) == set(range(self.rank))
                                           for s in self.inputs + self.outputs):
            return Kind.POINTWISE
        return Kind.ROWS
