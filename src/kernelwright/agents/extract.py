"""Pulling a candidate file out of a model's reply: fenced blocks, several files, prose around them.

Rules, in order:

1. Fenced blocks (```lang or ~~~, an unterminated last fence counts to the end: replies get cut off).
2. The Python block that defines ``class ModelNew`` is the candidate. Other Python blocks it needs (a
   kernel in one block, the wrapper in the next) are joined in reply order when the ModelNew block uses
   names only they define.
3. CUDA/C++ blocks are bound to the names the Python code uses but never defines (``cuda_src``,
   ``cpp_src``): a name mentioning cpp/header/decl takes a C++ block, any other a CUDA block, so a reply
   that puts ``load_inline``'s sources in their own blocks still yields one runnable file.
4. No fences: the reply from its first line of code on, if that parses.

:class:`ExtractionError` says what was missing; the conductor feeds that back to the writer.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)(?:^(?P=fence)[ \t]*$|\Z)",
                    re.MULTILINE | re.DOTALL)
_PY = {"python", "py", "python3", ""}
_CPP = {"cpp", "c++", "cc", "cxx", "h", "hpp", "c"}
_CUDA = {"cuda", "cu", "cuh"}
_CODE_START = re.compile(r"^(import |from |#|@|class |def |[A-Za-z_]\w* = )", re.MULTILINE)


class ExtractionError(ValueError):
    """The reply holds no usable candidate."""


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    filename: str = ""


def blocks(reply: str) -> list[Block]:
    found = []
    for m in _FENCE.finditer(reply):
        info = m.group("info").strip()
        lang, _, rest = info.partition(" ")
        filename = ""
        named = re.search(r"([\w./-]+\.(?:py|cu|cuh|cpp|cc|h|hpp))", info)
        if named:
            filename = named.group(1)
            if lang == filename:
                lang = filename.rsplit(".", 1)[1]
        found.append(Block(_language(lang.lower(), filename), m.group("body").rstrip() + "\n", filename))
    return found


def _language(lang: str, filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if filename else lang
    if lang in _CUDA or ext in _CUDA:
        return "cuda"
    if lang in _CPP or ext in _CPP:
        return "cpp"
    if lang in _PY or ext == "py":
        return "python"
    return lang


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _defines_modelnew(tree: ast.Module | None, code: str) -> bool:
    if tree is None:
        return "class ModelNew" in code
    return any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body)


def _names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names defined anywhere, names loaded anywhere)."""
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, (ast.Store, ast.Del)) else used).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
    return defined, used


def _undefined(code: str) -> list[str]:
    tree = _parses(code)
    if tree is None:
        return []
    defined, used = _names(tree)
    return sorted(used - defined - set(dir(builtins)) - {"__file__", "__name__"})


def extract_candidate(reply: str) -> str:
    """The candidate module's source from ``reply``; raises :class:`ExtractionError`."""
    found = blocks(reply)
    python = [b for b in found if b.lang == "python"]
    main = next((b for b in python if _defines_modelnew(_parses(b.body), b.body)), None)
    if main is None:
        if found:
            raise ExtractionError("the reply's code blocks define no `class ModelNew(nn.Module)`; return one complete "
                                  "Python file in a ```python block")
        return _unfenced(reply)
    code = main.body
    helpers = [b for b in python if b is not main]
    missing = set(_undefined(code))
    for block in helpers:  # join the blocks that define what the ModelNew block needs, in reply order
        tree = _parses(block.body)
        if tree is not None and missing & _names(tree)[0]:
            code = block.body + "\n" + code if found.index(block) < found.index(main) else code + "\n" + block.body
            missing = set(_undefined(code))
    return _bind_sources(code, [b for b in found if b.lang in ("cuda", "cpp")])


def _bind_sources(code: str, sources: list[Block]) -> str:
    if not sources:
        return code
    cuda = [b for b in sources if b.lang == "cuda"] or sources
    cpp = [b for b in sources if b.lang == "cpp"] or sources
    bindings = []
    for name in _undefined(code):
        lowered = name.lower()
        if not any(w in lowered for w in ("src", "source", "code", "cuda", "cpp", "kernel", "header", "decl")):
            continue
        pool = cpp if any(w in lowered for w in ("cpp", "header", "decl")) else cuda
        if pool:
            bindings.append(f"{name} = {json.dumps(pool.pop(0).body)}\n")
    if not bindings:
        return code
    tree = _parses(code)
    # after the imports (and a leading docstring) so the file still reads top to bottom
    insert_at = 0
    if tree is not None:
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) or (isinstance(node, ast.Expr) and isinstance(
                    getattr(node, "value", None), ast.Constant)):
                insert_at = node.end_lineno
            else:
                break
    lines = code.splitlines(keepends=True)
    return "".join(lines[:insert_at]) + "\n" + "".join(bindings) + "".join(lines[insert_at:])


def _unfenced(reply: str) -> str:
    m = _CODE_START.search(reply)
    if m is not None:
        code = reply[m.start():].strip() + "\n"
        if _parses(code) is not None and _defines_modelnew(_parses(code), code):
            return code
    raise ExtractionError("the reply holds no Python code defining `class ModelNew(nn.Module)`; return one complete "
                          "Python file in a ```python block")


def extract_json(reply: str) -> dict | list | None:
    """The first JSON object in a ```json block, or in the reply itself; None when there is none."""
    candidates = [b.body for b in blocks(reply) if b.lang in ("json", "python", "")] + [reply]
    for text in candidates:
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start < 0:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            return value
        except json.JSONDecodeError:
            continue
    return None
