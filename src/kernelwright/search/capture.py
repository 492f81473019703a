"""Graph capture: ``Model.forward`` traced into ATen ops with ``make_fx``, then lowered to a small IR.

The model is built from ``get_init_inputs`` at a small shape whose knobs are distinct (so every tensor
dimension can be recognised by its size) and traced with its parameters and buffers as explicit graph
inputs. Tracing happens twice, at two different shapes: a graph whose constants change with the shape
(``x / x.shape[-1]`` baked as ``/ 13.0``) would be wrong at any other shape, so it is refused.

Constants that come from ``get_init_inputs`` (an ``eps``, a negative slope, a margin) are found the same
way: each float constructor argument is traced again with two other values, and a constant that moves
with it, as the argument itself or an affine map of it or of its reciprocal, becomes an ``init`` node: the
generated ModelNew keeps the argument it is built with and passes it to the kernel at run time. Constants
that do not move stay baked; an argument that changes the graph itself (or that the Model rejects) stays
baked too.

The IR is a list of :class:`Node` in topological order. Every tensor value spans a subset of the
*iteration space* ``S`` (the largest tensor's dimensions), recorded as ``dims``; ``dtype`` is symbolic:
``case`` (the task's dtype: the case being verified or timed), ``f32``, ``i64`` or ``bool``.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any

from kernelwright.tasks.knobs import PROBE_SIZES, element_counter, first_line, probe_shape, relations
from kernelwright.tasks.task import Task, instantiate

# Capture shapes: distinct sizes, so each dimension of each tensor maps back to one iteration dimension
# (the shrunk probe shapes, on which the knobs' inferred relations were checked).
CAPTURE_SIZES = PROBE_SIZES
# Above this many elements in the largest input, a capture shape is traced on the meta device.
REAL_TRACE_ELEMENTS = 2**24

POINTWISE_UNARY = {"neg", "exp", "exp2", "log", "log2", "log1p", "expm1", "sqrt", "rsqrt", "abs", "sigmoid", "tanh",
                   "erf", "relu", "silu", "gelu", "reciprocal", "sin", "cos", "sign", "floor", "ceil", "logical_not",
                   "isnan", "isinf", "square"}
POINTWISE_BINARY = {"add", "sub", "mul", "div", "maximum", "minimum", "pow", "eq", "ne", "lt", "le", "gt", "ge",
                    "logical_and", "logical_or", "rsub", "atan2"}
REDUCTIONS = {"sum", "max", "min", "argmax", "argmin"}
# ops that only re-describe a value's shape: the generated kernel broadcasts implicitly
VIEWS = {"view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "expand", "alias", "clone", "contiguous",
         "broadcast_in_dim", "detach", "lift_fresh_copy", "expand_copy", "view_copy", "unsqueeze_copy",
         "squeeze_copy"}


# What the offline generator covers, in a user's words: every refusal of a whole family says it.
COVERS = "elementwise chains, reductions over one dim or a block of dims, softmax-shaped rows, losses"
# ATen ops of operators that are matmul-, attention- or convolution-shaped: the generator writes none of them
CONTRACTIONS = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "dot", "mv", "addmv", "einsum", "linear",
                "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
                "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention"}


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
    op: str                      # 'input', 'const', a pointwise op, a reduction, 'cast', 'where', 'ncols'
    args: list[Any]
    dims: frozenset[int]
    dtype: str                   # 'case' | 'f32' | 'i64' | 'bool'
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Const:
    value: float | int | bool


@dataclass
class TensorSpec:
    """A graph input or output: how its tensor dimensions map onto the iteration space."""

    name: str                    # python identifier used in generated code
    source: str                  # 'input' (forward argument), 'param' (self.<attr>) or 'output'
    ref: str                     # forward argument name, or the module attribute path
    dim_map: tuple[int | None, ...]  # per tensor dim: iteration dim, or None for a size-1 dim
    dtype: str
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

    @property
    def node_by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @property
    def kind(self) -> str:
        if self.reduce_dim is None and all(len(s.dim_map) == self.rank and None not in s.dim_map
                                           and set(s.dim_map) == set(range(self.rank))
                                           for s in self.inputs + self.outputs):
            return "pointwise"
        return "rows"


def capture_shape(task: Task, sizes: tuple[int, ...]) -> dict[str, int]:
    """The knobs at one capture row, keeping what the task's Model needs (a multiple, a tie, a fixed knob)."""
    if len(task.knobs) > len(sizes):
        raise Unsupported("shape knobs", f"more than {len(sizes)} shape knobs")
    return probe_shape(task, sizes)


def _decompositions():
    import torch
    from torch._decomp import core_aten_decompositions, get_decompositions

    aten = torch.ops.aten
    table = dict(core_aten_decompositions())
    # composite ops lowered here instead, so no decomposition bakes a dimension's size into a constant
    for keep in (aten.mean.dim, aten.mean.default, aten.var.correction, aten.var.dim, aten.var_mean.correction,
                 aten.std.correction, aten.native_layer_norm.default, aten.gelu.default, aten.silu.default,
                 aten.sigmoid.default, aten.tanh.default, aten.argmax.default, aten.argmin.default):
        table.pop(keep, None)
    # activations and losses that torch keeps as single ATen ops lower to where/clamp/exp/expm1 chains
    table.update(get_decompositions([aten._softmax, aten._log_softmax, aten.linalg_vector_norm, aten.logsumexp,
                                     aten.softplus, aten.hardtanh, aten.mse_loss, aten.rms_norm, aten.leaky_relu,
                                     aten.elu, aten.celu, aten.hardsigmoid, aten.hardswish, aten.mish,
                                     aten.softshrink, aten.hardshrink, aten.smooth_l1_loss, aten.huber_loss]))
    return table


def trace(task: Task, sizes: tuple[int, ...], init_override: dict[int, Any] | None = None):
    """make_fx graph of Model.forward at one shape, with params/buffers as leading inputs;
    ``init_override``: constructor arguments (by position) replaced. A shape a fixed knob keeps large is
    traced on the meta device (the graph is the same; HingeLoss's 32768 x 32768 took 13 GB and 80 s for
    real), and for real where the Model cannot run there."""
    knobs = capture_shape(task, sizes)
    if element_counter(task)(knobs) > REAL_TRACE_ELEMENTS:
        try:
            return _trace(task, knobs, init_override, meta=True)
        except Exception:  # noqa: BLE001 -- data-dependent code (.item(), numpy) needs real tensors
            pass
    return _trace(task, knobs, init_override, meta=False)


def _trace(task: Task, knobs: dict[str, int], init_override: dict[int, Any] | None, *, meta: bool):
    import contextlib

    import torch
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.func import functional_call

    module = task.load()
    with torch.device("meta") if meta else contextlib.nullcontext():
        inputs, init_inputs = instantiate(module, knobs)
        init_inputs = list(init_inputs)
        for i, value in (init_override or {}).items():
            init_inputs[i] = value
        low = next((d for d in task.dtypes if d != torch.float32), torch.float32)
        torch.manual_seed(0)
        model = module.Model(*init_inputs).to(low).eval()
    inputs = [x.to(low) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    tensor_positions = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor)]

    def forward(state, *tensors):
        args = list(inputs)
        for i, t in zip(tensor_positions, tensors):
            args[i] = t
        return functional_call(model, state, tuple(args))

    with torch.no_grad():
        graph = make_fx(forward, decomposition_table=_decompositions())(state, *[inputs[i] for i in tensor_positions])
    return graph, model, inputs, tensor_positions, list(state), low, init_inputs


def _signature(graph) -> list:
    """Op sequence and scalar constants: what must not change between two capture shapes (NaN compares
    equal to NaN here: a NaN constant is the same constant at both shapes)."""
    out = []
    for n in graph.graph.nodes:
        if n.op == "call_function":
            scalars = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
            out.append((str(n.target), [repr(round(float(s), 9)) for s in scalars]))
    return out


def capture(task: Task) -> Program:
    """Trace the task's Model and lower it to the IR; raises :class:`Unsupported` naming the op."""
    graph = _trace_or_refuse(task, CAPTURE_SIZES[0])
    try:
        _distinct_sizes(task, graph[0])
        program = _capture(task, *graph)
    except Unsupported as exc:
        family = _outside_family(graph[0])
        if family and not exc.outside:
            raise Unsupported(exc.op, exc.why, outside=family) from None
        raise
    program.shape_relations = relations(task).note(task)
    return program


def _distinct_sizes(task: Task, graph) -> None:
    """Dimensions are told apart by their sizes; knobs held equal or fixed by an inferred relation can
    leave two dimensions of one size, and then which one a smaller input spans is a guess."""
    rel = relations(task)
    space = [s for s in _iteration_space(graph) if s > 1]
    if rel and len(set(space)) < len(space):
        kept = ", ".join(rel.sentences(task))
        raise Unsupported("dimensions of one size", f"shrunk shapes keep {kept}, which leaves dimensions of one "
                                                    f"size in {tuple(_iteration_space(graph))} that cannot be "
                                                    "told apart")


def _outside_family(graph) -> str:
    """The user's sentence for a graph holding a matmul, attention or convolution op; '' for any other.
    Checked only after a refusal: a chain the generator does lower is never refused for a family name."""
    packets = {str(n.target).split(".")[1] for n in graph.graph.nodes
               if n.op == "call_function" and str(n.target).startswith("aten.")}
    found = sorted(packets & CONTRACTIONS)
    if not found:
        return ""
    return (f"matmul/attention/convolution (here `aten.{'`, `aten.'.join(found)}`) is outside what the offline "
            f"agent generates ({COVERS})")


def _capture(task: Task, graph, model, inputs, tensor_positions, state_names, low, init_inputs) -> Program:
    sizes: dict = {}
    if task.knobs:
        other = _trace_or_refuse(task, CAPTURE_SIZES[1])[0]
        if _signature(graph) != _signature(other):
            sizes = _size_constants(graph, other)
    forward_params = list(inspect.signature(model.forward).parameters)
    init_params = _init_params(model)
    from_init = _init_constants(task, graph, init_inputs, init_params)
    return _lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params, sizes, from_init)


def _init_params(model) -> list[str]:
    """Names of Model.__init__'s positional parameters, in order (get_init_inputs fills them)."""
    params = list(inspect.signature(type(model).__init__).parameters.values())[1:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _graph_scalars(graph) -> tuple[list[str], list[tuple[tuple[str, int], float]]]:
    """The op sequence, and every scalar argument of a call keyed by (node name, argument position)."""
    ops, scalars = [], []
    for n in graph.graph.nodes:
        if n.op == "call_function":
            ops.append(str(n.target))
            scalars += [((n.name, j), float(a)) for j, a in enumerate(n.args)
                        if isinstance(a, (int, float)) and not isinstance(a, bool)]
    return ops, scalars


def _init_constants(task: Task, graph, init_inputs: list, init_params: list[str]) -> dict[tuple[str, int], dict]:
    """(node, argument position) -> how that constant follows a float constructor argument: ``param``,
    and ``scale``/``offset``/``inverse`` with constant = scale * v + offset (v, or 1/v when inverse)."""
    import math

    base_ops, base = _graph_scalars(graph)
    found: dict[tuple[str, int], dict] = {}
    for i, value in enumerate(init_inputs):
        if type(value) is not float or not math.isfinite(value) or i >= len(init_params):
            continue
        step = abs(value) or 1.0
        samples = (value + 0.5 * step, value + 1.25 * step)
        others = []
        for sample in samples:
            try:
                ops, scalars = _graph_scalars(trace(task, CAPTURE_SIZES[0], {i: sample})[0])
            except Exception:  # noqa: BLE001 -- the Model rejects the value: the argument stays baked
                break
            if ops != base_ops or len(scalars) != len(base):
                break  # the value changes the graph itself: it stays baked
            others.append(scalars)
        if len(others) != len(samples):
            continue
        for (key, c0), (_, c1), (_, c2) in zip(base, *others):
            if _same(c0, c1) and _same(c0, c2):
                continue
            relation = _affine((value, *samples), (c0, c1, c2))
            if relation is None or key in found:
                raise Unsupported("constructor argument", f"`{init_params[i]}` = {value} enters the graph as "
                                  f"{c0} in a way the generator cannot compute at run time")
            found[key] = {"param": init_params[i], **relation}
    return found


def _same(x: float, y: float) -> bool:
    return x == y or (x != x and y != y)


def _affine(xs: tuple[float, ...], cs: tuple[float, ...]) -> dict | None:
    """scale, offset and inverse with c = scale * x + offset (or scale / x + offset) at every sample."""
    for inverse in (False, True):
        if inverse and 0.0 in xs:
            continue
        us = [1.0 / x if inverse else x for x in xs]
        scale = _nice((cs[1] - cs[0]) / (us[1] - us[0]))
        offset = _nice(cs[0] - scale * us[0], near=max(abs(c) for c in cs))
        tol = 1e-9 * max(abs(c) for c in cs)
        if all(abs(scale * u + offset - c) <= tol for u, c in zip(us, cs)):
            return {"scale": scale, "offset": offset, "inverse": inverse}
    return None


def _nice(x: float, near: float = 1.0) -> float:
    """x rounded to the shortest decimal that is within 1e-9 of it (relative to ``near`` for an offset
    that is a rounding residue): 1.0000000000000002 is 1, 1e-22 beside 1e-6 is 0."""
    scale = max(abs(x), abs(near))
    for digits in range(0, 16):
        r = round(x, digits)
        if abs(r - x) <= 1e-9 * scale:
            return r
    return x


def _trace_or_refuse(task: Task, sizes: tuple[int, ...]):
    """A Model that cannot even be built or run at other shapes cannot be verified at them either."""
    try:
        return trace(task, sizes)
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001 - the task's own code failed: say so, in one sentence
        raise Unsupported("shrunk shapes", f"the task's Model fails at knobs {capture_shape(task, sizes)} "
                                           f"({first_line(exc)}) and no tie, multiple or fixed knob inferred "
                                           "from the task avoids it") from None


def _iteration_space(graph) -> tuple[int, ...]:
    """The largest tensor's shape: every other tensor's dimensions map onto it."""
    import torch

    tensors = [n.meta["val"] for n in graph.graph.nodes if n.op in ("placeholder", "call_function")
               and isinstance(n.meta.get("val"), torch.Tensor)]
    if not tensors:
        raise Unsupported("no tensors", "the model has no tensor inputs")
    return tuple(max(tensors, key=lambda t: (t.numel(), t.dim())).shape)


def _size_constants(graph, other) -> dict[tuple[str, int], tuple[tuple[int, ...], bool]]:
    """Scalars that differ between the two capture shapes but are, at both, the product of the same
    iteration dims' sizes (or its reciprocal): ``batchmean`` divides by the batch. They become run-time
    values; any other difference is a constant the graph baked from one shape, which is refused."""
    import math

    ours = [n for n in graph.graph.nodes if n.op == "call_function"]
    theirs = [n for n in other.graph.nodes if n.op == "call_function"]
    if [str(n.target) for n in ours] != [str(n.target) for n in theirs]:
        raise Unsupported("shape-dependent constant", "the traced graph changes with the input shape")
    space_a, space_b = _iteration_space(graph), _iteration_space(other)
    subsets = [tuple(k for k in range(len(space_a)) if mask >> k & 1) for mask in range(1, 1 << len(space_a))]
    found = {}
    for a, b in zip(ours, theirs):
        for j, (x, y) in enumerate(zip(a.args, b.args)):
            scalar = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
            if not (scalar(x) and scalar(y)) or repr(round(float(x), 9)) == repr(round(float(y), 9)):
                continue
            match = None
            for dims in subsets:
                pa, pb = math.prod(space_a[k] for k in dims), math.prod(space_b[k] for k in dims)
                if x == pa and y == pb:
                    match = (dims, False)
                elif math.isclose(x, 1 / pa, rel_tol=1e-9) and math.isclose(y, 1 / pb, rel_tol=1e-9):
                    match = (dims, True)
                if match:
                    break
            if match is None:
                raise Unsupported(str(a.target), f"a shape-dependent constant: {x} at one shape, {y} at another, "
                                                 "and no product of dimension sizes")
            found[(a.name, j)] = match
    return found


def _init_source(model, keep: list[str]) -> tuple[str, dict[str, str]]:
    """Model.__init__'s source, and for each constructor argument in ``keep`` the attribute that holds it:
    one ``self.<attr> = <argument>`` it already has, or a line that stores it, added at the end."""
    import ast

    source = textwrap.dedent(inspect.getsource(type(model).__init__))
    fn = ast.parse(source).body[0]
    assigned: dict[str, str] = {}  # argument -> attribute, from plain `self.x = argument` statements
    written = set()
    for stmt in ast.walk(fn):
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            for t in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    written.add(t.attr)
                    if isinstance(stmt.value, ast.Name) and stmt.value.id in keep:
                        assigned.setdefault(stmt.value.id, t.attr)
    indent = " " * fn.body[0].col_offset
    attrs = {}
    for param in keep:
        if param in assigned:
            attrs[param] = assigned[param]
            continue
        attr = param if param not in written else f"_kw_{param}"
        # read by the kernel at run time: a model built with another value computes with that value
        source = source.rstrip("\n") + f"\n{indent}self.{attr} = {param}\n"
        attrs[param] = attr
    return source, attrs


def _lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params,
           size_constants=None, from_init=None) -> Program:
    import torch

    size_constants = size_constants or {}
    from_init = from_init or {}
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    output_node = next(n for n in graph.graph.nodes if n.op == "output")
    space = _iteration_space(graph)
    rank = len(space)

    def dim_map(shape) -> tuple[int | None, ...]:
        mapping, k = [], 0
        for size in shape:
            if size == 1:
                mapping.append(None)
                continue
            while k < rank and space[k] != size:
                k += 1
            if k == rank:
                raise Unsupported("reshape", f"a tensor of shape {tuple(shape)} does not map onto {space} "
                                             "(dimensions merged, split or permuted)")
            mapping.append(k)
            k += 1
        return tuple(mapping)

    def sym_dtype(dt) -> str:
        if dt == torch.bool:
            return "bool"
        if not dt.is_floating_point:
            return "i64"
        if dt == low:
            return "case"
        if dt == torch.float32:
            return "f32"
        raise Unsupported(f"dtype {dt}", "only the task dtype and float32 are generated")

    nodes: list[Node] = []
    names: dict[Any, Any] = {}   # fx node -> IR name (or a tuple of names for multi-output ops)
    used: set[str] = set()

    def fresh(base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base).strip("_") or "v"
        if base[0].isdigit():
            base = "v_" + base
        name, i = base, 1
        while name in used or name in _RESERVED:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        return name

    def add(op, args, dims, dtype, base, **attrs) -> str:
        name = fresh(base)
        nodes.append(Node(name, op, list(args), frozenset(dims), dtype, attrs))
        return name

    by_name = lambda: {n.name: n for n in nodes}  # noqa: E731
    reductions_dims: set[int] = set()

    specs: list[TensorSpec] = []
    n_state = len(state_names)
    for i, ph in enumerate(placeholders):
        val = ph.meta["val"]
        if i < n_state:
            source, ref = "param", state_names[i]
            base = ref.replace(".", "_")
        else:
            source, ref = "input", forward_params[tensor_positions[i - n_state]]
            base = ref
        try:
            mapping = dim_map(val.shape)
        except Unsupported:
            raise Unsupported("inputs that do not broadcast together",
                              f"`{ref}` of shape {tuple(val.shape)} does not fit the iteration space {space}") from None
        name = add("input", [], {m for m in mapping if m is not None}, sym_dtype(val.dtype), base)
        specs.append(TensorSpec(name=name, source=source, ref=ref, dim_map=mapping, dtype=sym_dtype(val.dtype)))
        names[ph] = name

    def arg(a):
        if isinstance(a, torch.fx.Node):
            return names[a]
        if isinstance(a, (bool, int, float)):
            return Const(a)
        raise Unsupported("non-scalar argument", repr(a)[:60])

    def dims_of(a) -> frozenset:
        return by_name()[a].dims if isinstance(a, str) else frozenset()

    def reduce_axis(val_in, dims_arg) -> tuple[int, ...]:
        """The reduced iteration dims; None or [] reduce every dim of the tensor. They must be adjacent
        in the iteration space (a LayerNorm over (C, H, W), a loss over everything): one flattened row."""
        shape = tuple(val_in.shape)
        if dims_arg is None or (isinstance(dims_arg, (list, tuple)) and len(dims_arg) == 0):
            dims = list(range(len(shape)))
        else:
            dims = list(dims_arg) if isinstance(dims_arg, (list, tuple)) else [dims_arg]
        mapping = dim_map(shape)
        group = sorted({mapping[d % len(shape)] for d in dims} - {None}) if shape else []
        if not group:
            raise Unsupported("reduction over a size-1 dimension")
        if group != list(range(group[0], group[-1] + 1)):
            raise Unsupported("reduction over non-adjacent dimensions",
                              f"dims {group} of the iteration space are not one contiguous block")
        reductions_dims.add(tuple(group))
        return tuple(group)

    def _lower_node(n) -> None:
        target = n.target
        opname = getattr(target, "__name__", str(target))
        packet = opname.split(".")[0]
        val = n.meta.get("val")
        if target is __import__("operator").getitem:
            names[n] = names[n.args[0]][n.args[1]]
            return
        a = [arg(x) if not isinstance(x, (list, tuple, torch.dtype, torch.device, torch.layout, str, type(None)))
             else x for x in n.args]
        for j, x in enumerate(a):
            if (n.name, j) in size_constants:  # a dimension's size, read at run time
                dims, inverse = size_constants[(n.name, j)]
                a[j] = add("numel", [], (), "f32", "size", of=dims, inverse=inverse)
            elif (n.name, j) in from_init and not (packet == "pow" and j == 1):
                # a constructor argument, read at run time (a pow's exponent stays baked: x ** e with e
                # unknown is exp2(e * log2(x)), wrong for a negative x)
                rel = from_init[(n.name, j)]
                a[j] = add("init", [], (), "f32", rel["param"], **rel)
        out_dims = lambda: {m for m in dim_map(val.shape) if m is not None}  # noqa: E731
        dt = sym_dtype(val.dtype) if isinstance(val, torch.Tensor) else None
        base = n.name
        if packet in VIEWS:
            names[n] = a[0]
            return
        if packet in ("_to_copy", "convert_element_type", "to"):
            target_dtype = n.kwargs.get("dtype", n.args[1] if len(n.args) > 1 else None)
            if target_dtype is None:
                names[n] = a[0]
                return
            names[n] = add("cast", [a[0]], dims_of(a[0]), sym_dtype(target_dtype), base)
            return
        if packet in ("scalar_tensor", "full") and isinstance(val, torch.Tensor) and val.numel() == 1:
            names[n] = a[0] if packet == "scalar_tensor" else a[1]
            return
        if packet in POINTWISE_UNARY or packet in POINTWISE_BINARY:
            attrs = {}
            if packet == "gelu":
                attrs["approximate"] = n.kwargs.get("approximate", "none")
            if packet in ("add", "sub") and n.kwargs.get("alpha", 1) != 1:
                attrs["alpha"] = n.kwargs["alpha"]
            if packet == "div" and n.kwargs.get("rounding_mode"):
                raise Unsupported(str(target), "rounding division")
            args = [x for x in a if isinstance(x, (str, Const))]
            names[n] = add(packet, args, out_dims(), dt, base, **attrs)
            return
        if packet in ("clamp", "clamp_min", "clamp_max", "hardtanh"):
            lo_at = 1 if packet in ("clamp", "clamp_min", "hardtanh") and len(n.args) > 1 else None
            hi_at = 2 if packet in ("clamp", "hardtanh") and len(n.args) > 2 else 1 if packet == "clamp_max" else None
            lo = a[lo_at] if lo_at else n.kwargs.get("min")
            hi = a[hi_at] if hi_at else n.kwargs.get("max")
            v = a[0]
            if lo is not None:
                v = add("maximum", [v, lo if isinstance(lo, (str, Const)) else arg(lo)], out_dims(), dt, base + "_lo")
            if hi is not None:
                v = add("minimum", [v, hi if isinstance(hi, (str, Const)) else arg(hi)], out_dims(), dt, base + "_hi")
            names[n] = v
            return
        if packet == "where":
            names[n] = add("where", [a[0], a[1], a[2]], out_dims(), dt, base)
            return
        if packet in ("sum", "amax", "amin", "mean"):
            src = n.args[0].meta["val"]
            dims_arg = n.args[1] if len(n.args) > 1 else None
            if isinstance(dims_arg, (list, tuple)) and len(dims_arg) == 0:
                dims_arg = None
            d = reduce_axis(src, dims_arg)
            kind = {"sum": "sum", "mean": "sum", "amax": "max", "amin": "min"}[packet]
            kept = out_dims() - set(d)
            v = add(kind, [a[0]], kept, dt if packet != "mean" else "f32", base, dim=d)
            if packet == "mean":
                v = add("div", [v, add("ncols", [], (), "f32", "n")], kept, "f32", base + "_mean")
                if dt != "f32":
                    v = add("cast", [v], kept, dt, base + "_cast")
            names[n] = v
            return
        if packet in ("argmax", "argmin", "max", "min") and len(n.args) > 1:
            src = n.args[0].meta["val"]
            d = reduce_axis(src, [n.args[1]])
            if packet in ("argmax", "argmin"):
                names[n] = add(packet, [a[0]], set(dim_map(val.shape)) - {None, *d}, "i64", base, dim=d)
            else:  # max.dim / min.dim: (values, indices)
                values = add(packet, [a[0]], set(dim_map(val[0].shape)) - {None, *d}, sym_dtype(val[0].dtype),
                             base + "_values", dim=d)
                indices = add("arg" + packet, [a[0]], set(dim_map(val[1].shape)) - {None, *d}, "i64",
                              base + "_indices", dim=d)
                names[n] = (values, indices)
            return
        if packet in ("var", "var_mean", "std"):
            src = n.args[0].meta["val"]
            dims_arg = n.args[1] if len(n.args) > 1 else None
            d = reduce_axis(src, dims_arg)
            correction = n.kwargs.get("correction", 1)
            correction = 1 if correction is None else correction
            if "unbiased" in n.kwargs:
                correction = 1 if n.kwargs["unbiased"] else 0
            vals = val if isinstance(val, (tuple, list)) else (val,)
            red_dims = {m for m in dim_map(vals[0].shape) if m is not None} - set(d)
            mean, var = _variance(add, a[0], dims_of(a[0]), red_dims, d, correction, base)
            result = add("sqrt", [var], red_dims, "f32", base + "_std") if packet == "std" else var
            cast = lambda v: add("cast", [v], red_dims, sym_dtype(vals[0].dtype), base + "_cast") \
                if sym_dtype(vals[0].dtype) != "f32" else v  # noqa: E731
            names[n] = (cast(result), cast(mean)) if packet == "var_mean" else cast(result)
            return
        if packet == "native_layer_norm":
            x, normalized_shape, weight, bias, _ = n.args
            eps = a[4]
            xval = x.meta["val"]
            d = reduce_axis(xval, list(range(-len(normalized_shape), 0)))
            x_dims = dims_of(names[x])
            red = x_dims - set(d)
            h = names[x]
            if sym_dtype(xval.dtype) != "f32":
                h = add("cast", [h], x_dims, "f32", "h")
            mean, var = _variance(add, h, x_dims, red, d, 0, "ln")
            rstd = add("rsqrt", [add("add", [var, eps], red, "f32", "var_eps")], red, "f32", "rstd")
            y = add("mul", [add("sub", [h, mean], x_dims, "f32", "centered"), rstd], x_dims, "f32", "normed")
            if weight is not None:
                y = add("mul", [y, names[weight]], x_dims, "f32", "scaled")
            if bias is not None:
                y = add("add", [y, names[bias]], x_dims, "f32", "shifted")
            out_dt = sym_dtype(val[0].dtype)
            if out_dt != "f32":
                y = add("cast", [y], x_dims, out_dt, "y")
            names[n] = (y, mean, rstd)
            return
        if packet == "gather":
            # out[r] = src[r, index[r]] over the indexed dim: a sum of src where the column equals the
            # index, which the row kernel computes while it streams the row anyway (cross-entropy)
            src, gdim, index = n.args[0], n.args[1], n.args[2]
            d = reduce_axis(src.meta["val"], [gdim])
            if index.meta["val"].shape[gdim] != 1 or len(d) != 1:
                raise Unsupported(str(target), "a gather of more than one element per row")
            column = add("column", [], set(d), "i64", "col_index", dim=d[0])
            hit = add("eq", [column, names[index]], dims_of(names[src]) | set(d), "bool", "hit")
            names[n] = _picked(names[src], hit, d, base)
            return
        if packet == "native_batch_norm":
            names[n] = _batch_norm(n, a[7], names, dims_of, reduce_axis, add, sym_dtype, base)
            return
        raise Unsupported(str(target))

    def _picked(name: str, hit: str, d: tuple[int, ...], base: str) -> str:
        """``name`` at the column ``hit`` marks, one value per row. A value that waits for no reduction is
        picked by a one-hot sum, read in the first pass with the row's other level-1 reductions; a
        pointwise value of reductions (log-softmax's x - max - log(sum exp)) is recomputed from its picked
        operands, which gives the same number because exactly one column is picked. Cross-entropy thus
        reads its logits once (online max and sum of exp beside the target's logit), where picking the
        log-softmax itself would wait for its sum and read the row again."""
        node = by_name()[name]
        if not set(d) & node.dims:  # a row value: the same at every column
            return name
        if _free(name):
            picked = add("where", [hit, name, Const(0.0)], node.dims, node.dtype, "picked")
            return add("sum", [picked], node.dims - set(d), node.dtype, base, dim=d)
        args = [_picked(a, hit, d, base + "_arg") if isinstance(a, str) else a for a in node.args]
        return add(node.op, args, node.dims - set(d), node.dtype, base + "_" + node.op, **node.attrs)

    def _free(name: str) -> bool:
        """No reduction behind this value."""
        node = by_name()[name]
        return node.op not in REDUCTIONS and all(_free(a) for a in node.args if isinstance(a, str))

    ops_seen: list[str] = []
    for n in graph.graph.nodes:
        if n.op != "call_function" or not n.users:  # dead values (BatchNorm's unused empty() workspace)
            continue
        target = n.target
        ops_seen.append(str(target))
        try:
            _lower_node(n)
        except Unsupported as exc:
            if exc.op == "reshape":  # name the op whose output did not map, not the mapping
                raise Unsupported(str(target), exc.why) from None
            raise


    outputs_raw = output_node.args[0]
    output_is_tuple = True
    flat = list(outputs_raw) if isinstance(outputs_raw, (list, tuple)) else [outputs_raw]
    # make_fx wraps a single returned tensor in a list; the model's own return decides the structure
    with torch.no_grad():
        ret = model(*inputs)
    output_is_tuple = isinstance(ret, (tuple, list))
    outputs = []
    for i, fx_out in enumerate(flat):
        if not isinstance(fx_out, torch.fx.Node):
            raise Unsupported("non-tensor output")
        val = fx_out.meta["val"]
        ir = names[fx_out]
        if isinstance(ir, Const):
            raise Unsupported("constant output")
        outputs.append(TensorSpec(name=f"out{i}", source="output", ref=str(i), dim_map=dim_map(val.shape),
                                  dtype=sym_dtype(val.dtype), node=ir))
    scalar_args = {forward_params[i]: x for i, x in enumerate(inputs) if not isinstance(x, torch.Tensor)}
    kept = list(dict.fromkeys(n.attrs["param"] for n in nodes if n.op == "init"))
    init_source, init_attrs = _init_source(model, kept)
    program = Program(task=task.name, nodes=nodes, inputs=specs, outputs=outputs, rank=rank, reduce_dim=None,
                      forward_args=forward_params, scalar_args=scalar_args, init_source=init_source,
                      ops=sorted(set(ops_seen)), output_is_tuple=output_is_tuple, init_attrs=init_attrs)
    if len(reductions_dims) > 1:
        program.stages = split_stages(program)
        # the first stage's block, in this program's numbering: the first reduction starts stage 0
        group = next(tuple(n.attrs["dim"]) for n in nodes if n.op in REDUCTIONS)
    else:
        group = next(iter(reductions_dims), ())
    program.reduce_dims = tuple(group)
    program.reduce_dim = group[0] if group else None
    return program


def split_stages(program: Program) -> list[Program]:
    """One Program per block of reduced dims, in dependency order. Values with no reduction behind them
    are recomputed where needed; a value a later stage needs from an earlier one is stored in its own
    dtype and loaded back. Each stage gets its own compact iteration space."""
    by_name = program.node_by_name
    free: dict[str, bool] = {}
    for n in program.nodes:
        free[n.name] = n.op not in REDUCTIONS and all(free[a] for a in n.args if isinstance(a, str))
    stage: dict[str, int] = {}
    groups: dict[int, tuple[int, ...]] = {}
    for n in program.nodes:
        if free[n.name]:
            continue
        s = max((stage[a] for a in n.args if isinstance(a, str) and not free[a]), default=0)
        if n.op in REDUCTIONS:
            g = tuple(n.attrs["dim"])
            while groups.get(s, g) != g:
                s += 1
            groups[s] = g
        stage[n.name] = s
    count = max(groups) + 1
    where = lambda name: 0 if free[name] else stage[name]  # noqa: E731
    crossing: dict[int, list[str]] = {t: [] for t in range(count)}  # values stage t stores for later ones
    for n in program.nodes:
        for a in n.args:
            if isinstance(a, str) and not free[n.name] and not free[a] and stage[a] < stage[n.name] \
                    and a not in crossing[stage[a]]:
                crossing[stage[a]].append(a)
    specs_by_node = {s.name: s for s in program.inputs}
    stages = []
    for t in range(count):
        finals = [o for o in program.outputs if where(o.node) == t]
        roots = [o.node for o in finals] + crossing[t]
        keep: list[str] = []
        loaded: list[str] = []

        def visit(name: str) -> None:
            if name in keep or name in loaded:
                return
            if not free[name] and stage[name] < t:
                loaded.append(name)
                return
            for a in by_name[name].args:
                if isinstance(a, str):
                    visit(a)
            keep.append(name)

        for r in roots:
            visit(r)
        order = {n.name: i for i, n in enumerate(program.nodes)}
        members = sorted(keep + loaded, key=order.get)
        used = set(groups[t])
        for name in members:
            used |= by_name[name].dims
        renumber = {k: i for i, k in enumerate(sorted(used))}
        nodes, inputs, outputs, numels = [], [], [], []
        for name in members:
            n = by_name[name]
            dims = frozenset(renumber[k] for k in n.dims)
            if name in loaded:  # stored in its own dtype: already rounded where the model rounds
                dtype = n.dtype
                nodes.append(Node(name, "input", [], dims, dtype))
                inputs.append(TensorSpec(name=name, source="stage", ref=name, dim_map=tuple(sorted(dims)),
                                         dtype=dtype))
                continue
            attrs = dict(n.attrs)
            if "dim" in attrs and n.op in REDUCTIONS:
                attrs["dim"] = tuple(renumber[k] for k in attrs["dim"])
            elif "dim" in attrs:
                attrs["dim"] = renumber[attrs["dim"]]
            if n.op in ("numel", "init"):
                numels.append(name)
            nodes.append(Node(name, n.op, list(n.args), dims, n.dtype, attrs))
            if n.op == "input":
                spec = specs_by_node[name]
                inputs.append(TensorSpec(name=spec.name, source=spec.source, ref=spec.ref, dtype=spec.dtype,
                                         dim_map=tuple(None if k is None else renumber[k] for k in spec.dim_map)))
        for o in finals:
            outputs.append(TensorSpec(name=o.name, source="output", ref=o.ref, dtype=o.dtype, node=o.node,
                                      dim_map=tuple(None if k is None else renumber[k] for k in o.dim_map)))
        for name in crossing[t]:
            n = by_name[name]
            dtype = n.dtype
            outputs.append(TensorSpec(name=name, source="stage", ref=name, dtype=dtype, node=name,
                                      dim_map=tuple(sorted(renumber[k] for k in n.dims))))
        group = tuple(renumber[k] for k in groups[t])
        stages.append(Program(task=program.task, nodes=nodes, inputs=inputs, outputs=outputs, rank=len(renumber),
                              reduce_dim=group[0], forward_args=program.forward_args, scalar_args={},
                              init_source="", ops=program.ops, output_is_tuple=True, reduce_dims=group,
                              scalar_params=numels))
    return stages


def _batch_norm(n, eps, names, dims_of, reduce_axis, add, sym_dtype, base):
    """native_batch_norm, as ``Model.eval()`` runs it: with running statistics a per-channel affine map;
    with batch statistics (``InstanceNorm``, which views (N, C, *S) as (1, N*C, *S)) a normalisation over
    the trailing spatial dims of the original tensor, one row per (n, c)."""
    x, weight, bias, running_mean, running_var, training, _momentum, _ = n.args
    xval = x.meta["val"]
    h = names[x]
    x_dims = dims_of(h)
    if sym_dtype(xval.dtype) != "f32":
        h = add("cast", [h], x_dims, "f32", "h")
    if not training and running_mean is not None and running_var is not None:
        rstd = add("rsqrt", [add("add", [names[running_var], eps], dims_of(names[running_var]), "f32",
                                 "var_eps")], dims_of(names[running_var]), "f32", "rstd")
        y = add("mul", [add("sub", [h, names[running_mean]], x_dims, "f32", "centered"), rstd], x_dims, "f32",
                "normed")
    else:
        source = x.args[0].meta["val"] if getattr(x, "target", None) is not None and \
            "view" in str(x.target) else xval
        spatial = xval.dim() - 2
        merged = tuple(source.shape[:source.dim() - spatial])
        import math
        if xval.shape[0] != 1 or source.dim() < spatial + 1 or math.prod(merged) != xval.shape[1] or \
                tuple(source.shape[source.dim() - spatial:]) != tuple(xval.shape[2:]):
            raise Unsupported(str(n.target), "batch statistics over the batch and spatial dims together "
                                             "(non-adjacent dimensions)")
        d = reduce_axis(source, list(range(-spatial, 0)))
        mean, var = _variance(add, h, x_dims, x_dims - set(d), d, 0, "bn")
        rstd = add("rsqrt", [add("add", [var, eps], x_dims - set(d), "f32", "var_eps")], x_dims - set(d),
                   "f32", "rstd")
        y = add("mul", [add("sub", [h, mean], x_dims, "f32", "centered"), rstd], x_dims, "f32", "normed")
        if weight is not None or bias is not None:
            raise Unsupported(str(n.target), "an affine map after batch statistics")
    if weight is not None:
        y = add("mul", [y, names[weight]], x_dims, "f32", "scaled")
    if bias is not None:
        y = add("add", [y, names[bias]], x_dims, "f32", "shifted")
    out_dt = sym_dtype(n.meta["val"][0].dtype)
    if out_dt != "f32":
        y = add("cast", [y], x_dims, out_dt, "y")
    return (y, None, None)


def _variance(add, x, x_dims, red_dims, d, correction, base):
    """mean = sum(x)/n; var = sum((x - mean)^2) / (n - correction): two reductions, fp32."""
    n = add("ncols", [], (), "f32", "n")
    total = add("sum", [x], red_dims, "f32", base + "_sum", dim=d)
    mean = add("div", [total, n], red_dims, "f32", base + "_mean")
    dev = add("sub", [x, mean], x_dims, "f32", base + "_dev")
    sq = add("mul", [dev, dev], x_dims, "f32", base + "_sq")
    ss = add("sum", [sq], red_dims, "f32", base + "_ss", dim=d)
    denom = add("sub", [n, Const(float(correction))], (), "f32", base + "_dof") if correction else n
    var = add("div", [ss, denom], red_dims, "f32", base + "_var")
    return mean, var


# names the generated kernel uses for its own variables
_RESERVED = {"rows", "cols", "row_mask", "col_mask", "mask", "o", "i", "start", "block", "n_rows", "n_cols",
             "inner", "BLOCK", "ROWS", "ONE_PASS", "tl", "triton", "torch", "n_blocks", "offs", "pid", "math"}


def describe(program: Program) -> dict[str, Any]:
    """A JSON summary for the tuning plan."""
    return {"kind": program.kind, "rank": program.rank, "reduce_dim": program.reduce_dim, "ops": program.ops,
            "inputs": [{"name": s.name, "source": s.source, "ref": s.ref, "dims": list(s.dim_map), "dtype": s.dtype}
                       for s in program.inputs],
            "outputs": [{"name": s.name, "node": s.node, "dims": list(s.dim_map), "dtype": s.dtype}
                        for s in program.outputs],
            "nodes": len(program.nodes), "reductions": sum(n.op in REDUCTIONS for n in program.nodes),
            "reduce_dims": list(program.reduce_dims),
            "stages": [{"reduce_dims": list(st.reduce_dims), "rank": st.rank, "nodes": len(st.nodes)}
                       for st in program.stages],
            **({"notes": [program.shape_relations]} if program.shape_relations else {})}

