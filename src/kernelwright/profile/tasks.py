"""Task files for a profile's top targets bound by memory or launches (``--emit-tasks DIR``).

Each is a KernelBench-format file: the module's own ``forward`` (its source, decorators dropped) as
``Model``, its scalar attributes as constructor arguments and its parameters rebuilt from the shape knobs,
the shapes and dtype the profile saw as ``SHAPES``/``DTYPES``, ``REPLACES`` naming the module's class and a
``DESCRIPTION`` citing its share of the step. A target whose forward cannot stand alone (it calls other
methods, takes non-tensor or integer inputs) is skipped with the reason.

A target that is a modeling function (``apply_rotary_pos_emb()``) becomes a ``Model`` whose forward calls
that function, imported from its modeling file, on its tensor arguments; its other arguments are
constructor arguments. It names no ``REPLACES``: ``package`` and ``kernelize`` swap modules' forwards only,
so ``package`` writes a functions-only repository for it, and its ``DESCRIPTION`` says so.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.tasks.task import SMALLEST_KNOB

FLOAT_DTYPES = {"float32", "float16", "bfloat16", "float64"}
SCALARS = (int, float, bool, str, type(None))


class Unsupported(Exception):
    """A target that cannot be written as a standalone task; the message says why."""


@dataclass
class Emitted:
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # module class or function() -> why


def emit_tasks(result, capture, out: Path, *, top: int = 3, only: set[str] | None = None) -> Emitted:
    """Write a task file for each of the ``top`` leaf modules or modeling functions bound by memory or launches
    (not compute), ranked by savings: a fused kernel is what helps those. ``only``: these module classes (or
    functions, with or without their ``()``) and no others (on a CPU the ranking of small ops moves from run to
    run; a user who knows the target names it)."""
    out.mkdir(parents=True, exist_ok=True)
    emitted = Emitted()
    for target in result.targets:
        if len(emitted.written) >= top:
            break
        cls = target["module_class"]
        if only is not None and cls not in only and cls.removesuffix("()") not in only:
            continue
        if not target["leaf"] or target["bound"] not in ("memory", "launch"):
            continue
        try:
            if cls in capture.functions:
                source = function_task_source(capture.functions[cls], capture.signatures[cls], target, result)
            else:
                source = task_source(capture.instances[cls], capture.signatures[cls], target, result)
        except Unsupported as exc:
            emitted.skipped[cls] = str(exc)
            continue
        path = out / f"{_snake(cls.removesuffix('()'))}.py"
        path.write_text(source)
        emitted.written.append(path)
    return emitted


def _snake(name: str) -> str:
    """Qwen3RMSNorm -> qwen3_rms_norm; SiLU is one word."""
    name = name.replace("SiLU", "Silu")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def task_source(module, signatures: list[tuple], target: dict[str, Any], result) -> str:
    cls = type(module)
    forward = _forward_def(cls)
    args = [a.arg for a in forward.args.args[1:]]
    signature = _main_signature(signatures, len(args))
    used = _self_attributes(forward)
    params = {n: p for n, p in module.named_parameters(recurse=False) if n in used}
    buffers = {n: b for n, b in module.named_buffers(recurse=False) if n in used}
    scalars = _scalars(module, used - set(params) - set(buffers))
    knobs, dims = _knobs(args, signature, params, buffers)
    shapes = _shapes(signatures, signature, dims)
    small = _small_knobs(knobs, dims, len(args))
    dtype = signature[0][1]
    init_lines, init_values = _constructor(cls, module, params, buffers, scalars, dims)
    lines = [
        f'"""{cls.__name__} from {cls.__module__}, as profiled in {result.model} {result.phase} '
        f'({result.dtype}, {result.device}).\n\n{_description(target, result)}\n"""',
        "", "import torch", "import torch.nn as nn", *_imports(forward, cls), "",
        *[f"{name} = {value}" for name, value in knobs.items()], "",
        *([f"KNOB_MULTIPLE_OF = {small!r}  # small input dims stay knobs"] if small else []),
        f"DTYPES = [torch.{dtype}]", f"SHAPES = {shapes!r}",
        f'REPLACES = "{cls.__module__}.{cls.__qualname__}"', f"DESCRIPTION = {_description(target, result)!r}", "", "",
        "class Model(nn.Module):",
        *init_lines,
        "", textwrap.indent(ast.unparse(forward), "    "), "", "",
        "def get_inputs():",
        f"    return [{', '.join(_randn(dims[('input', i)]) for i in range(len(args)))}]", "", "",
        "def get_init_inputs():",
        f"    return [{', '.join(init_values)}]",
        "",
    ]
    return "\n".join(lines)


def _description(target: dict[str, Any], result) -> str:
    return (f"{target['module_class']}: {100 * target['share']:.1f}% of a {result.phase} step of {result.model} "
            f"({target['calls']} calls, {target['bound']}-bound, {100 * (target['fraction_of_roofline'] or 0):.1f}% "
            f"of the roofline; at the roofline the model would run {target['speedup_if_roofline']:.3f}x faster)")


def _forward_def(cls) -> ast.FunctionDef:
    try:
        source = textwrap.dedent(inspect.getsource(cls.forward))
    except (OSError, TypeError):
        raise Unsupported(f"the source of {cls.__name__}.forward is not available") from None
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.FunctionDef) or node.args.vararg or node.args.kwarg or node.args.kwonlyargs:
        raise Unsupported(f"{cls.__name__}.forward takes *args/**kwargs or keyword-only arguments")
    node.decorator_list = []
    node.returns = None
    for arg in node.args.args:
        arg.annotation = None
    return node


def _self_attributes(forward: ast.FunctionDef) -> set[str]:
    names = set()
    for node in ast.walk(forward):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "self":
            raise Unsupported(f"forward calls self.{node.func.attr}(...), which a standalone Model would not have")
    return names


def _scalars(module, names: set[str]) -> dict[str, Any]:
    out = {}
    for name in sorted(names):
        value = getattr(module, name, None)
        if not isinstance(value, SCALARS):
            raise Unsupported(f"forward reads self.{name}, a {type(value).__name__}, not a number or a string")
        out[name] = value
    return out


def _main_signature(signatures: list[tuple], nargs: int, what: str = "its forward") -> tuple:
    """The call signature covering the most elements among those passing every forward argument a float tensor."""
    fitting = [s for s in signatures if len(s) == nargs and all(dtype in FLOAT_DTYPES for _, dtype in s)]
    if not fitting:
        raise Unsupported(f"{what} was not called with floating-point tensors for every tensor argument")
    return max(fitting, key=lambda s: sum(_numel(shape) for shape, _ in s))


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _knobs(args: list[str], signature: tuple, params: dict, buffers: dict) -> tuple[dict[str, int], dict]:
    """Module-level constants and, per input and parameter, its shape as knob names (or literal dims). A
    parameter dim equal to the first input's last dim shares its knob (a norm's weight, a bias)."""
    knobs: dict[str, int] = {}
    dims: dict[tuple[str, Any], list] = {}
    last = signature[0][0][-1] if signature[0][0] else None
    for i, (arg, (shape, _)) in enumerate(zip(args, signature)):
        names = []
        for j, size in enumerate(shape):
            name = "hidden" if j == len(shape) - 1 and i == 0 else f"{arg}_{j}"
            knobs[name] = size
            names.append(name)
        dims[("input", i)] = names
    for name, tensor in [*params.items(), *buffers.items()]:
        shape = []
        for j, size in enumerate(tensor.shape):
            if size == last and "hidden" in knobs:
                shape.append("hidden")
            else:
                knobs[f"{name}_{j}"] = size
                shape.append(f"{name}_{j}")
        dims[("param", name)] = shape
    return knobs, dims


def _shapes(signatures: list[tuple], main: tuple, dims: dict) -> list[dict[str, int]]:
    """Knob values of every seen signature with the main one's structure (same ranks, tied dims equal)."""
    out = []
    for signature in signatures:
        if len(signature) != len(main) or any(len(s) != len(m) for (s, _), (m, _) in zip(signature, main)):
            continue
        values: dict[str, int] = {}
        consistent = True
        for i, (shape, _) in enumerate(signature):
            for name, size in zip(dims[("input", i)], shape):
                consistent &= values.setdefault(name, size) == size
        if consistent and values not in out:
            out.append(values)
    return out


def _small_knobs(knobs: dict[str, int], dims: dict, nargs: int) -> dict[str, int]:
    """Input dims of 8 or less (a batch of 1) stay knobs, not fixed values: the module takes any batch, and the
    verifier should draw other sizes for it too."""
    names = {n for i in range(nargs) for n in dims[("input", i)]}
    return {n: 1 for n in sorted(names) if knobs[n] <= SMALLEST_KNOB}


def _constructor(cls, module, params: dict, buffers: dict, scalars: dict, dims: dict) -> tuple[list[str], list[str]]:
    """(``__init__`` lines, ``get_init_inputs()`` items): the replaced class's own constructor arguments when
    they can be matched to its attributes and parameter shapes (so ``REPLACES`` builds from the same
    arguments), else each parameter's shape and each attribute as an argument of its own."""
    matched = _match_init(cls, module, params, buffers, scalars, dims)
    if matched is None:
        names = [f"{n}_shape" for n in [*params, *buffers]] + list(scalars)
        shape_of = {n: f"{n}_shape" for n in [*params, *buffers]}
        attr_of = {n: n for n in scalars}
        values = [_shape_expr(dims[("param", n)]) for n in [*params, *buffers]] + [repr(v) for v in scalars.values()]
    else:
        names, values, shape_of, attr_of = matched
    lines = [f"    def __init__({', '.join(['self', *names])}):", "        super().__init__()"]
    for name, tensor in params.items():
        center = "1 + " if tensor.dim() == 1 else ""  # a norm's scale near 1: a kernel ignoring it is seen
        lines.append(f"        self.{name} = nn.Parameter({center}0.1 * torch.randn({shape_of[name]}))")
    for name in buffers:
        lines.append(f"        self.register_buffer({name!r}, torch.randn({shape_of[name]}))")
    for name, value in scalars.items():
        lines.append(f"        self.{name} = {attr_of.get(name, repr(value))}")
    return lines, values


def _match_init(cls, module, params, buffers, scalars, dims):
    """Constructor arguments of ``cls`` matched to the module's state: an argument named as an attribute is
    it, an ``eps``-like or float argument the float attribute, an integer argument the next parameter dim.
    Checked by building ``cls`` on the meta device and comparing; None when anything does not match."""
    import torch

    own_init = cls.__init__ is not torch.nn.Module.__init__
    arguments = list(inspect.signature(cls.__init__).parameters.values())[1:] if own_init else []
    if any(a.kind in (a.VAR_POSITIONAL, a.VAR_KEYWORD) for a in arguments):
        return None
    free_dims = [(n, j, knob, size) for n, t in [*params.items(), *buffers.items()]
                 for j, (knob, size) in enumerate(zip(dims[("param", n)], t.shape))]
    left = dict(scalars)
    names, values, actual, attr_of, dim_of = [], [], [], {}, {}
    for arg in arguments:
        floats = [k for k, v in left.items() if isinstance(v, float)]
        if arg.name in left:
            attr, value = arg.name, left.pop(arg.name)
            attr_of[attr] = arg.name
            names.append(arg.name), values.append(repr(value)), actual.append(value)
        elif floats and ("eps" in arg.name or isinstance(arg.default, float)):
            attr = next((k for k in floats if "eps" in k), floats[0])
            value = left.pop(attr)
            attr_of[attr] = arg.name
            names.append(arg.name), values.append(repr(value)), actual.append(value)
        elif free_dims and arg.default is inspect.Parameter.empty:
            pname, j, knob, size = free_dims.pop(0)
            dim_of[(pname, j)] = arg.name
            names.append(arg.name), values.append(knob), actual.append(size)
        elif arg.default is not inspect.Parameter.empty:
            names.append(arg.name), values.append(repr(arg.default)), actual.append(arg.default)
        else:
            return None
    try:
        with torch.device("meta"):
            built = cls(*actual)
    except Exception:
        return None
    same = all(tuple(getattr(built, n).shape) == tuple(t.shape) for n, t in [*params.items(), *buffers.items()]) \
        and all(getattr(built, n, object()) == v for n, v in scalars.items())
    if not same:
        return None
    shape_of = {n: _shape_expr([dim_of.get((n, j), knob) for j, knob in enumerate(dims[("param", n)])])
                for n in [*params, *buffers]}
    return names, values, shape_of, attr_of


def _shape_expr(names: list[str]) -> str:
    return "(" + "".join(f"{n}, " for n in names) + ")"


def _randn(names: list[str]) -> str:
    return f"torch.randn({', '.join(names) or '()'})"


def _imports(forward: ast.FunctionDef, cls) -> list[str]:
    """``from <defining module> import name`` for each global the forward reads (``nn``, ``F``, ``ACT2FN``)."""
    import sys

    namespace = vars(sys.modules[cls.__module__])
    local = {a.arg for a in forward.args.args} | {n.id for n in ast.walk(forward)
                                                   if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    wanted = sorted({n.id for n in ast.walk(forward) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                    - local - {"torch", "nn", "self"} - set(dir(builtins)))
    missing = [name for name in wanted if name not in namespace]
    if missing:
        raise Unsupported(f"forward reads {', '.join(missing)}, which {cls.__module__} does not define")
    return [f"from {cls.__module__} import {name}" for name in wanted]


def function_task_source(call, signatures: list[tuple], target: dict[str, Any], result) -> str:
    """A task whose Model calls the profiled modeling function (``call``: a ``run.FunctionCall``)."""
    if call is None:
        raise Unsupported("its call's arguments did not bind to its signature")
    function = call.function
    name, where = function.__name__, function.__module__
    parameters = _function_parameters(function)
    args = call.tensors
    if not args:
        raise Unsupported(f"{name} was called with no tensor argument")
    signature = _main_signature(signatures, len(args), what=name)
    built, literal = _function_constants(call, parameters)
    knobs, dims = _tied_knobs(args, signature)
    shapes = _shapes(signatures, signature, dims)
    multiples = {**_small_knobs(knobs, dims, len(args)), **_even_last_dims(knobs, dims, len(args))}
    description = (f"{_description(target, result)}. A function, not a module: no REPLACES (kernelwright "
                   f"kernelizes modules only), so `kernelwright package` writes a functions-only repository, whose "
                   f"function is called in place of {where}.{name}")
    lines = [
        f'"""{name} from {where}, as profiled in {result.model} {result.phase} ({result.dtype}, {result.device}).'
        f"\n\n{description}.\n" + '"""',
        "", "import torch", "import torch.nn as nn", f"from {where} import {name}", "",
        *[f"{knob} = {value}" for knob, value in knobs.items()], "",
        *([f"KNOB_MULTIPLE_OF = {multiples!r}  # small input dims stay knobs; even last dims stay even"]
          if multiples else []),
        f"DTYPES = [torch.{signature[0][1]}]", f"SHAPES = {shapes!r}", f"DESCRIPTION = {description!r}", "", "",
        "class Model(nn.Module):",
        f"    def __init__({', '.join(['self', *built])}):", "        super().__init__()",
        *[f"        self.{arg} = {arg}" for arg in built], "",
        f"    def forward({', '.join(['self', *args])}):",
        f"        return {_call_text(name, parameters, args, built, literal)}", "", "",
        "def get_inputs():",
        f"    return [{', '.join(_randn(dims[('input', i)]) for i in range(len(args)))}]", "", "",
        "def get_init_inputs():",
        f"    return [{', '.join(repr(v) for v in built.values())}]",
        "",
    ]
    return "\n".join(lines)


def _function_parameters(function) -> dict[str, inspect.Parameter]:
    """The function's parameters, when a task file can import it by name and call it with them."""
    try:
        module = importlib.import_module(function.__module__)
    except ImportError:
        raise Unsupported(f"{function.__module__} cannot be imported") from None
    if getattr(module, function.__name__, None) is not function:
        raise Unsupported(f"{function.__module__}.{function.__name__} is not the function that was profiled")
    parameters = dict(inspect.signature(function).parameters)
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters.values()):
        raise Unsupported(f"{function.__name__} takes *args/**kwargs")
    return parameters


def _function_constants(call, parameters: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor arguments, literals) among the non-tensor arguments: numbers and strings are the Model's
    constructor arguments, as a module's attributes are; a None that is the default is left to the default,
    any other None or tuple of numbers is written into the call."""
    built, literal = {}, {}
    for name, value in call.constants.items():
        if value is None and parameters[name].default is None:
            continue
        if value is not None and isinstance(value, SCALARS):
            built[name] = value
        elif value is None or isinstance(value, (tuple, list)) and all(isinstance(v, SCALARS) for v in value):
            literal[name] = value
        else:
            raise Unsupported(f"{call.function.__name__} takes {name}, a {type(value).__name__}, which a task's "
                              "inputs cannot be")
    return built, literal


def _tied_knobs(args: list[str], signature: tuple) -> tuple[dict[str, int], dict]:
    """One knob per distinct size among the tensor arguments' dims, named after its first place (``q_2``):
    dims of equal size share it, so drawn shapes keep q's, k's and cos's sequence and head dims equal, as the
    function needs (tying two dims that merely happened to be equal only narrows the shapes drawn)."""
    knob_of: dict[int, str] = {}
    dims = {("input", i): [knob_of.setdefault(size, f"{arg}_{j}") for j, size in enumerate(shape)]
            for i, (arg, (shape, _)) in enumerate(zip(args, signature))}
    return {knob: size for size, knob in knob_of.items()}, dims


def _even_last_dims(knobs: dict[str, int], dims: dict, nargs: int) -> dict[str, int]:
    """Last dims that were even stay even: a modeling function's last dim is a head dim, which rotary halves
    (``rotate_half``) and no model has odd; a kernel should not be held to an odd one."""
    last = {dims[("input", i)][-1] for i in range(nargs) if dims[("input", i)]}
    return {n: 2 for n in sorted(last) if knobs[n] % 2 == 0}


def _call_text(name: str, parameters: dict, args: list[str], built: dict, literal: dict) -> str:
    """The call in the forward: tensors positionally while they lead in the signature's order, the rest by keyword."""
    parts, positional = [], True
    for param in parameters.values():
        if param.name in args:
            value = param.name
        elif param.name in built:
            value = f"self.{param.name}"
        elif param.name in literal:
            value = repr(literal[param.name])
        else:
            positional = False  # left to its default: what follows goes by keyword
            continue
        positional = positional and param.name in args and param.kind is not param.KEYWORD_ONLY
        if not positional and param.kind is param.POSITIONAL_ONLY:
            raise Unsupported(f"{name} takes {param.name} positionally only, after an argument left to its default")
        parts.append(value if positional else f"{param.name}={value}")
    return f"{name}({', '.join(parts)})"
