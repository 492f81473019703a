"""The static policy: an AST pass over the candidate's Python and a scan of its inline CUDA source.

Runs in the parent, before any process is spawned, on the candidate's text only. The policy is data
(``RULES``): each rule has an id (``import:os``, ``call:exec``, ``cuda:stream`` ...), the check name a
violation is reported under, and a reason. A task file may allow rules with the extension
``ALLOWED_POLICY = ["import:os", ...]`` (a rule id, or a prefix ending in ``:`` such as ``"cuda:"``).

Static rules can be evaded (``getattr`` with a computed name, a module reached through another
module's attributes); every class of cheat they look for is also checked dynamically in the worker
(``guard.py``). The static pass exists to give a precise line number early and to keep obviously
dangerous code (sockets, subprocesses) from running at all.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Modules whose import a kernel never needs and a cheat often does: process/OS access, introspection,
# dynamic import, threads. Submodules count (``os.path``).
FORBIDDEN_IMPORTS = {
    "os": "operating-system access", "sys": "interpreter internals (frames, modules)",
    "ctypes": "raw memory access", "gc": "reading objects through the garbage collector",
    "inspect": "reading frames", "threading": "work deferred to threads",
    "multiprocessing": "work in other processes", "concurrent": "work deferred to threads or processes",
    "subprocess": "running programs", "socket": "network access", "importlib": "dynamic imports",
    "builtins": "replacing builtins", "signal": "signal handlers", "traceback": "reading frames",
    "kernelwright": "the verifier and the task's reference", "weakref": "reaching objects it was not given",
    "pickle": "code execution through pickles", "marshal": "code objects", "shutil": "file system access",
    "asyncio": "work deferred to an event loop", "atexit": "code run at exit",
}
# Builtins whose call runs or reaches code or objects dynamically.
FORBIDDEN_CALLS = {
    "__import__": "dynamic import", "exec": "dynamic code", "eval": "dynamic code", "compile": "dynamic code",
    "open": "file access", "globals": "reading module namespaces", "vars": "reading namespaces",
    "locals": "reading frames", "breakpoint": "a debugger", "input": "reading stdin",
}
# Roots whose attributes must not be assigned or deleted (monkeypatching), by any alias of them.
PROTECTED_ROOTS = {"torch", "triton", "time", "numpy", "math", "functools", "json", "random"}
# Names a candidate uses to reach the task's reference or the worker.
REFERENCE_NAMES = {"get_inputs", "get_init_inputs", "sys.modules", "__main__", "__builtins__", "__loader__",
                   "__spec__", "torch._C", "_python_dispatch", "TorchDispatchMode", "TorchFunctionMode",
                   "__subclasses__", "__globals__", "f_back", "f_locals", "tb_frame", "gi_frame"}
# Inline CUDA/C++ source: patterns that defer work, change the device, or skew the cache for timing.
CUDA_PATTERNS = [
    ("cuda:stream", r"cudaStreamCreate\w*|getStreamFromPool|cudaStreamBeginCapture|cuStreamCreate",
     "creates a stream: work on a side stream escapes timing"),
    ("cuda:host_callback", r"cudaLaunchHostFunc|cudaStreamAddCallback|cuLaunchHostFunc",
     "schedules a host callback: work deferred past the launch"),
    ("cuda:device_limit", r"cudaDeviceSetLimit|cudaDeviceSetCacheConfig|cudaDeviceSetSharedMemConfig|cudaDeviceReset",
     "changes device-wide settings"),
    ("cuda:l2_persistence", r"cudaStreamSetAttribute|accessPolicyWindow|cudaCtxResetPersistingL2Cache|"
                            r"cudaLimitPersistingL2CacheSize|hitProp",
     "sets a persisting-L2 access policy: inputs stay cached between timed calls"),
    ("cuda:host_thread", r"std::thread|pthread_create|std::async",
     "starts host threads: work deferred past the launch"),
    ("cuda:event_timing", r"cudaEventElapsedTime|cudaEventRecord|clock64|%globaltimer",
     "reads timers: a kernel has no business with the clock"),
]
PYTHON_STREAM_CALLS = {"torch.cuda.Stream", "torch.cuda.stream", "torch.cuda.set_stream", "torch.Stream",
                       "torch.cuda.ExternalStream", "torch.cuda.graphs.CUDAGraph", "torch.cuda.CUDAGraph"}


@dataclass(frozen=True)
class Violation:
    rule: str    # rule id, e.g. "import:os"
    check: str   # the named check it is reported under
    line: int
    message: str

    def as_dict(self) -> dict:
        return {"check": self.check, "rule": self.rule, "line": self.line, "message": self.message}


def allowed(rule: str, allow: tuple[str, ...] | list[str]) -> bool:
    return any(rule == a or (a.endswith(":") and rule.startswith(a)) for a in allow)


def check_source(source: str, *, allow: tuple[str, ...] | list[str] = ()) -> list[Violation]:
    """Every policy violation in a candidate's source, in line order, minus the rules ``allow`` lists.
    A file that does not parse yields no violations: the worker reports the syntax error."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = _PythonPass().run(tree) + _cuda_scan(tree)
    seen, unique = set(), []
    for v in sorted(found, key=lambda v: (v.line, v.rule)):
        if (v.rule, v.line) not in seen and not allowed(v.rule, allow):
            seen.add((v.rule, v.line))
            unique.append(v)
    return unique


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class _PythonPass(ast.NodeVisitor):
    def __init__(self):
        self.found: list[Violation] = []
        self.aliases: dict[str, str] = {}  # local name -> module it stands for
        self.defined: set[str] = set()

    def run(self, tree: ast.Module) -> list[Violation]:
        self.defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        self.visit(tree)
        return self.found

    def add(self, rule: str, check: str, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 0)
        self.found.append(Violation(rule, check, line, f"line {line}: {message}"))

    def _module(self, name: str, node: ast.AST) -> None:
        root = name.split(".")[0]
        if root in FORBIDDEN_IMPORTS:
            self.add(f"import:{root}", "forbidden_import", node, f"imports {name} ({FORBIDDEN_IMPORTS[root]})")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(alias.name, node)
            self.aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._module(node.module, node)
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in ("torch._C",):
                    self.add("reference:torch._C", "reads_reference", node, "imports torch._C (dispatcher internals)")
        elif node.level:
            self.add("import:relative", "forbidden_import", node, "relative import (the candidate is a single file)")
        self.generic_visit(node)

    def _resolved(self, node: ast.AST) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        base = self.aliases.get(head, head)
        return f"{base}.{rest}" if rest else base

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS and func.id not in self.defined:
            self.add(f"call:{func.id}", "forbidden_call", node, f"calls {func.id}() ({FORBIDDEN_CALLS[func.id]})")
        if isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and node.args:
            target = self._resolved(node.args[0])
            if target and target.split(".")[0] in PROTECTED_ROOTS | set(FORBIDDEN_IMPORTS):
                self.add("patch:setattr", "monkeypatch", node, f"{func.id}() on {target}: patches a module")
        resolved = self._resolved(func)
        if resolved in PYTHON_STREAM_CALLS:
            self.add("stream:python", "side_stream", node, f"calls {resolved}: work on another stream or graph "
                                                          "escapes timing")
        self.generic_visit(node)

    def _check_target(self, target: ast.AST, node: ast.AST, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                self._check_target(t, node, verb)
            return
        if isinstance(target, ast.Subscript):  # torch.__dict__["x"] = ...
            target = target.value
        if not isinstance(target, ast.Attribute):
            return
        dotted = _dotted(target)
        if dotted is None or dotted.split(".")[0] not in self.aliases:  # self.x = ... is fine
            return
        resolved = self._resolved(target) or dotted
        root = resolved.split(".")[0]
        if root in PROTECTED_ROOTS or root in FORBIDDEN_IMPORTS:
            self.add(f"patch:{root}", "monkeypatch", node, f"{verb} {resolved}: patches a library module")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, node, "assigns")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target, node, "assigns")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target, node, "deletes")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in REFERENCE_NAMES and node.id not in self.defined:
            self.add(f"reference:{node.id}", "reads_reference", node, f"uses {node.id}: the task's reference and "
                                                                      "the verifier are off limits")
        if node.id == "Model" and "Model" not in self.defined and isinstance(node.ctx, ast.Load):
            self.add("reference:Model", "reads_reference", node, "uses the task's Model without defining it")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        resolved = self._resolved(node) or ""
        head = (_dotted(node) or "").split(".")[0]
        if node.attr in FORBIDDEN_IMPORTS and head in self.aliases:  # triton.testing.gc: a module's own import
            self.add(f"import:{node.attr}", "forbidden_import", node,
                     f"reaches {node.attr} through {resolved} ({FORBIDDEN_IMPORTS[node.attr]})")
        if node.attr in REFERENCE_NAMES or resolved in REFERENCE_NAMES or resolved.startswith("torch._C."):
            name = resolved or node.attr
            self.add(f"reference:{node.attr}", "reads_reference", node, f"uses {name}: frames, module tables and "
                                                                        "dispatcher internals are off limits")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and re.search(r"kw_task|kernelwright[./]tasks|tasks/suite", node.value):
            self.add("reference:path", "reads_reference", node, "names the task module or its file")


def _cuda_scan(tree: ast.Module) -> list[Violation]:
    """Scan every string constant (inline CUDA/C++ passed to load_inline is one) for forbidden calls."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or len(node.value) < 8:
            continue
        for rule, pattern, reason in CUDA_PATTERNS:
            for match in re.finditer(pattern, node.value):
                line = node.lineno + node.value.count("\n", 0, match.start())
                found.append(Violation(rule, "cuda_policy", line, f"line {line}: inline CUDA calls "
                                                                  f"{match.group(0)} ({reason})"))
    return found
