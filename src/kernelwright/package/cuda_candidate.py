"""A CUDA C++ candidate's ``load_inline`` call, read without running it, and the one call its forward makes.

What can be packaged for kernel-builder: one ``load_inline`` call at module level whose sources are
string literals (directly, through module-level names, lists or ``+``), ``functions=`` naming what it
exports, and a ``ModelNew.forward`` that is ``return ext.fn(...)`` over its inputs, attributes, literals
and ``.contiguous()`` of those. Everything else the file does in Python would be lost in a compiled
repository, so it is refused with the line it is on.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from kernelwright.errors import UsageError
from kernelwright.package import cpp_signature
from kernelwright.package.candidate import Candidate, _is_self_attr

# Flags that set an optimisation level, a language standard or debug info: kernel-builder's build sets its
# own (release, C++17), so they are dropped and listed in the card.
DROPPED_FLAGS = {"-O0", "-O1", "-O2", "-O3", "-lineinfo", "-std=c++17", "--std=c++17"}
# nvcc flags that change what the kernel computes: kept as build.toml `cuda-flags`, since the kernel was
# verified with them.
KEPT_CUDA_FLAGS = {"--use_fast_math", "-use_fast_math", "--expt-relaxed-constexpr", "--expt-extended-lambda"}
# load_inline keywords that change nothing in the packaged sources.
HARMLESS_KEYWORDS = {"name", "verbose", "build_directory", "keep_intermediates", "use_pch",
                     "with_pytorch_error_handling", "with_cuda", "is_python_module", "no_implicit_headers"}
IMPLICIT_CUDA_HEADERS = ["#include <torch/types.h>", "#include <cuda.h>", "#include <cuda_runtime.h>"]
_EXTENSION_H = re.compile(r'#\s*include\s*[<"]torch/extension\.h[>"]')
# Python bindings and op registration are kernel-builder's job (ABI3: no pybind11; a unique namespace).
_FORBIDDEN_CPP = [(re.compile(r"pybind11|PYBIND11_|\bpy::"), "pybind11"),
                  (re.compile(r"torch/python\.h|Python\.h"), "the CPython API"),
                  (re.compile(r"\bTORCH_LIBRARY\w*\s*\("), "its own Torch op registration")]


@dataclass
class Extension:
    var: str  # the module-level name bound to the extension
    name: str  # load_inline's name
    line: int
    cuda_source: str  # what the .cu file holds
    signatures: dict[str, cpp_signature.Signature]  # the exported functions, in `functions` order
    cuda_flags: list[str] = field(default_factory=list)  # kept (build.toml cuda-flags)
    dropped_flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ForwardCall:
    function: str  # the exported function forward calls
    node: ast.Call  # forward's call, as written


def _is_load_inline(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "load_inline"


def read_extension(candidate: Candidate) -> Extension:
    path = candidate.path
    tree = ast.parse(candidate.source)
    calls = [n for n in ast.walk(tree) if _is_load_inline(n)]
    if not calls:
        raise UsageError(f"{path} builds its extension with cpp_extension.load from files on disk; only "
                         "load_inline candidates, whose C++ is in the file, can be packaged.")
    if len(calls) > 1:
        raise UsageError(f"{path} calls load_inline {len(calls)} times; a packaged kernel is one extension, so "
                         "merge the sources into one load_inline call.")
    strings: dict[str, object] = {}
    extension_var, call = None, calls[0]
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # a docstring
        if isinstance(stmt, ast.ClassDef) and stmt.name == "ModelNew":
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        if len(targets) == 1 and isinstance(targets[0], ast.Name) and stmt.value is not None:
            target = targets[0].id
            if stmt.value is call:
                extension_var = target
                continue
            value = _string_value(stmt.value, strings)
            if value is not None:
                strings[target] = value
                continue
        raise UsageError(f"{path} line {stmt.lineno}: `{ast.unparse(stmt).splitlines()[0][:70]}` is Python beyond "
                         "the extension's sources and its load_inline call, which a compiled kernel-builder "
                         "repository cannot carry; move that logic into the CUDA source or into forward's call.")
    if extension_var is None:
        raise UsageError(f"{path} line {call.lineno}: load_inline must be called once at module level and bound "
                         "to a name (`_ext = load_inline(...)`) for the candidate to be packaged.")
    return _extension(call, extension_var, strings, path)


def _string_value(node: ast.AST, strings: dict[str, object]):
    """A str or list of str the expression denotes, or None when it is not built only from literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in strings:
        return strings[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_string_value(e, strings) for e in node.elts]
        if any(i is None for i in items):
            return None
        return [s for i in items for s in (i if isinstance(i, list) else [i])]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string_value(node.left, strings), _string_value(node.right, strings)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, list) and isinstance(right, list):
            return left + right
    return None


def _as_list(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _extension(call: ast.Call, var: str, strings: dict[str, object], path) -> Extension:
    where = f"{path} line {call.lineno}"
    if len(call.args) > 3:
        raise UsageError(f"{where}: load_inline takes {len(call.args)} positional arguments; pass everything after "
                         "cuda_sources by keyword (its positions differ between torch versions).")
    args = dict(zip(["name", "cpp_sources", "cuda_sources"], call.args))
    args.update({k.arg: k.value for k in call.keywords if k.arg})
    if any(k.arg is None for k in call.keywords):
        raise UsageError(f"{where}: load_inline is called with **kwargs; spell the arguments out to package it.")
    values = {}
    for key, node in args.items():
        if key in ("verbose", "build_directory", "keep_intermediates", "use_pch", "with_pytorch_error_handling"):
            continue
        if key in ("with_cuda", "is_python_module", "no_implicit_headers"):
            if not isinstance(node, ast.Constant):
                raise UsageError(f"{where}: load_inline's {key}= must be a literal to be packaged.")
            values[key] = node.value
            continue
        if key == "functions" and isinstance(node, ast.Dict):
            keys = [_string_value(k, strings) if k is not None else None for k in node.keys]
            if any(not isinstance(k, str) for k in keys):
                raise UsageError(f"{where}: load_inline's functions= dict must have string literal keys.")
            values[key] = keys
            continue
        value = _string_value(node, strings)
        if value is None and key == "name":
            value = ast.unparse(node)  # only shown in the card; the build names the extension itself
        if value is None:
            raise UsageError(f"{where}: load_inline's {key}= is not built from string literals (an f-string, a "
                             "call or a name set elsewhere); packaging reads the sources without running the file.")
        values[key] = value
    unknown = sorted(set(values) - HARMLESS_KEYWORDS - {"cpp_sources", "cuda_sources", "functions", "extra_cflags",
                                                         "extra_cuda_cflags", "extra_ldflags", "extra_include_paths",
                                                         "sycl_sources", "extra_sycl_cflags"})
    if unknown:
        raise UsageError(f"{where}: load_inline's {', '.join(unknown)} cannot be mapped to build.toml.")
    if values.get("is_python_module") is False or values.get("with_cuda") is False:
        raise UsageError(f"{where}: the extension is built with is_python_module=False or with_cuda=False; only a "
                         "CUDA extension module can be packaged.")
    if _as_list(values.get("sycl_sources")):
        raise UsageError(f"{where}: the extension has sycl_sources; only CUDA sources are packaged.")
    for key in ("extra_ldflags", "extra_include_paths"):
        if _as_list(values.get(key)):
            raise UsageError(f"{where}: load_inline's {key}={_as_list(values[key])} names libraries or headers "
                             "outside the candidate, which a kernel-builder repository cannot carry.")
    cuda_sources = _as_list(values.get("cuda_sources"))
    if not "".join(cuda_sources).strip():
        raise UsageError(f"{where}: the extension has no cuda_sources; only CUDA C++ extensions are packaged.")
    functions = _as_list(values.get("functions"))
    if not functions:
        raise UsageError(f"{where}: load_inline has no functions=; name the functions it exports so the binding "
                         "can register them.")
    kept, dropped = [], []
    for key, keep in (("extra_cflags", set()), ("extra_cuda_cflags", KEPT_CUDA_FLAGS)):
        for flag in _as_list(values.get(key)):
            if flag in keep:
                kept.append(flag)
            elif flag in DROPPED_FLAGS:
                dropped.append(flag)
            else:
                raise UsageError(f"{where}: load_inline's {key} has `{flag}`, which may change what is compiled "
                                 f"and has no build.toml equivalent kernelwright maps; packaged flags: "
                                 f"{', '.join(sorted(KEPT_CUDA_FLAGS))} (others dropped: "
                                 f"{', '.join(sorted(DROPPED_FLAGS))}).")
    cpp_source = "\n".join(_as_list(values.get("cpp_sources")))
    declared = cpp_signature.declarations(cpp_source, f"{where} (cpp_sources)")
    signatures = {}
    for fn in functions:
        if fn not in declared:
            raise UsageError(f"{where}: functions= names `{fn}`, which cpp_sources does not declare; declare it "
                             "there (`torch::Tensor {fn}(torch::Tensor x);`).")
        signatures[fn] = cpp_signature.parse(declared[fn], f"{where} (cpp_sources)")
        cpp_signature.check_schema(signatures[fn])
    body = "\n".join(cuda_sources)
    notes = []
    if _EXTENSION_H.search(body):
        body = _EXTENSION_H.sub("#include <torch/all.h>", body)
        notes.append("`#include <torch/extension.h>` became `#include <torch/all.h>`: extension.h pulls in pybind11, "
                     "which kernel-builder's ABI3 build cannot compile; all.h is the rest of it.")
    scan = cpp_signature.strip_comments(body + "\n" + cpp_source)
    for pattern, what in _FORBIDDEN_CPP:
        if pattern.search(scan):
            raise UsageError(f"{where}: the extension's C++ uses {what}; kernel-builder generates the Python module "
                             "and registers the ops itself (TORCH_LIBRARY_EXPAND), so remove it.")
    implicit = [] if values.get("no_implicit_headers") else IMPLICIT_CUDA_HEADERS
    if dropped:
        notes.append(f"compiler flags dropped (kernel-builder sets its own optimisation level and standard): "
                     f"{', '.join(dropped)}.")
    if kept:
        notes.append(f"nvcc flags kept as build.toml cuda-flags (the kernel was verified with them): {', '.join(kept)}.")
    return Extension(var=var, name=str(values.get("name", "")), line=call.lineno,
                     cuda_source="\n".join(implicit + [body]), signatures=signatures, cuda_flags=kept,
                     dropped_flags=dropped, notes=notes)


def forward_call(candidate: Candidate, ext: Extension) -> ForwardCall:
    """ModelNew.forward must be one ``return ext.fn(args)``; args are inputs, attributes, literals and their
    ``.contiguous()``. The layer and the exported function repeat that call on ``ops``."""
    path = candidate.path
    body = [s for s in candidate.forward_body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    shape = "`return {0}.fn(...)` over inputs, attributes, literals and their .contiguous()".format(ext.var)
    if len(body) != 1 or not isinstance(body[0], ast.Return) or not isinstance(body[0].value, ast.Call):
        line = body[0].lineno if body else "?"
        raise UsageError(f"ModelNew.forward in {path} (line {line}) does more than call the extension; a packaged "
                         f"CUDA layer can only repeat one call, so forward must be {shape}.")
    call = body[0].value
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == ext.var):
        raise UsageError(f"ModelNew.forward in {path} returns `{ast.unparse(call)[:60]}`, not a call of the "
                         f"extension; forward must be {shape}.")
    if func.attr not in ext.signatures:
        raise UsageError(f"ModelNew.forward in {path} calls `{ext.var}.{func.attr}`, which load_inline's functions= "
                         f"does not export (it exports {', '.join(ext.signatures)}).")
    if call.keywords:
        raise UsageError(f"ModelNew.forward in {path} passes keyword arguments to `{func.attr}`; the extension's "
                         "functions take positional arguments.")
    sig = ext.signatures[func.attr]
    if len(call.args) != len(sig.params):
        raise UsageError(f"ModelNew.forward in {path} passes {len(call.args)} argument(s) to `{func.attr}`, which "
                         f"is declared with {len(sig.params)}: `{sig.declaration}`.")
    for arg, param in zip(call.args, sig.params):
        kind = _arg_kind(arg, candidate)
        if kind is None:
            raise UsageError(f"ModelNew.forward in {path} passes `{ast.unparse(arg)}` to `{func.attr}`; arguments may "
                             "only be forward's inputs, self.<attribute>, literals or `.contiguous()` of those.")
        if (kind == "tensor") != (param.schema_type == "Tensor"):
            raise UsageError(f"ModelNew.forward in {path} passes `{ast.unparse(arg)}` ({kind}) as `{param.name}` "
                             f"({param.schema_type}) of `{sig.declaration}`.")
    return ForwardCall(function=func.attr, node=call)


def _arg_kind(node: ast.expr, candidate: Candidate) -> str | None:
    """"tensor" or "scalar" for an argument packaging can repeat, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "contiguous"
            and not node.args and not node.keywords):
        inner = _arg_kind(node.func.value, candidate)
        return inner if inner == "tensor" else None
    if isinstance(node, ast.Name) and node.id in candidate.forward_params:
        return "tensor"
    if _is_self_attr(node):
        attr = candidate.attributes.get(node.attr)
        if attr is None:
            return None
        return "tensor" if attr.kind in ("parameter", "buffer") else "scalar"
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        return "scalar"
    return None
