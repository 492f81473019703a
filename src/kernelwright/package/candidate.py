"""Read a candidate file without running it: the kernel code, ModelNew's attributes and its forward.

Packaging turns ``ModelNew.forward`` into a free function (a ``torch.library`` custom op) whose arguments
are the forward inputs followed by the attributes forward reads (``self.weight`` -> ``weight``). Only what
can be read from the syntax is accepted: parameters, buffers, scalar constructor arguments and literal
constants. Anything else (submodules, helper methods, attributes computed at run time) is refused with
a sentence that says what to change, because a packaged layer may define ``forward`` and nothing else.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kernelwright.errors import UsageError

# What a kernel in a Hugging Face kernels repository may import: the standard library, torch and the
# compiler it JIT-compiles with (kernel requirements, "Python requirements").
ALLOWED_IMPORT_ROOTS = {"torch", "triton"}


@dataclass(frozen=True)
class Attribute:
    """One ``self.<name>`` that ModelNew.__init__ sets."""

    name: str
    kind: str  # "parameter" | "buffer" | "scalar" (a constructor argument) | "constant" (a literal)
    init_param: str | None = None
    constant: object = None


@dataclass
class Candidate:
    path: Path
    source: str
    kind: str  # "triton" (the only kind packaged today) or "cuda" (load_inline)
    module_code: str  # the file without ModelNew: imports, kernels, launchers
    init_params: list[str]
    forward_params: list[str]
    forward_body: list[ast.stmt]
    attributes: dict[str, Attribute] = field(default_factory=dict)
    used_attributes: list[str] = field(default_factory=list)  # in first-use order inside forward


def read_candidate(path: Path) -> Candidate:
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise UsageError(f"{path} is not valid Python ({exc.msg}, line {exc.lineno}).") from None
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ModelNew"]
    if not classes:
        raise UsageError(f"{path} does not define `class ModelNew(nn.Module)` at module level; nothing to package.")
    model_new = classes[0]
    kind = _kernel_kind(tree, path)
    _check_imports(tree, path)
    methods = {n.name: n for n in model_new.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    extra = sorted(set(methods) - {"__init__", "forward"})
    if extra:
        raise UsageError(f"ModelNew in {path} defines {', '.join(extra)}; a packaged layer may only define "
                         "`forward`, so move helpers to module-level functions.")
    if "forward" not in methods:
        raise UsageError(f"ModelNew in {path} has no `forward`.")
    init = methods.get("__init__")
    init_params = _plain_params(init, path, "__init__") if init else []
    attributes = _attributes(init, init_params, path) if init else {}
    forward = methods["forward"]
    forward_params = _plain_params(forward, path, "forward")
    used = _used_attributes(forward, attributes, path)
    # The file verbatim without the ModelNew class (decorators, comments and layout kept).
    lines = source.splitlines()
    first = min([model_new.lineno] + [d.lineno for d in model_new.decorator_list]) - 1
    module_code = "\n".join(lines[:first] + lines[model_new.end_lineno:]).strip("\n")
    return Candidate(path=path, source=source, kind=kind, module_code=module_code, init_params=init_params,
                     forward_params=forward_params, forward_body=forward.body, attributes=attributes,
                     used_attributes=used)


def _kernel_kind(tree: ast.Module, path: Path) -> str:
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    if "load_inline" in names or "load" in names and "cpp_extension" in names:
        return "cuda"
    if "jit" in names and any(isinstance(n, (ast.Import, ast.ImportFrom)) and "triton" in ast.unparse(n)
                              for n in ast.walk(tree)):
        return "triton"
    raise UsageError(f"{path} has neither a `@triton.jit` kernel nor a `load_inline` CUDA extension; "
                     "only Triton and CUDA C++ candidates can be packaged.")


def _check_imports(tree: ast.Module, path: Path) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise UsageError(f"{path} uses a relative import (line {node.lineno}); a candidate must be one "
                                 "self-contained file.")
            roots = [(node.module or "").split(".")[0]]
        else:
            continue
        for root in roots:
            if root not in ALLOWED_IMPORT_ROOTS and root not in sys.stdlib_module_names:
                raise UsageError(f"{path} imports `{root}` (line {node.lineno}); a Hugging Face kernel may only "
                                 "import the standard library, torch and triton.")


def _plain_params(fn: ast.FunctionDef, path: Path, what: str) -> list[str]:
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        raise UsageError(f"ModelNew.{what} in {path} takes *args, **kwargs or keyword-only arguments; "
                         "packaging needs plain positional parameters.")
    names = [p.arg for p in a.args]
    if not names or names[0] != "self":
        raise UsageError(f"ModelNew.{what} in {path} must take `self` first.")
    return names[1:]


def _is_self_attr(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return ast.unparse(node.func)
    return ""


def _attributes(init: ast.FunctionDef, init_params: list[str], path: Path) -> dict[str, Attribute]:
    attrs: dict[str, Attribute] = {}
    for stmt in ast.walk(init):
        if isinstance(stmt, ast.Call) and _call_name(stmt).endswith("register_buffer") and stmt.args:
            name = stmt.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                attrs[name.value] = Attribute(name.value, "buffer")
        if not isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            if not _is_self_attr(target):
                continue
            name, value = target.attr, stmt.value
            if _call_name(value).split(".")[-1] == "Parameter":
                attrs[name] = Attribute(name, "parameter")
            elif isinstance(value, ast.Name) and value.id in init_params:
                attrs[name] = Attribute(name, "scalar", init_param=value.id)
            elif isinstance(value, ast.Constant) and isinstance(value.value, (int, float, bool)):
                attrs[name] = Attribute(name, "constant", constant=value.value)
            else:
                attrs[name] = Attribute(name, "unsupported")
    return attrs


def _used_attributes(forward: ast.FunctionDef, attrs: dict[str, Attribute], path: Path) -> list[str]:
    used: list[str] = []
    attr_nodes = {id(n.value) for n in ast.walk(forward) if _is_self_attr(n)}
    for node in ast.walk(forward):
        if isinstance(node, ast.Name) and node.id == "self" and id(node) not in attr_nodes:
            raise UsageError(f"ModelNew.forward in {path} uses `self` other than to read an attribute "
                             f"(line {node.lineno}); a packaged layer cannot call methods of the module it replaces.")
    for node in sorted((n for n in ast.walk(forward) if _is_self_attr(n)), key=lambda n: (n.lineno, n.col_offset)):
        name = node.attr
        attr = attrs.get(name)
        if attr is None or attr.kind == "unsupported":
            raise UsageError(f"ModelNew.forward in {path} reads `self.{name}`, which __init__ does not set from a "
                             "parameter, a buffer, a constructor argument or a literal; packaging cannot map it.")
        if isinstance(node.ctx, ast.Store):
            raise UsageError(f"ModelNew.forward in {path} assigns `self.{name}`; a packaged layer must be stateless.")
        if name not in used:
            used.append(name)
    return used
