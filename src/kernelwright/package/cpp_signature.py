"""C++ declarations of a ``load_inline`` extension's exported functions, as Torch op schemas.

kernel-builder registers native functions with ``ops.def("<schema>")`` and ``ops.impl(name, torch::kCUDA,
&fn)``. The dispatcher takes only some C++ types in an unboxed kernel: ``at::Tensor`` (by value or const
reference), ``double``, ``int64_t`` and ``bool``. A function declared with ``float`` or ``int`` (which
pybind11 accepted under ``load_inline``) is registered through a small wrapper that converts. Anything
else (pointers, optionals, lists, strings, a non-const tensor reference, ``void``) is refused: the
kernel would need a hand-written binding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kernelwright.errors import UsageError

TENSOR_TYPES = {"torch::Tensor", "at::Tensor"}
# C++ scalar type -> (schema type, the C++ type the dispatcher hands over)
SCALAR_TYPES = {
    "double": ("float", "double"), "float": ("float", "double"),
    "int64_t": ("int", "int64_t"), "std::int64_t": ("int", "int64_t"), "int": ("int", "int64_t"),
    "bool": ("bool", "bool"),
}
_IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Param:
    name: str
    schema_type: str  # "Tensor" | "float" | "int" | "bool"
    cpp_type: str  # as the function takes it, without const/&: "torch::Tensor", "float", ...
    native: bool  # the dispatcher can hand it over as declared

    @property
    def wrapper_decl(self) -> str:
        """How a dispatcher-facing wrapper takes this parameter."""
        if self.schema_type == "Tensor":
            return f"const at::Tensor &{self.name}"
        return f"{SCALAR_TYPES[self.cpp_type][1]} {self.name}"

    @property
    def forwarded(self) -> str:
        return self.name if self.native or self.schema_type == "Tensor" else f"static_cast<{self.cpp_type}>({self.name})"


@dataclass(frozen=True)
class Signature:
    name: str
    returns: str  # schema return: "Tensor", "Tensor[]" or "(Tensor, Tensor, ...)"
    return_cpp: str  # as declared
    params: tuple[Param, ...]
    declaration: str  # the declaration, whitespace collapsed, ending in ";"

    @property
    def schema(self) -> str:
        return f"{self.name}({', '.join(f'{p.schema_type} {p.name}' for p in self.params)}) -> {self.returns}"

    @property
    def needs_wrapper(self) -> bool:
        return not all(p.native for p in self.params)

    @property
    def impl_symbol(self) -> str:
        return f"{self.name}_kw_dispatch" if self.needs_wrapper else self.name


def strip_comments(code: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", " ", code, flags=re.S)


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch in "<([" and 1 or 0
        depth -= ch in ">)]" and 1 or 0
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _collapse(text: str) -> str:
    """One spelling per declaration: `const torch::Tensor &x`, `std::tuple<torch::Tensor, torch::Tensor> f`."""
    text = re.sub(r"\s+", " ", text).strip()
    for pattern, repl in ((r"\s*::\s*", "::"), (r"<\s*", "<"), (r"\s*>", ">"), (r">(?=\w)", "> "),
                          (r"\s*,\s*", ", "), (r"\s*&\s*", " &"), (r"\s*\*\s*", " *")):
        text = re.sub(pattern, repl, text)
    return text


def declarations(cpp_source: str, where: str) -> dict[str, str]:
    """name -> declaration, for every function declared in ``cpp_source`` (load_inline's cpp_sources).
    Only #include lines and declarations are allowed: definitions belong in the CUDA source."""
    found: dict[str, str] = {}
    code = strip_comments(cpp_source)
    lines = []
    for line in code.splitlines():
        if line.strip().startswith("#"):
            if not re.match(r"\s*#\s*(include|pragma\s+once)\b", line):
                raise UsageError(f"{where} has the preprocessor line `{line.strip()}`; a packaged extension's "
                                 "cpp_sources may hold only #include lines and function declarations.")
            continue
        lines.append(line)
    for chunk in _split_top(" ".join(lines), ";"):
        if not chunk:
            continue
        if "{" in chunk or "}" in chunk or "(" not in chunk:
            raise UsageError(f"{where} holds `{_collapse(chunk)[:80]}`, which is not a function declaration; "
                             "move definitions into cuda_sources and keep only declarations in cpp_sources.")
        name = re.search(r"([A-Za-z_]\w*)\s*$", chunk[:chunk.index("(")])
        if name is None:
            raise UsageError(f"{where}: cannot read a function name in `{_collapse(chunk)[:80]}`.")
        found[name.group(1)] = _collapse(chunk) + ";"
    return found


def parse(declaration: str, where: str) -> Signature:
    """One declaration (``RET NAME(PARAMS);``) as a Signature; refuses types the binding cannot carry."""
    text = _collapse(declaration.rstrip().rstrip(";"))
    head, _, rest = text.partition("(")
    params_text = rest[:rest.rindex(")")] if ")" in rest else ""
    found = re.search(r"([A-Za-z_]\w*)\s*$", head)
    if found is None:
        raise UsageError(f"{where}: cannot read a function name in `{text[:80]}`.")
    ret, name = head[:found.start()], found.group(1)
    for qualifier in ("inline", "static", "extern"):
        if re.search(rf"\b{qualifier}\b", ret):
            raise UsageError(f"{where}: `{name}` is declared `{qualifier}`; an exported function needs external "
                             "linkage so the binding can call it.")
    ret = _collapse(ret)
    returns = _return_schema(ret, name, where)
    params = []
    for i, p in enumerate(q for q in _split_top(params_text) if q and q != "void"):
        params.append(_param(p, i, name, where))
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise UsageError(f"{where}: `{name}` repeats a parameter name; name each parameter once.")
    return Signature(name=name, returns=returns, return_cpp=ret, params=tuple(params),
                     declaration=_collapse(text) + ";")


def _return_schema(ret: str, name: str, where: str) -> str:
    bare = ret.replace("const ", "").strip()
    if bare in TENSOR_TYPES:
        return "Tensor"
    m = re.fullmatch(r"std::vector<(.+)>", bare)
    if m and m.group(1).strip() in TENSOR_TYPES:
        return "Tensor[]"
    m = re.fullmatch(r"std::tuple<(.+)>", bare)
    if m and all(t in TENSOR_TYPES for t in _split_top(m.group(1))):
        return "(" + ", ".join("Tensor" for _ in _split_top(m.group(1))) + ")"
    raise UsageError(f"{where}: `{name}` returns `{ret or '?'}`; a packaged function must return torch::Tensor, "
                     "std::vector<torch::Tensor> or std::tuple of tensors (its outputs).")


def _param(text: str, index: int, fn: str, where: str) -> Param:
    decl = _collapse(text.split("=", 1)[0])
    if "*" in decl:
        raise UsageError(f"{where}: `{fn}` takes a pointer (`{decl}`); Torch ops take tensors and scalars only.")
    is_ref = "&" in decl
    is_const = bool(re.search(r"\bconst\b", decl))
    words = re.sub(r"\bconst\b|&", " ", decl).split()
    if len(words) >= 2 and _IDENT.fullmatch(words[-1]) and " ".join(words[:-1]) in TENSOR_TYPES | set(SCALAR_TYPES):
        cpp_type, name = " ".join(words[:-1]), words[-1]
    else:
        cpp_type, name = " ".join(words), f"arg{index}"
    if cpp_type in TENSOR_TYPES:
        if is_ref and not is_const:
            raise UsageError(f"{where}: `{fn}` takes `{decl}`, a non-const tensor reference; packaging needs "
                             "functions that leave their inputs alone and return their outputs.")
        return Param(name=name, schema_type="Tensor", cpp_type=cpp_type, native=True)
    if cpp_type in SCALAR_TYPES:
        schema, dispatch = SCALAR_TYPES[cpp_type]
        return Param(name=name, schema_type=schema, cpp_type=cpp_type, native=cpp_type == dispatch and not is_ref)
    raise UsageError(f"{where}: `{fn}` takes `{decl}`; the binding carries torch::Tensor, double/float, "
                     "int64_t/int and bool parameters only.")


def check_schema(sig: Signature) -> None:
    """The schema must parse as a Torch function schema (what ops.def will do at import time)."""
    import torch

    try:
        torch._C.parse_schema(sig.schema)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"The op schema `{sig.schema}` derived from `{sig.declaration}` does not parse ({first}); "
                         "rename the parameters.") from None
