"""The ``transformers`` module a task says its kernel replaces (``REPLACES``), and how ModelNew maps onto it.

A packaged layer's ``forward`` runs with ``self`` bound to the module it replaces (``kernelize`` swaps the
method, not the object), so ``self.eps`` in the candidate must become ``self.variance_epsilon`` for
``LlamaRMSNorm``. The replaced class is built once from the task's init inputs to list its parameters,
buffers and scalar attributes; each attribute the candidate's forward reads is matched by name, else
by kind when one attribute of that kind is left, else by value (the constructor argument it holds).
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

from kernelwright.errors import UsageError
from kernelwright.package.candidate import Candidate

# Names a copied reference forward may use: they exist inside the packaged kernel.
REFERENCE_GLOBALS = {"torch", "nn", "F", "math"}


@dataclass
class Replaced:
    qualname: str
    cls: type
    layer_key: str  # the name kernels' mapping uses: transformers' `kernel_layer_name`, else the class name
    decorated: bool  # whether transformers already marked the class for kernelize
    forward_params: list[inspect.Parameter]  # without self
    attributes: dict[str, str]  # name -> "parameter" | "buffer" | "scalar"
    values: dict[str, Any]  # scalar attribute values of the instance built from the task's init inputs
    reference_source: str | None  # the class's forward, copied, or None when it cannot stand alone
    reference_note: str = ""

    @property
    def class_name(self) -> str:
        return self.cls.__name__


def import_class(qualname: str) -> type:
    module_name, _, class_name = qualname.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "transformers":
            raise UsageError(f"Packaging a layer for {qualname} needs `transformers`; install the extra with "
                             "`pip install 'kernelwright[package]'`.") from None
        raise UsageError(f"The task's REPLACES names {qualname}, whose module cannot be imported ({exc}).") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise UsageError(f"The task's REPLACES names {qualname}, but {module_name} has no class {class_name}.")
    return cls


def describe_replaced(qualname: str, init_inputs: list[Any]) -> Replaced:
    import torch

    cls = import_class(qualname)
    try:
        instance = cls(*init_inputs)
    except Exception as exc:  # noqa: BLE001 -- any failure means the task and the class disagree
        raise UsageError(f"Cannot build {qualname} from the task's get_init_inputs() {init_inputs!r} "
                         f"({type(exc).__name__}: {exc}); REPLACES must take the same constructor arguments.") from None
    attributes: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, _ in instance.named_parameters(recurse=False):
        attributes[name] = "parameter"
    for name, _ in instance.named_buffers(recurse=False):
        attributes[name] = "buffer"
    for name, value in vars(instance).items():
        if not name.startswith("_") and name != "training" and type(value) in (int, float, bool):
            attributes[name] = "scalar"
            values[name] = value
    params = list(inspect.signature(cls.forward).parameters.values())[1:]
    source, note = _reference_source(cls)
    del torch
    key = getattr(cls, "kernel_layer_name", None) or declared_layer_name(cls) or cls.__name__
    return Replaced(qualname=qualname, cls=cls, layer_key=key,
                    decorated=hasattr(cls, "kernel_layer_name"), forward_params=params, attributes=attributes,
                    values=values, reference_source=source, reference_note=note)


def describe_task_model(task_obj, init_inputs: list[Any]) -> Replaced:
    """The task's own ``Model`` in place of a replaced class, for a task without ``REPLACES``: attributes map
    onto it and its forward is the reference, but there is no layer (``layer_key`` is empty)."""
    cls = task_obj.load().Model
    try:
        instance = cls(*init_inputs)
    except Exception as exc:  # noqa: BLE001 -- the task's own Model must build from its own init inputs
        raise UsageError(f"Task {task_obj.name}'s Model does not build from its get_init_inputs() "
                         f"({type(exc).__name__}: {exc}); fix the task file.") from None
    attributes = {name: "parameter" for name, _ in instance.named_parameters(recurse=False)}
    attributes |= {name: "buffer" for name, _ in instance.named_buffers(recurse=False)}
    values = {name: value for name, value in vars(instance).items()
              if not name.startswith("_") and name != "training" and type(value) in (int, float, bool)}
    attributes |= {name: "scalar" for name in values}
    source, note = _reference_source(cls)
    return Replaced(qualname=f"{task_obj.name}.Model", cls=cls, layer_key="", decorated=False,
                    forward_params=list(inspect.signature(cls.forward).parameters.values())[1:],
                    attributes=attributes, values=values, reference_source=source, reference_note=note)


@functools.lru_cache(maxsize=None)  # called for every module of a model; parsing a class's source is slow
def declared_layer_name(cls: type) -> str | None:
    """The name in ``@use_kernel_forward_from_hub("...")`` above the class in its source. transformers only
    applies the decorator with a ``kernels`` version it supports, but the name it would use is the key
    every mapping should use."""
    try:
        node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return None
    for dec in getattr(node, "decorator_list", []):
        if (isinstance(dec, ast.Call) and ast.unparse(dec.func).endswith("use_kernel_forward_from_hub") and dec.args
                and isinstance(dec.args[0], ast.Constant) and isinstance(dec.args[0].value, str)):
            return dec.args[0].value
    return None


def _reference_source(cls: type) -> tuple[str | None, str]:
    """The class's forward as a free function ``reference(self, ...)``, when it uses only torch and math."""
    try:
        text = textwrap.dedent(inspect.getsource(cls.forward))
    except (OSError, TypeError) as exc:
        return None, f"its source is not available ({exc})"
    fn = ast.parse(text).body[0]
    if not isinstance(fn, ast.FunctionDef):
        return None, "its forward is not a plain function"
    fn.decorator_list = []
    fn.name = "reference"
    for arg in fn.args.args + fn.args.kwonlyargs:
        arg.annotation = None  # annotations may name transformers types
    fn.returns = None
    bound = {a.arg for a in fn.args.args + fn.args.kwonlyargs} | {
        n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    free = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    unknown = sorted(free - bound - REFERENCE_GLOBALS - set(dir(builtins)))
    if unknown:
        return None, f"its forward uses {', '.join(unknown)}, which a kernel cannot import"
    return ast.unparse(fn), ""


def map_attributes(candidate: Candidate, replaced: Replaced, init_values: dict[str, Any]) -> dict[str, str]:
    """candidate attribute -> replaced attribute, for every attribute the candidate's forward reads."""
    mapping: dict[str, str] = {}
    wanted = [a for a in candidate.used_attributes if candidate.attributes[a].kind != "constant"]
    kind_of = {"parameter": "tensor", "buffer": "tensor", "scalar": "scalar"}
    free = dict(replaced.attributes)
    for name in wanted:  # same name, compatible kind
        attr = candidate.attributes[name]
        if name in free and kind_of[free[name]] == kind_of[attr.kind]:
            mapping[name] = name
            free.pop(name)
    for name in wanted:
        if name in mapping:
            continue
        attr = candidate.attributes[name]
        same_kind = [r for r, k in free.items() if kind_of[k] == kind_of[attr.kind]]
        if attr.kind == "scalar" and len(same_kind) > 1:  # several scalars left: match the value it holds
            value = init_values.get(attr.init_param)
            same_kind = [r for r in same_kind if replaced.values.get(r) == value]
        if len(same_kind) != 1:
            options = ", ".join(f"{r} ({k})" for r, k in replaced.attributes.items()) or "none"
            raise UsageError(f"Cannot tell which attribute of {replaced.qualname} ModelNew's `self.{name}` "
                             f"({attr.kind}) stands for; its attributes are: {options}. Name it like the "
                             "replaced module does.")
        mapping[name] = same_kind[0]
        free.pop(same_kind[0])
    return mapping


@dataclass(frozen=True)
class BuiltIn:
    """Float settings the kernel has in its source instead of reading them at run time (a generated kernel
    bakes the task's ``eps``). ``guards``: attribute of the replaced module -> the value the kernel was
    verified with, so the layer can hand a module configured otherwise back to its original forward;
    ``unmatched``: the candidate's values that no attribute of the replaced module holds."""

    guards: dict[str, float]
    unmatched: dict[str, float]


def built_in_values(candidate: Candidate, replaced: Replaced, init_values: dict[str, Any],
                    mapping: dict[str, str]) -> BuiltIn:
    taken = set(mapping.values())
    free = {r: v for r, v in replaced.values.items() if r not in taken and isinstance(v, float)}
    guards: dict[str, float] = {}
    unmatched: dict[str, float] = {}
    for name, attr in candidate.attributes.items():
        if attr.kind == "scalar" and name not in candidate.used_attributes:
            value = init_values.get(attr.init_param)
        elif attr.kind == "constant":
            value = attr.constant
        else:
            continue
        if not isinstance(value, float):
            continue
        same = [r for r, v in free.items() if v == value and r not in guards]
        if len(same) == 1:
            guards[same[0]] = value
        else:
            unmatched[name] = value
    return BuiltIn(guards, unmatched)
