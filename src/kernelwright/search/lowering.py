"""Lowering a traced ATen graph to the IR: one rule per supported ATen op, in :data:`RULES`.

Every rule takes the :class:`Lowering` (the IR built so far), the fx node, its ATen op name without the
overload (``packet``), its converted arguments (IR names, :class:`Const`, or the raw list/dtype/None) and
its symbolic output dtype, and returns the IR value(s) the fx node stands for: a node name, a tuple of
names for an op with several outputs, or a :class:`Const`. An op with no rule is refused by its name.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

from kernelwright.search.ir import (POINTWISE_BINARY, POINTWISE_UNARY, REDUCTIONS, REMAPS, Const, Dtype, Node,
                                    Op, Program, Source, TensorSpec, Unsupported)
from kernelwright.search.trace import HALF, init_source, iteration_space

# ops that only re-describe a value's shape: the generated kernel broadcasts implicitly
VIEWS = {"view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "expand", "alias", "clone", "contiguous",
         "broadcast_in_dim", "detach", "lift_fresh_copy", "expand_copy", "view_copy", "unsqueeze_copy",
         "squeeze_copy"}

# What the offline generator covers, in a user's words: every refusal of a whole family says it.
COVERS = ("elementwise chains, reductions over one dim or a block of dims, softmax-shaped rows, losses, "
          "rotary embeddings (rotate_half)")
# ATen ops of operators that are matmul-, attention- or convolution-shaped: the generator writes none of them
CONTRACTIONS = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "dot", "mv", "addmv", "einsum", "linear",
                "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
                "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention"}

# names the generated kernel uses for its own variables
_RESERVED = {"rows", "cols", "row_mask", "col_mask", "mask", "o", "i", "start", "block", "n_rows", "n_cols",
             "inner", "BLOCK", "ROWS", "ONE_PASS", "tl", "triton", "torch", "n_blocks", "offs", "pid", "math"}


def outside_family(graph) -> str:
    """The user's sentence for a graph holding a matmul, attention or convolution op; '' for any other.
    Checked only after a refusal: a chain the generator does lower is never refused for a family name."""
    packets = {str(n.target).split(".")[1] for n in graph.graph.nodes
               if n.op == "call_function" and str(n.target).startswith("aten.")}
    found = sorted(packets & CONTRACTIONS)
    if not found:
        return ""
    return (f"matmul/attention/convolution (here `aten.{'`, `aten.'.join(found)}`) is outside what the offline "
            f"agent generates ({COVERS})")


class Half:
    """A half of iteration dim ``dim`` (a value of rotate_half before its cat), not computed on its own:
    ``at(part)`` is its IR value at the full dim's index i where the cat puts it (part 0: i < n // 2,
    part 1: i >= n // 2), built on first use."""

    def __init__(self, dim: int, build: Callable[[int], str]):
        self.dim, self._build, self._at = dim, build, {}

    def at(self, part: int) -> str:
        if part not in self._at:
            self._at[part] = self._build(part)
        return self._at[part]


class Lowering:
    """One graph's lowering in progress: the IR nodes so far, and which IR value each fx node is."""

    def __init__(self, graph, low, size_constants: dict, from_init: dict, nodes=None, taken: set[str] = frozenset()):
        self.space = iteration_space(graph, nodes)
        self.rank = len(self.space)
        self.low = low                       # the task's dtype, as traced
        self.size_constants = size_constants  # (fx node, arg position) -> dims whose size it is
        self.from_init = from_init           # (fx node, arg position) -> the constructor argument it follows
        self.nodes: list[Node] = []
        self.by_name: dict[str, Node] = {}
        self.names: dict[Any, Any] = {}      # fx node -> IR name (or a tuple of names for multi-output ops)
        self.used: set[str] = set(taken)   # names another part's kernel uses beside ours
        self.halved: set[int] = set()        # iteration dims sliced at their half (rotate_half)
        self.remaps: dict[tuple, str] = {}   # (op, dim[, value]) -> the node, built once
        self.reductions_dims: set[tuple[int, ...]] = set()

    def dim_map(self, shape) -> tuple[int | None, ...]:
        mapping, k = [], 0
        for size in shape:
            if size == 1:
                mapping.append(None)
                continue
            # a half of a dim sliced at its half (rotate_half) spans that dim: the cat puts the halves back
            while k < self.rank and self.space[k] != size and not (k in self.halved and self.space[k] == 2 * size):
                k += 1
            if k == self.rank:
                raise Unsupported("reshape", f"a tensor of shape {tuple(shape)} does not map onto {self.space} "
                                             "(dimensions merged, split or permuted)")
            mapping.append(k)
            k += 1
        return tuple(mapping)

    def out_dims(self, n) -> set[int]:
        return {m for m in self.dim_map(n.meta["val"].shape) if m is not None}

    def sym_dtype(self, dt) -> Dtype:
        import torch

        if dt == torch.bool:
            return Dtype.BOOL
        if not dt.is_floating_point:
            return Dtype.I64
        if dt == self.low:
            return Dtype.CASE
        if dt == torch.float32:
            return Dtype.F32
        raise Unsupported(f"dtype {dt}", "only the task dtype and float32 are generated")

    def fresh(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base).strip("_") or "v"
        if base[0].isdigit():
            base = "v_" + base
        name, i = base, 1
        while name in self.used or name in _RESERVED:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def add(self, op, args, dims, dtype, base, **attrs) -> str:
        name = self.fresh(base)
        node = Node(name, Op(op), list(args), frozenset(dims), dtype, attrs)
        self.nodes.append(node)
        self.by_name[name] = node
        return name

    def arg(self, a):
        import torch

        if isinstance(a, torch.fx.Node):
            return self.names[a]
        if isinstance(a, (bool, int, float)):
            return Const(a)
        raise Unsupported("non-scalar argument", repr(a)[:60])

    def dims_of(self, a) -> frozenset:
        return self.by_name[a].dims if isinstance(a, str) else frozenset()

    def reduce_axis(self, val_in, dims_arg) -> tuple[int, ...]:
        """The reduced iteration dims; None or [] reduce every dim of the tensor. They must be adjacent
        in the iteration space (a LayerNorm over (C, H, W), a loss over everything): one flattened row."""
        shape = tuple(val_in.shape)
        if dims_arg is None or (isinstance(dims_arg, (list, tuple)) and len(dims_arg) == 0):
            dims = list(range(len(shape)))
        else:
            dims = list(dims_arg) if isinstance(dims_arg, (list, tuple)) else [dims_arg]
        mapping = self.dim_map(shape)
        group = sorted({mapping[d % len(shape)] for d in dims} - {None}) if shape else []
        if not group:
            raise Unsupported("reduction over a size-1 dimension")
        if group != list(range(group[0], group[-1] + 1)):
            raise Unsupported("reduction over non-adjacent dimensions",
                              f"dims {group} of the iteration space are not one contiguous block")
        self.reductions_dims.add(tuple(group))
        return tuple(group)

    def input(self, ph, source: Source, ref: str, base: str) -> TensorSpec:
        val = ph.meta["val"]
        try:
            mapping = self.dim_map(val.shape)
        except Unsupported:
            raise Unsupported("inputs that do not broadcast together",
                              f"`{ref}` of shape {tuple(val.shape)} does not fit the iteration space "
                              f"{self.space}") from None
        name = self.add(Op.INPUT, [], {m for m in mapping if m is not None}, self.sym_dtype(val.dtype), base)
        self.names[ph] = name
        return TensorSpec(name=name, source=source, ref=ref, dim_map=mapping, dtype=self.sym_dtype(val.dtype))

    def operands(self, n, packet: str) -> list:
        """The fx node's arguments as IR values; a size or constructor constant becomes a run-time node."""
        import torch

        a = [self.arg(x) if not isinstance(x, (list, tuple, torch.dtype, torch.device, torch.layout, str,
                                               type(None)))
             else x for x in n.args]
        for j, x in enumerate(a):
            if (n.name, j) in self.size_constants and packet == "slice":
                continue  # a half of a dim: the slice rule reads it as the remap's bound
            if (n.name, j) in self.size_constants:  # a dimension's size, read at run time
                dims, inverse = self.size_constants[(n.name, j)]
                if inverse == HALF:  # only a slice reads a half of a dim
                    raise Unsupported(str(n.target), "half of a dimension's size used other than as a slice bound")
                a[j] = self.add(Op.NUMEL, [], (), Dtype.F32, "size", of=dims, inverse=inverse)
            elif (n.name, j) in self.from_init and not (packet == "pow" and j == 1):
                # a constructor argument, read at run time (a pow's exponent stays baked: x ** e with e
                # unknown is exp2(e * log2(x)), wrong for a negative x)
                rel = self.from_init[(n.name, j)]
                a[j] = self.add(Op.INIT, [], (), Dtype.F32, rel["param"], **rel)
        return a

    def lower_node(self, n) -> None:
        import torch

        if n.target is operator.getitem:
            self.names[n] = self.names[n.args[0]][n.args[1]]
            return
        packet = getattr(n.target, "__name__", str(n.target)).split(".")[0]
        a = self.operands(n, packet)
        val = n.meta.get("val")
        dt = self.sym_dtype(val.dtype) if isinstance(val, torch.Tensor) else None
        rule = RULES.get(packet)
        if rule is None:
            raise Unsupported(str(n.target))
        if any(isinstance(x, Half) for x in a) and packet not in ("cat", "slice"):
            self.names[n] = self.on_halves(n, packet, rule, a, dt)
            return
        self.names[n] = rule(self, n, packet, a, dt)

    def on_halves(self, n, packet: str, rule: "Rule", a: list, dt) -> "Half":
        """An elementwise op on halves of a dim is a half too, computed where the cat puts it."""
        if rule not in ELEMENTWISE_RULES or (rule is _alias and not _same_sizes(n)):
            raise Unsupported(str(n.target), "a half of a dimension (rotate_half's slice) used by an op other than "
                                             "an elementwise one or a cat of the two halves")
        dims = {x.dim for x in a if isinstance(x, Half)}
        if len(dims) > 1:
            raise Unsupported(str(n.target), "halves of two different dimensions in one op")
        return Half(dims.pop(), lambda part: rule(self, n, packet, [x.at(part) if isinstance(x, Half) else x
                                                                    for x in a], dt))

    def remap(self, op: Op, args: list, dim: int, dtype: Dtype, base: str) -> str:
        key = (op, dim, *args)
        if key not in self.remaps:
            self.remaps[key] = self.add(op, args, {dim} | set().union(*(self.dims_of(x) for x in args)), dtype,
                                        base, dim=dim)
        return self.remaps[key]

    def rolled(self, name: str, dim: int) -> str:
        """``name`` read half of ``dim`` further on, wrapping around: each input it depends on is read at
        the other half (a pointwise value is recomputed from its rolled operands)."""
        node = self.by_name[name]
        if dim not in node.dims:
            return name
        if node.op == Op.INPUT:
            return self.remap(Op.ROLL_HALF, [name], dim, node.dtype, name + "_rolled")
        if node.op == Op.ROLL_HALF:  # half further twice is the same column
            return node.args[0]
        if node.op in REDUCTIONS or node.op in (Op.COLUMN, Op.FIRST_HALF):
            raise Unsupported(f"aten.{node.op}", "a reduction or an index along a dim read at that dim's other half")
        key = (Op.ROLL_HALF, dim, name)
        if key not in self.remaps:
            args = [self.rolled(x, dim) if isinstance(x, str) else x for x in node.args]
            self.remaps[key] = self.add(node.op, args, node.dims, node.dtype, name + "_rolled", **node.attrs)
        return self.remaps[key]

    def picked(self, name: str, hit: str, d: tuple[int, ...], base: str) -> str:
        """``name`` at the column ``hit`` marks, one value per row. A value that waits for no reduction is
        picked by a one-hot sum, read in the first pass with the row's other level-1 reductions; a
        pointwise value of reductions (log-softmax's x - max - log(sum exp)) is recomputed from its picked
        operands, which gives the same number because exactly one column is picked. Cross-entropy thus
        reads its logits once (online max and sum of exp beside the target's logit), where picking the
        log-softmax itself would wait for its sum and read the row again."""
        node = self.by_name[name]
        if not set(d) & node.dims:  # a row value: the same at every column
            return name
        if self.free(name):
            picked = self.add(Op.WHERE, [hit, name, Const(0.0)], node.dims, node.dtype, "picked")
            return self.add(Op.SUM, [picked], node.dims - set(d), node.dtype, base, dim=d)
        args = [self.picked(a, hit, d, base + "_arg") if isinstance(a, str) else a for a in node.args]
        return self.add(node.op, args, node.dims - set(d), node.dtype, base + "_" + node.op, **node.attrs)

    def free(self, name: str) -> bool:
        """No reduction behind this value."""
        node = self.by_name[name]
        return node.op not in REDUCTIONS and all(self.free(a) for a in node.args if isinstance(a, str))

    def variance(self, x, x_dims, red_dims, d, correction, base):
        """mean = sum(x)/n; var = sum((x - mean)^2) / (n - correction): two reductions, fp32."""
        add, f32 = self.add, Dtype.F32
        n = add(Op.NCOLS, [], (), f32, "n")
        total = add(Op.SUM, [x], red_dims, f32, base + "_sum", dim=d)
        mean = add(Op.DIV, [total, n], red_dims, f32, base + "_mean")
        dev = add(Op.SUB, [x, mean], x_dims, f32, base + "_dev")
        sq = add(Op.MUL, [dev, dev], x_dims, f32, base + "_sq")
        ss = add(Op.SUM, [sq], red_dims, f32, base + "_ss", dim=d)
        denom = add(Op.SUB, [n, Const(float(correction))], (), f32, base + "_dof") if correction else n
        var = add(Op.DIV, [ss, denom], red_dims, f32, base + "_var")
        return mean, var

    def affine_tail(self, y, weight, bias, x_dims, out_dt):
        """An optional per-element weight and bias after a normalisation, then the cast to the output."""
        if weight is not None:
            y = self.add(Op.MUL, [y, self.names[weight]], x_dims, Dtype.F32, "scaled")
        if bias is not None:
            y = self.add(Op.ADD, [y, self.names[bias]], x_dims, Dtype.F32, "shifted")
        if out_dt != Dtype.F32:
            y = self.add(Op.CAST, [y], x_dims, out_dt, "y")
        return y

    def in_f32(self, x):
        """The IR value of fx node ``x``, cast to fp32 unless it is already."""
        h = self.names[x]
        if self.sym_dtype(x.meta["val"].dtype) != Dtype.F32:
            h = self.add(Op.CAST, [h], self.dims_of(h), Dtype.F32, "h")
        return h


Rule = Callable[[Lowering, Any, str, list, "Dtype | None"], Any]


def _alias(lw: Lowering, n, packet: str, a: list, dt):
    return a[0]


def _cast(lw: Lowering, n, packet: str, a: list, dt):
    target_dtype = n.kwargs.get("dtype", n.args[1] if len(n.args) > 1 else None)
    if target_dtype is None:
        return a[0]
    return lw.add(Op.CAST, [a[0]], lw.dims_of(a[0]), lw.sym_dtype(target_dtype), n.name)


def _scalar(lw: Lowering, n, packet: str, a: list, dt):
    import torch

    val = n.meta.get("val")
    if not (isinstance(val, torch.Tensor) and val.numel() == 1):
        raise Unsupported(str(n.target))
    return a[0] if packet == "scalar_tensor" else a[1]


def _pointwise(lw: Lowering, n, packet: str, a: list, dt):
    attrs = {}
    if packet == "gelu":
        attrs["approximate"] = n.kwargs.get("approximate", "none")
    if packet in ("add", "sub") and n.kwargs.get("alpha", 1) != 1:
        attrs["alpha"] = n.kwargs["alpha"]
    if packet == "div" and n.kwargs.get("rounding_mode"):
        raise Unsupported(str(n.target), "rounding division")
    args = [x for x in a if isinstance(x, (str, Const))]
    return lw.add(Op(packet), args, lw.out_dims(n), dt, n.name, **attrs)


def _clamp(lw: Lowering, n, packet: str, a: list, dt):
    """clamp, clamp_min, clamp_max, hardtanh: a maximum with the low bound, then a minimum with the high."""
    lo_at = 1 if packet in ("clamp", "clamp_min", "hardtanh") and len(n.args) > 1 else None
    hi_at = 2 if packet in ("clamp", "hardtanh") and len(n.args) > 2 else 1 if packet == "clamp_max" else None
    lo = a[lo_at] if lo_at else n.kwargs.get("min")
    hi = a[hi_at] if hi_at else n.kwargs.get("max")
    v = a[0]
    if lo is not None:
        v = lw.add(Op.MAXIMUM, [v, lo if isinstance(lo, (str, Const)) else lw.arg(lo)], lw.out_dims(n), dt,
                   n.name + "_lo")
    if hi is not None:
        v = lw.add(Op.MINIMUM, [v, hi if isinstance(hi, (str, Const)) else lw.arg(hi)], lw.out_dims(n), dt,
                   n.name + "_hi")
    return v


def _where(lw: Lowering, n, packet: str, a: list, dt):
    return lw.add(Op.WHERE, [a[0], a[1], a[2]], lw.out_dims(n), dt, n.name)


_REDUCE_KIND = {"sum": Op.SUM, "mean": Op.SUM, "amax": Op.MAX, "amin": Op.MIN}


def _reduce(lw: Lowering, n, packet: str, a: list, dt):
    """sum, amax, amin over dims; mean as their sum over the block's element count, in fp32."""
    src = n.args[0].meta["val"]
    dims_arg = n.args[1] if len(n.args) > 1 else None
    if isinstance(dims_arg, (list, tuple)) and len(dims_arg) == 0:
        dims_arg = None
    d = lw.reduce_axis(src, dims_arg)
    kept = lw.out_dims(n) - set(d)
    base = n.name
    v = lw.add(_REDUCE_KIND[packet], [a[0]], kept, dt if packet != "mean" else Dtype.F32, base, dim=d)
    if packet == "mean":
        v = lw.add(Op.DIV, [v, lw.add(Op.NCOLS, [], (), Dtype.F32, "n")], kept, Dtype.F32, base + "_mean")
        if dt != Dtype.F32:
            v = lw.add(Op.CAST, [v], kept, dt, base + "_cast")
    return v


def _arg_reduce(lw: Lowering, n, packet: str, a: list, dt):
    """argmax/argmin over one dim, and max.dim/min.dim as (values, indices); the whole-tensor max/min are
    not covered."""
    if len(n.args) <= 1:
        raise Unsupported(str(n.target))
    val = n.meta.get("val")
    d = lw.reduce_axis(n.args[0].meta["val"], [n.args[1]])
    base = n.name
    if packet in ("argmax", "argmin"):
        return lw.add(Op(packet), [a[0]], set(lw.dim_map(val.shape)) - {None, *d}, Dtype.I64, base, dim=d)
    values = lw.add(Op(packet), [a[0]], set(lw.dim_map(val[0].shape)) - {None, *d}, lw.sym_dtype(val[0].dtype),
                    base + "_values", dim=d)
    indices = lw.add(Op("arg" + packet), [a[0]], set(lw.dim_map(val[1].shape)) - {None, *d}, Dtype.I64,
                     base + "_indices", dim=d)
    return (values, indices)


def _var(lw: Lowering, n, packet: str, a: list, dt):
    """var, std and var_mean with their correction (or the older ``unbiased``)."""
    val = n.meta.get("val")
    src = n.args[0].meta["val"]
    dims_arg = n.args[1] if len(n.args) > 1 else None
    d = lw.reduce_axis(src, dims_arg)
    correction = n.kwargs.get("correction", 1)
    correction = 1 if correction is None else correction
    if "unbiased" in n.kwargs:
        correction = 1 if n.kwargs["unbiased"] else 0
    vals = val if isinstance(val, (tuple, list)) else (val,)
    red_dims = {m for m in lw.dim_map(vals[0].shape) if m is not None} - set(d)
    base = n.name
    mean, var = lw.variance(a[0], lw.dims_of(a[0]), red_dims, d, correction, base)
    result = lw.add(Op.SQRT, [var], red_dims, Dtype.F32, base + "_std") if packet == "std" else var
    out_dt = lw.sym_dtype(vals[0].dtype)

    def cast(v):
        return lw.add(Op.CAST, [v], red_dims, out_dt, base + "_cast") if out_dt != Dtype.F32 else v

    return (cast(result), cast(mean)) if packet == "var_mean" else cast(result)


def _layer_norm(lw: Lowering, n, packet: str, a: list, dt):
    x, normalized_shape, weight, bias, _ = n.args
    eps = a[4]
    d = lw.reduce_axis(x.meta["val"], list(range(-len(normalized_shape), 0)))
    x_dims = lw.dims_of(lw.names[x])
    red = x_dims - set(d)
    h = lw.in_f32(x)
    mean, var = lw.variance(h, x_dims, red, d, 0, "ln")
    rstd = lw.add(Op.RSQRT, [lw.add(Op.ADD, [var, eps], red, Dtype.F32, "var_eps")], red, Dtype.F32, "rstd")
    y = lw.add(Op.MUL, [lw.add(Op.SUB, [h, mean], x_dims, Dtype.F32, "centered"), rstd], x_dims, Dtype.F32,
               "normed")
    y = lw.affine_tail(y, weight, bias, x_dims, lw.sym_dtype(n.meta["val"][0].dtype))
    return (y, mean, rstd)


def _gather(lw: Lowering, n, packet: str, a: list, dt):
    """out[r] = src[r, index[r]] over the indexed dim: a sum of src where the column equals the index,
    which the row kernel computes while it streams the row anyway (cross-entropy)."""
    src, gdim, index = n.args[0], n.args[1], n.args[2]
    d = lw.reduce_axis(src.meta["val"], [gdim])
    if index.meta["val"].shape[gdim] != 1 or len(d) != 1:
        raise Unsupported(str(n.target), "a gather of more than one element per row")
    column = lw.add(Op.COLUMN, [], set(d), Dtype.I64, "col_index", dim=d[0])
    hit = lw.add(Op.EQ, [column, lw.names[index]], lw.dims_of(lw.names[src]) | set(d), Dtype.BOOL, "hit")
    return lw.picked(lw.names[src], hit, d, n.name)


def _batch_norm(lw: Lowering, n, packet: str, a: list, dt):
    """native_batch_norm, as ``Model.eval()`` runs it: with running statistics a per-channel affine map;
    with batch statistics (``InstanceNorm``, which views (N, C, *S) as (1, N*C, *S)) a normalisation over
    the trailing spatial dims of the original tensor, one row per (n, c)."""
    x, weight, bias, running_mean, running_var, training, _momentum, _ = n.args
    eps = a[7]
    xval = x.meta["val"]
    x_dims = lw.dims_of(lw.names[x])
    h = lw.in_f32(x)
    if not training and running_mean is not None and running_var is not None:
        var_dims = lw.dims_of(lw.names[running_var])
        rstd = lw.add(Op.RSQRT, [lw.add(Op.ADD, [lw.names[running_var], eps], var_dims, Dtype.F32, "var_eps")],
                      var_dims, Dtype.F32, "rstd")
        y = lw.add(Op.MUL, [lw.add(Op.SUB, [h, lw.names[running_mean]], x_dims, Dtype.F32, "centered"), rstd],
                   x_dims, Dtype.F32, "normed")
    else:
        source = x.args[0].meta["val"] if getattr(x, "target", None) is not None and \
            "view" in str(x.target) else xval
        spatial = xval.dim() - 2
        merged = tuple(source.shape[:source.dim() - spatial])
        if xval.shape[0] != 1 or source.dim() < spatial + 1 or math.prod(merged) != xval.shape[1] or \
                tuple(source.shape[source.dim() - spatial:]) != tuple(xval.shape[2:]):
            raise Unsupported(str(n.target), "batch statistics over the batch and spatial dims together "
                                             "(non-adjacent dimensions)")
        d = lw.reduce_axis(source, list(range(-spatial, 0)))
        red = x_dims - set(d)
        mean, var = lw.variance(h, x_dims, red, d, 0, "bn")
        rstd = lw.add(Op.RSQRT, [lw.add(Op.ADD, [var, eps], red, Dtype.F32, "var_eps")], red, Dtype.F32, "rstd")
        y = lw.add(Op.MUL, [lw.add(Op.SUB, [h, mean], x_dims, Dtype.F32, "centered"), rstd], x_dims, Dtype.F32,
                   "normed")
        if weight is not None or bias is not None:
            raise Unsupported(str(n.target), "an affine map after batch statistics")
    return (lw.affine_tail(y, weight, bias, x_dims, lw.sym_dtype(n.meta["val"][0].dtype)), None, None)


def _slice(lw: Lowering, n, packet: str, a: list, dt):
    """``x[..., : n // 2]`` or ``x[..., n // 2 :]`` along one dim: a :class:`Half`, which elementwise ops
    keep and a cat of both halves turns back into a value of the whole dim. Any other slice is refused."""
    x = n.args[0]
    shape = tuple(x.meta["val"].shape)
    tdim = (n.args[1] if len(n.args) > 1 else 0) % len(shape)
    start, end = (n.args[2] if len(n.args) > 2 else None), (n.args[3] if len(n.args) > 3 else None)
    step = n.args[4] if len(n.args) > 4 else 1
    k = lw.dim_map(shape)[tdim]
    bounds = (_bound(lw, n, 2, start, shape[tdim], k, "start"), _bound(lw, n, 3, end, shape[tdim], k, "end"))
    if step != 1 or k is None or shape[tdim] % 2 or bounds not in (("start", "half"), ("half", "end")) \
            or not isinstance(a[0], str):
        raise Unsupported(str(n.target), f"a slice that is not one half of a dimension ({start}:{end} of "
                                         f"{shape[tdim]}, step {step})")
    lw.halved.add(k)
    source, part = a[0], 0 if bounds[0] == "start" else 1
    # the cat puts this half at `part`; at the other part the index lands half the dim away from it
    return Half(k, lambda at: source if at == part else lw.rolled(source, k))


def _bound(lw: Lowering, n, j: int, value, size: int, k: int | None, edge: str) -> str:
    """A slice bound as ``start``/``end`` of the dim or ``half``: ``size // 2`` at this shape, and when
    it moves with the shape, recognised as half of this very dim (:func:`trace.size_constants`)."""
    if value is None or value == 0 and edge == "start" or value >= size and edge == "end":
        return edge
    moving = lw.size_constants.get((n.name, j))
    if value == size // 2 and (moving is None or moving == ((k,), HALF)):
        return "half"
    return "other"


def _cat(lw: Lowering, n, packet: str, a: list, dt):
    """The two halves of one dim put back in either order (rotate_half's ``cat((-x2, x1), -1)``): at index
    i of the dim, the first operand below n // 2 and the second from there."""
    parts = [lw.names[x] for x in n.args[0]]
    shape = n.meta["val"].shape
    tdim = (n.args[1] if len(n.args) > 1 else 0) % len(shape)
    dims = {p.dim for p in parts if isinstance(p, Half)}
    if len(parts) != 2 or not all(isinstance(p, Half) for p in parts) or dims != {lw.dim_map(shape)[tdim]}:
        raise Unsupported(str(n.target), "a cat of anything but the two halves of one dimension")
    k = dims.pop()
    first = lw.remap(Op.FIRST_HALF, [], k, Dtype.BOOL, "first_half")
    return lw.add(Op.WHERE, [first, parts[0].at(0), parts[1].at(1)], lw.out_dims(n), dt, n.name)


def _same_sizes(n) -> bool:
    """A view that only adds or drops size-1 dims (a half keeps its dims in order)."""
    src = [s for s in n.args[0].meta["val"].shape if s != 1]
    return src == [s for s in n.meta["val"].shape if s != 1]


def _rules() -> dict[str, Rule]:
    groups: list[tuple[Any, Rule]] = [
        (VIEWS, _alias),
        (("_to_copy", "convert_element_type", "to"), _cast),
        (("scalar_tensor", "full"), _scalar),
        ({str(op) for op in POINTWISE_UNARY | POINTWISE_BINARY}, _pointwise),
        (("clamp", "clamp_min", "clamp_max", "hardtanh"), _clamp),
        (("where",), _where),
        (tuple(_REDUCE_KIND), _reduce),
        (("argmax", "argmin", "max", "min"), _arg_reduce),
        (("var", "var_mean", "std"), _var),
        (("native_layer_norm",), _layer_norm),
        (("gather",), _gather),
        (("native_batch_norm",), _batch_norm),
        (("slice",), _slice),
        (("cat",), _cat),
    ]
    table: dict[str, Rule] = {}
    for packets, rule in groups:
        for packet in packets:
            if packet in table:  # one rule per op: the table has no order to fall back on
                raise AssertionError(f"two lowering rules for {packet}")
            table[packet] = rule
    return table


# ATen op name (without its overload) -> the rule that lowers it
RULES: dict[str, Rule] = _rules()
# rules that compute each element from the same element of their operands: they apply to halves too
ELEMENTWISE_RULES = frozenset({_alias, _cast, _pointwise, _clamp, _where})


def lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params,
          size_constants=None, from_init=None) -> tuple[Program, set[tuple[int, ...]]]:
    """The graph as a Program (not yet split into stages), and the blocks of dims it reduces over. Outputs
    whose tensors fit no one iteration space (rotary's q and k, with fewer key heads) are lowered each on
    its own space, as the parts of one pointwise Program."""
    import torch

    with torch.no_grad():
        ret = model(*inputs)
    # make_fx wraps a single returned tensor in a list; the model's own return decides the structure
    output_is_tuple = isinstance(ret, (tuple, list))
    args = (task, graph, model, inputs, tensor_positions, state_names, low, forward_params, size_constants or {},
            from_init or {}, output_is_tuple)
    try:
        return _lower(*args)
    except Unsupported as exc:
        if exc.op != "inputs that do not broadcast together" or len(_outputs(graph)) < 2:
            raise
        try:
            return _lower_parts(*args), set()
        except Unsupported:
            raise exc from None


def _outputs(graph) -> list:
    out = next(n for n in graph.graph.nodes if n.op == "output").args[0]
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _cone(node) -> set:
    """The fx nodes ``node`` is computed from, itself included."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def _lower_parts(task, graph, model, inputs, tensor_positions, state_names, low, forward_params, sizes, from_init,
                 output_is_tuple) -> Program:
    """One pointwise Program per output, on the space of the tensors it is computed from; their names kept
    apart (one kernel computes them all), the inputs they share named alike."""
    parts: list[Program] = []
    for i, out in enumerate(_outputs(graph)):
        taken = {n.name for p in parts for n in p.nodes if n.op != Op.INPUT}
        part, blocks = _lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params, sizes,
                              from_init, output_is_tuple, only=(i, _cone(out)), taken=taken)
        if blocks:
            raise Unsupported("outputs of different shapes", "a reduction in one of them")
        parts.append(part)
    first = parts[0]
    kept = list(dict.fromkeys(n.attrs["param"] for p in parts for n in p.nodes if n.op == Op.INIT))
    source, init_attrs = init_source(model, kept)
    # the forward's own order: the offline run pairs these specs with the task's inputs one by one
    order = [*state_names, *forward_params]
    inputs_union = {s.name: s for p in parts for s in p.inputs}.values()
    return Program(task=task.name, nodes=list({n.name: n for p in parts for n in p.nodes}.values()),
                   inputs=sorted(inputs_union, key=lambda s: order.index(s.ref)),
                   outputs=[o for p in parts for o in p.outputs], rank=first.rank, reduce_dim=None,
                   forward_args=forward_params, scalar_args=first.scalar_args, init_source=source,
                   ops=sorted({o for p in parts for o in p.ops}), output_is_tuple=output_is_tuple,
                   init_attrs=init_attrs, parts=parts)


def _lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params, sizes, from_init,
           output_is_tuple, only: tuple[int, set] | None = None,
           taken: set[str] = frozenset()) -> tuple[Program, set[tuple[int, ...]]]:
    """The graph, or with ``only`` = (i, its fx nodes) just output i, as a Program."""
    import torch

    cone = only[1] if only else None
    lw = Lowering(graph, low, sizes, from_init, cone, taken)
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]

    specs: list[TensorSpec] = []
    n_state = len(state_names)
    for i, ph in enumerate(placeholders):
        if cone is not None and ph not in cone:
            continue
        if i < n_state:
            specs.append(lw.input(ph, Source.PARAM, state_names[i], state_names[i].replace(".", "_")))
        else:
            ref = forward_params[tensor_positions[i - n_state]]
            specs.append(lw.input(ph, Source.INPUT, ref, ref))

    ops_seen: list[str] = []
    for n in graph.graph.nodes:
        if n.op != "call_function" or not n.users or (cone is not None and n not in cone):
            continue  # dead values (BatchNorm's unused empty() workspace), another part's values
        ops_seen.append(str(n.target))
        try:
            lw.lower_node(n)
        except Unsupported as exc:
            if exc.op == "reshape":  # name the op whose output did not map, not the mapping
                raise Unsupported(str(n.target), exc.why) from None
            raise

    outputs = []
    for i, fx_out in enumerate(_outputs(graph)):
        if only is not None and i != only[0]:
            continue
        if not isinstance(fx_out, torch.fx.Node):
            raise Unsupported("non-tensor output")
        val = fx_out.meta["val"]
        ir = lw.names[fx_out]
        if isinstance(ir, Const):
            raise Unsupported("constant output")
        if isinstance(ir, Half):
            raise Unsupported("aten.slice.Tensor", "a half of a dimension returned as it is")
        outputs.append(TensorSpec(name=f"out{i}", source=Source.OUTPUT, ref=str(i), dim_map=lw.dim_map(val.shape),
                                  dtype=lw.sym_dtype(val.dtype), node=ir))
    scalar_args = {forward_params[i]: x for i, x in enumerate(inputs) if not isinstance(x, torch.Tensor)}
    kept = list(dict.fromkeys(n.attrs["param"] for n in lw.nodes if n.op == Op.INIT))
    source, init_attrs = init_source(model, kept)
    program = Program(task=task.name, nodes=lw.nodes, inputs=specs, outputs=outputs, rank=lw.rank,
                      reduce_dim=None, forward_args=forward_params, scalar_args=scalar_args, init_source=source,
                      ops=sorted(set(ops_seen)), output_is_tuple=output_is_tuple, init_attrs=init_attrs)
    return program, lw.reductions_dims
