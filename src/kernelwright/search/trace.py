"""Tracing a task's ``Model.forward`` into ATen ops with ``make_fx``, at shrunk shapes.

The model is built from ``get_init_inputs`` at a small shape whose knobs are distinct (so every tensor
dimension can be recognised by its size) and traced with its parameters and buffers as explicit graph
inputs. Tracing happens twice, at two different shapes: a graph whose constants change with the shape
(``x / x.shape[-1]`` baked as ``/ 13.0``) would be wrong at any other shape, so it is refused, unless the
constant is a product of dimension sizes (:func:`size_constants`), which is read at run time.

Constants that come from ``get_init_inputs`` (an ``eps``, a negative slope, a margin) are found the same
way: each float constructor argument is traced again with two other values, and a constant that moves
with it, as the argument itself or an affine map of it or of its reciprocal, is read at run time (see
:func:`init_constants`): the generated ModelNew keeps the argument it is built with and passes it to the
kernel. Constants that do not move stay baked; an argument that changes the graph itself (or that the
Model rejects) stays baked too.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from kernelwright.search.ir import Unsupported
from kernelwright.tasks.knobs import PROBE_SIZES, element_counter, first_line, probe_shape, relations
from kernelwright.tasks.task import Task, instantiate

# Capture shapes: distinct sizes, so each dimension of each tensor maps back to one iteration dimension
# (the shrunk probe shapes, on which the knobs' inferred relations were checked).
CAPTURE_SIZES = PROBE_SIZES
# Above this many elements in the largest input, a capture shape is traced on the meta device.
REAL_TRACE_ELEMENTS = 2**24



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


def signature(graph) -> list:
    """Op sequence and scalar constants: what must not change between two capture shapes (NaN compares
    equal to NaN here: a NaN constant is the same constant at both shapes)."""
    out = []
    for n in graph.graph.nodes:
        if n.op == "call_function":
            scalars = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
            out.append((str(n.target), [repr(round(float(s), 9)) for s in scalars]))
    return out


def distinct_sizes(task: Task, graph) -> None:
    """Dimensions are told apart by their sizes; knobs held equal or fixed by an inferred relation can
    leave two dimensions of one size, and then which one a smaller input spans is a guess."""
    rel = relations(task)
    space = [s for s in iteration_space(graph) if s > 1]
    if rel and len(set(space)) < len(space):
        kept = ", ".join(rel.sentences(task))
        raise Unsupported("dimensions of one size", f"shrunk shapes keep {kept}, which leaves dimensions of one "
                                                    f"size in {tuple(iteration_space(graph))} that cannot be "
                                                    "told apart")




def init_params(model) -> list[str]:
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


def init_constants(task: Task, graph, init_inputs: list, init_params: list[str]) -> dict[tuple[str, int], dict]:
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


def trace_or_refuse(task: Task, sizes: tuple[int, ...]):
    """A Model that cannot even be built or run at other shapes cannot be verified at them either."""
    try:
        return trace(task, sizes)
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001 - the task's own code failed: say so, in one sentence
        raise Unsupported("shrunk shapes", f"the task's Model fails at knobs {capture_shape(task, sizes)} "
                                           f"({first_line(exc)}) and no tie, multiple or fixed knob inferred "
                                           "from the task avoids it") from None


def iteration_space(graph, nodes=None) -> tuple[int, ...]:
    """The largest tensor's shape (of ``nodes``, a part of the graph, when given): every other tensor's
    dimensions map onto it."""
    import torch

    tensors = [n.meta["val"] for n in graph.graph.nodes if n.op in ("placeholder", "call_function")
               and isinstance(n.meta.get("val"), torch.Tensor) and (nodes is None or n in nodes)]
    if not tensors:
        raise Unsupported("no tensors", "the model has no tensor inputs")
    return tuple(max(tensors, key=lambda t: (t.numel(), t.dim())).shape)


def size_constants(graph, other) -> dict[tuple[str, int], tuple[tuple[int, ...], bool | str]]:
    """Scalars that differ between the two capture shapes but are, at both, the product of the same
    iteration dims' sizes (or its reciprocal): ``batchmean`` divides by the batch; or half of one even
    dim's size (``HALF``): rotate_half's ``x[..., : x.shape[-1] // 2]``. They become run-time values; any
    other difference is a constant the graph baked from one shape, which is refused."""
    import math

    ours = [n for n in graph.graph.nodes if n.op == "call_function"]
    theirs = [n for n in other.graph.nodes if n.op == "call_function"]
    if [str(n.target) for n in ours] != [str(n.target) for n in theirs]:
        raise Unsupported("shape-dependent constant", "the traced graph changes with the input shape")
    space_a, space_b = iteration_space(graph), iteration_space(other)
    subsets = [tuple(k for k in range(len(space_a)) if mask >> k & 1) for mask in range(1, 1 << len(space_a))]
    found = {}
    for a, b in zip(ours, theirs):
        for j, (x, y) in enumerate(zip(a.args, b.args)):
            scalar = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
            if not (scalar(x) and scalar(y)) or repr(round(float(x), 9)) == repr(round(float(y), 9)):
                continue
            match = _half(space_a, space_b, x, y)
            for dims in subsets if match is None else ():
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


HALF = "half"  # a size constant that is ``size // 2`` of one dim (a slice bound), not a product


def _half(space_a: tuple[int, ...], space_b: tuple[int, ...], x, y) -> tuple[tuple[int, ...], str] | None:
    """((k,), HALF) when x and y are half of dim k's even size at either shape; the last such dim first, as
    a head dim is halved and the dims before it are batch, heads and positions."""
    for k in reversed(range(len(space_a))):
        if space_a[k] % 2 == 0 and space_b[k] % 2 == 0 and (x, y) == (space_a[k] // 2, space_b[k] // 2):
            return (k,), HALF
    return None


def init_source(model, keep: list[str]) -> tuple[str, dict[str, str]]:
    """Model.__init__'s source, and for each constructor argument in ``keep`` the attribute that holds it:
    one ``self.<attr> = <argument>`` it already has, or a line that stores it, added at the end."""
    import ast

    init = type(model).__init__
    if init.__module__.startswith("torch."):  # a Model without __init__ of its own: nn.Module's would be copied
        source = "def __init__(self):\n    super().__init__()\n"
    else:
        source = textwrap.dedent(inspect.getsource(init))
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
