"""IR nodes as Triton expressions, in fp32, rounded where the eager model rounds."""

from __future__ import annotations

from kernelwright.search.ir import Const, Node, Program, Unsupported


def literal(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if value != value:
            return 'float("nan")'
        if value in (float("inf"), float("-inf")):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        return repr(value)
    return repr(value)


def _pow(a: str, b: Const | str) -> str:
    if isinstance(b, Const):
        e = float(b.value)
        simple = {2.0: f"{a} * {a}", 3.0: f"{a} * {a} * {a}", 1.0: a, 0.5: f"tl.sqrt({a})", -0.5: f"tl.rsqrt({a})",
                  -1.0: f"1.0 / {a}", -2.0: f"1.0 / ({a} * {a})", 0.0: f"tl.full({a}.shape, 1.0, tl.float32)"}
        if e in simple:
            return simple[e]
        if e.is_integer():
            return "(" + " * ".join([a] * int(abs(e))) + ")" if e > 0 else "1.0 / (" + " * ".join([a] * int(-e)) + ")"
        return f"tl.exp2({literal(e)} * tl.log2({a}))"
    return f"tl.exp2({b} * tl.log2({a}))"


def expression(node: Node, a: list[str], ref: str | None, args: list) -> str:
    """The Triton expression of one pointwise node, in fp32."""
    op = node.op
    x = a[0] if a else ""
    y = a[1] if len(a) > 1 else ""
    binary = {"add": "+", "sub": "-", "mul": "*", "div": "/", "eq": "==", "ne": "!=", "lt": "<", "le": "<=",
              "gt": ">", "ge": ">=", "logical_and": "&", "logical_or": "|"}
    if op in ("add", "sub") and "alpha" in node.attrs:
        return f"{x} {binary[op]} {literal(node.attrs['alpha'])} * {y}"
    if op in binary:
        return f"{x} {binary[op]} {y}"
    # log1p/expm1 near 0: exp(x) - 1 and log(1 + x) lose every digit there; Kahan's corrections keep them
    log1p = f"tl.where(1.0 + {x} == 1.0, {x}, tl.log(1.0 + {x}) * {x} / ((1.0 + {x}) - 1.0))"
    expm1 = (f"tl.where(tl.abs({x}) < 0.5, tl.where(tl.exp({x}) == 1.0, {x}, (tl.exp({x}) - 1.0) * {x} / "
             f"tl.log(tl.exp({x}))), tl.exp({x}) - 1.0)")
    unary = {"neg": f"-{x}", "exp": f"tl.exp({x})", "exp2": f"tl.exp2({x})", "log": f"tl.log({x})",
             "log2": f"tl.log2({x})", "log1p": log1p, "expm1": expm1,
             "sqrt": f"tl.sqrt({x})", "rsqrt": f"tl.rsqrt({x})", "abs": f"tl.abs({x})",
             "sigmoid": f"tl.sigmoid({x})", "tanh": f"_tanh({x})", "erf": f"tl.erf({x})",
             "relu": f"tl.maximum({x}, 0.0, propagate_nan=tl.PropagateNan.ALL)",
             "silu": f"{x} * tl.sigmoid({x})", "reciprocal": f"1.0 / {x}",
             "sin": f"tl.sin({x})", "cos": f"tl.cos({x})", "floor": f"tl.floor({x})", "ceil": f"tl.ceil({x})",
             "sign": f"tl.where({x} > 0, 1.0, tl.where({x} < 0, -1.0, 0.0))", "logical_not": f"{x} == 0",
             "isnan": f"{x} != {x}", "isinf": f'tl.abs({x}) == float("inf")', "square": f"{x} * {x}"}
    if op == "gelu":
        if node.attrs.get("approximate", "none") == "tanh":
            return f"0.5 * {x} * (1.0 + _tanh(0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x})))"
        return f"0.5 * {x} * (1.0 + tl.erf({x} * 0.7071067811865476))"
    if op in unary:
        return unary[op]
    if op == "rsub":
        return f"{y} - {x}"
    if op == "maximum":  # torch's maximum, clamp and relu keep a NaN operand; tl's drop it by default
        return f"tl.maximum({x}, {y}, propagate_nan=tl.PropagateNan.ALL)"
    if op == "minimum":
        return f"tl.minimum({x}, {y}, propagate_nan=tl.PropagateNan.ALL)"
    if op == "pow":
        return _pow(x, args[1] if isinstance(args[1], Const) else y)
    if op == "where":
        return f"tl.where({x}, {y}, {a[2]})"
    if op == "atan2":
        raise Unsupported("aten.atan2", "no Triton atan2")
    raise Unsupported(f"aten.{op}")


def cast(node: Node, src: Node | None, x: str, ref: str | None) -> str:
    if node.dtype == "case":
        return f"{x}.to({ref}).to(tl.float32)"
    if node.dtype == "f32":
        return f"{x}.to(tl.float32)" if src is not None and src.dtype in ("i64", "bool") else x
    if node.dtype == "i64":
        return f"{x}.to(tl.int64)"
    return f"{x} != 0"


class Emitter:
    """Turns IR nodes into lines of kernel code, remembering which values exist in the current scope."""

    def __init__(self, program: Program, ref: str | None, load):
        self.p = program
        self.by_name = program.node_by_name
        self.ref = ref
        self.load = load  # callable(node) -> expression of an input load

    def arg_exprs(self, node: Node, env: dict[str, str]) -> list[str]:
        out = []
        for a in node.args:
            if isinstance(a, Const):
                out.append(literal(a.value))
            else:
                out.append(env[a])
        return out

    def pointwise(self, node: Node, env: dict[str, str]) -> str:
        a = self.arg_exprs(node, env)
        if node.op == "cast":
            src = self.by_name.get(node.args[0]) if isinstance(node.args[0], str) else None
            return cast(node, src, a[0], self.ref)
        if node.op == "ncols":
            return "n_cols"
        if node.op in ("numel", "init"):  # a size or a constructor argument, passed by the launcher
            return node.name
        if node.op == "column":  # the index along the reduced dim (a gather read as a one-hot sum)
            if self.load is None:
                raise Unsupported("aten.gather", "an index along a dim that is not reduced")
            return "cols[None, :]"
        expr = expression(node, a, self.ref, node.args)
        if node.dtype == "case" and node.op not in ("eq", "ne", "lt", "le", "gt", "ge"):
            # the eager model rounds this op's result to the task dtype; so do we (a no-op for fp32)
            expr = f"({expr}).to({self.ref}).to(tl.float32)"
        return expr


def live(program: Program) -> set[str]:
    """The nodes some output depends on: the only ones a kernel computes."""
    by_name = program.node_by_name
    needed, stack = set(), [o.node for o in program.outputs]
    while stack:
        n = stack.pop()
        if n in needed:
            continue
        needed.add(n)
        stack.extend(a for a in by_name[n].args if isinstance(a, str))
    return needed


def ref_pointer(program: Program) -> str | None:
    """A pointer whose element type is the task dtype: what 'round to the case dtype' converts to."""
    for s in program.inputs + program.outputs:
        if s.dtype == "case":
            return f"{s.name}_ptr.dtype.element_ty"
    return None


def load_suffix(spec_dtype: str) -> str:
    """Floats load upcast to fp32, the kernels' compute type; integer and bool loads stay as they are."""
    return ".to(tl.float32)" if spec_dtype in ("case", "f32") else ""
