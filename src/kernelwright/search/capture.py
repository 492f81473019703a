"""Graph capture: ``Model.forward`` traced into ATen ops with ``make_fx``, then lowered to a small IR.

The model is built from ``get_init_inputs`` at a small shape whose knobs are distinct (so every tensor
dimension can be recognised by its size) and traced with its parameters and buffers as explicit graph
inputs. Tracing happens twice, at two different shapes: a graph whose constants change with the shape
(``x / x.shape[-1]`` baked as ``/ 13.0``) would be wrong at any other shape, so it is refused.

The IR is a list of :class:`Node` in topological order. Every tensor value spans a subset of the
*iteration space* ``S`` (the largest tensor's dimensions), recorded as ``dims``; ``dtype`` is symbolic:
``case`` (the task's dtype: the case being verified or timed), ``f32``, ``i64`` or ``bool``.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any

from kernelwright.tasks.task import Task, instantiate

# Capture shapes: distinct sizes, so each dimension of each tensor maps back to one iteration dimension.
CAPTURE_SIZES = ((11, 13, 17, 19, 23, 29, 31), (37, 41, 43, 47, 53, 59, 61))

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


class Unsupported(Exception):
    """The graph holds something the generator does not cover; ``op`` names it."""

    def __init__(self, op: str, why: str = ""):
        super().__init__(f"{op}: {why}" if why else op)
        self.op, self.why = op, why


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
    reduce_dim: int | None       # None: pointwise only
    forward_args: list[str]
    scalar_args: dict[str, Any]  # forward arguments that are not tensors (baked at capture)
    init_source: str
    ops: list[str]               # the ATen ops seen, for the plan and the README of a candidate
    output_is_tuple: bool

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
    knobs = {}
    for (name, _), size in zip(task.knobs.items(), sizes):
        step = task.knob_multiple_of.get(name, 1)
        knobs[name] = size * step
    if len(task.knobs) > len(sizes):
        raise Unsupported("shape knobs", f"more than {len(sizes)} shape knobs")
    return knobs


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
    table.update(get_decompositions([aten._softmax, aten._log_softmax, aten.linalg_vector_norm, aten.logsumexp,
                                     aten.softplus, aten.hardtanh, aten.mse_loss, aten.rms_norm]))
    return table


def trace(task: Task, sizes: tuple[int, ...]):
    """make_fx graph of Model.forward at one shape, with params/buffers as leading inputs."""
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.func import functional_call

    module = task.load()
    knobs = capture_shape(task, sizes)
    inputs, init_inputs = instantiate(module, knobs)
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
    return graph, model, inputs, tensor_positions, list(state), low


def _signature(graph) -> list:
    """Op sequence and scalar constants: what must not change between two capture shapes."""
    out = []
    for n in graph.graph.nodes:
        if n.op == "call_function":
            scalars = [a for a in n.args if isinstance(a, (int, float, bool)) and not isinstance(a, bool)]
            out.append((str(n.target), [round(float(s), 9) for s in scalars if isinstance(s, float)]))
    return out


def capture(task: Task) -> Program:
    """Trace the task's Model and lower it to the IR; raises :class:`Unsupported` naming the op."""
    graph, model, inputs, tensor_positions, state_names, low = trace(task, CAPTURE_SIZES[0])
    if task.knobs:
        other = trace(task, CAPTURE_SIZES[1])[0]
        if _signature(graph) != _signature(other):
            raise Unsupported("shape-dependent constant", "the traced graph changes with the input shape")
    forward_params = list(inspect.signature(model.forward).parameters)
    return _lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params)


def _init_source(model) -> str:
    source = textwrap.dedent(inspect.getsource(type(model).__init__))
    return source


def _lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params) -> Program:
    import torch

    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    output_node = next(n for n in graph.graph.nodes if n.op == "output")
    tensors = [n.meta["val"] for n in placeholders] + [
        n.meta["val"] for n in graph.graph.nodes if n.op == "call_function" and isinstance(n.meta.get("val"), torch.Tensor)]
    if not tensors:
        raise Unsupported("no tensors", "the model has no tensor inputs")
    full = max(tensors, key=lambda t: (t.numel(), t.dim()))
    space = tuple(full.shape)
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

    def reduce_axis(val_in, dims_arg) -> int:
        shape = tuple(val_in.shape)
        if dims_arg is None or (isinstance(dims_arg, (list, tuple)) and len(dims_arg) != 1):
            raise Unsupported("reduction over several dimensions", "only one reduced dimension is generated")
        d = dims_arg[0] if isinstance(dims_arg, (list, tuple)) else dims_arg
        d = d % len(shape)
        mapped = dim_map(shape)[d]
        if mapped is None:
            raise Unsupported("reduction over a size-1 dimension")
        reductions_dims.add(mapped)
        return mapped

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
            value = n.args[0] if packet == "scalar_tensor" else n.args[1]
            names[n] = Const(value)
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
            lo = n.args[1] if packet in ("clamp", "clamp_min", "hardtanh") and len(n.args) > 1 else n.kwargs.get("min")
            hi = (n.args[2] if packet in ("clamp", "hardtanh") and len(n.args) > 2 else
                  n.args[1] if packet == "clamp_max" else n.kwargs.get("max"))
            v = a[0]
            if lo is not None:
                v = add("maximum", [v, arg(lo)], out_dims(), dt, base + "_lo")
            if hi is not None:
                v = add("minimum", [v, arg(hi)], out_dims(), dt, base + "_hi")
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
            if dims_arg is None and src.dim() == 1:
                dims_arg = [0]
            d = reduce_axis(src, dims_arg)
            kind = {"sum": "sum", "mean": "sum", "amax": "max", "amin": "min"}[packet]
            v = add(kind, [a[0]], out_dims() - {d}, dt if packet != "mean" else "f32", base, dim=d)
            if packet == "mean":
                v = add("div", [v, add("ncols", [], (), "f32", "n")], out_dims() - {d}, "f32", base + "_mean")
                if dt != "f32":
                    v = add("cast", [v], out_dims() - {d}, dt, base + "_cast")
            names[n] = v
            return
        if packet in ("argmax", "argmin", "max", "min") and len(n.args) > 1:
            src = n.args[0].meta["val"]
            d = reduce_axis(src, [n.args[1]])
            if packet in ("argmax", "argmin"):
                names[n] = add(packet, [a[0]], set(dim_map(val.shape)) - {None, d}, "i64", base, dim=d)
            else:  # max.dim / min.dim: (values, indices)
                values = add(packet, [a[0]], set(dim_map(val[0].shape)) - {None, d}, sym_dtype(val[0].dtype),
                             base + "_values", dim=d)
                indices = add("arg" + packet, [a[0]], set(dim_map(val[1].shape)) - {None, d}, "i64",
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
            red_dims = {m for m in dim_map(vals[0].shape) if m is not None} - {d}
            mean, var = _variance(add, a[0], dims_of(a[0]), red_dims, d, correction, base)
            result = add("sqrt", [var], red_dims, "f32", base + "_std") if packet == "std" else var
            cast = lambda v: add("cast", [v], red_dims, sym_dtype(vals[0].dtype), base + "_cast") \
                if sym_dtype(vals[0].dtype) != "f32" else v  # noqa: E731
            names[n] = (cast(result), cast(mean)) if packet == "var_mean" else cast(result)
            return
        if packet == "native_layer_norm":
            x, normalized_shape, weight, bias, eps = n.args
            if len(normalized_shape) != 1:
                raise Unsupported(str(target), "normalisation over more than one dimension")
            xval = x.meta["val"]
            d = reduce_axis(xval, [-1])
            x_dims = dims_of(names[x])
            red = x_dims - {d}
            h = names[x]
            if sym_dtype(xval.dtype) != "f32":
                h = add("cast", [h], x_dims, "f32", "h")
            mean, var = _variance(add, h, x_dims, red, d, 0, "ln")
            rstd = add("rsqrt", [add("add", [var, Const(eps)], red, "f32", "var_eps")], red, "f32", "rstd")
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
        raise Unsupported(str(target))

    ops_seen: list[str] = []
    for n in graph.graph.nodes:
        if n.op != "call_function":
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
        if val.dim() == 0:
            raise Unsupported("reduction to a scalar", "outputs with no dimensions (a loss over every element)")
        ir = names[fx_out]
        if isinstance(ir, Const):
            raise Unsupported("constant output")
        outputs.append(TensorSpec(name=f"out{i}", source="output", ref=str(i), dim_map=dim_map(val.shape),
                                  dtype=sym_dtype(val.dtype), node=ir))
    if len(reductions_dims) > 1:
        raise Unsupported("reductions over different dimensions", "one reduced dimension per graph is generated")
    reduce_dim = next(iter(reductions_dims), None)
    scalar_args = {forward_params[i]: x for i, x in enumerate(inputs) if not isinstance(x, torch.Tensor)}
    return Program(task=task.name, nodes=nodes, inputs=specs, outputs=outputs, rank=rank, reduce_dim=reduce_dim,
                   forward_args=forward_params, scalar_args=scalar_args, init_source=_init_source(model),
                   ops=sorted(set(ops_seen)), output_is_tuple=output_is_tuple)


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
            "nodes": len(program.nodes), "reductions": sum(n.op in REDUCTIONS for n in program.nodes)}

