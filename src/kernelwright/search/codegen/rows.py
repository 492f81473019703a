"""The rows schedule: one reduced block of dims (or the last dim of a broadcasting pointwise graph).

The iteration space is viewed as (outer, n_cols, inner); a row is one (outer, inner) pair. The rows kernel
handles ``ROWS`` rows at a time in a grid-strided loop (persistent when the grid is smaller than the
number of row blocks), and either holds whole rows in registers (``ONE_PASS``) or streams them in
``BLOCK``-wide chunks, one pass per level of dependent reductions plus one to write (a variance's sum of
squared deviations rides on its mean's pass: Welford). With an inner dim,
``COLUMN`` tiles it instead (adjacent inner elements per program, coalesced). The split kernel shares a
row's columns among ``SPLIT`` programs: each stores its part's partial statistics, a later launch
combines them.

Reading order: the graph of a rows program (:class:`RowGraph`: layout, addressing, reductions by level,
the passes that write them), then the rows kernel (one-pass and looped bodies), the split kernel, and
the launcher ``fused``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwright.search.ir import REDUCTIONS, Node, Program, TensorSpec, Unsupported
from kernelwright.search.codegen.expressions import Emitter, live, load_suffix, ref_pointer
from kernelwright.search.codegen.launch import launcher_params, numel_values, numels, torch_dtype
from kernelwright.search.codegen.reductions import (IDENTITY, combine, combine_variance, lane_final, lane_init,
                                                    lane_step, online_final, online_pair, online_step,
                                                    variance_pairs, welford_final, welford_step, whole_row)
from kernelwright.search.codegen.source import indent, nest

# the first lines of every chunk: which columns it holds and which of its elements are in the tensor
CHUNK = ["cols = start + tl.arange(0, BLOCK)", "col_mask = cols < n_cols",
         "mask = row_mask[:, None] & col_mask[None, :]"]


@dataclass(frozen=True)
class Layout:
    """How the iteration space splits around the reduced block of dims ``d .. d + width - 1`` (on
    contiguous tensors each group of adjacent dims is one flattened dim: a row index and a column)."""

    rank: int
    d: int
    width: int = 1

    @property
    def outer(self) -> list[int]:
        return list(range(self.d))

    @property
    def reduced(self) -> list[int]:
        return list(range(self.d, self.d + self.width))

    @property
    def inner(self) -> list[int]:
        return list(range(self.d + self.width, self.rank))


def rows_source(program: Program, suffix: str = "", split: bool = False) -> tuple[str, str]:
    """(kernels, launcher) of a rows program: the rows kernel, with ``split`` the split kernel too, and
    ``fused{suffix}``, which launches them."""
    graph = RowGraph(program)
    kernel = _rows_kernel(graph, suffix)
    split_plan = None
    if split:
        split_kernel, split_plan = _split_kernel(graph, suffix)
        kernel += split_kernel
    return kernel, _launcher(graph, suffix, split_plan)


# -- the layout -------------------------------------------------------------------------------------


def _group_terms(spec, layout: Layout, who: str) -> dict[str, int | None]:
    """For a tensor: which tensor dim carries the innermost outer/reduced/inner iteration dim (None: it
    does not span that group). A tensor spanning part of a group is not generated."""
    pos = {k: j for j, k in enumerate(spec.dim_map) if k is not None}
    out = {}
    for group, dims in (("o", layout.outer), ("r", layout.reduced), ("i", layout.inner)):
        have = [k for k in dims if k in pos]
        if have and len(have) != len(dims):
            raise Unsupported("partial broadcast", f"{who} spans only part of the "
                                                   f"{dict(o='outer', r='reduced', i='inner')[group]} dimensions")
        out[group] = pos[dims[-1]] if have else None
    return out


def layout_of(program: Program) -> tuple[Layout, dict[str, dict[str, int | None]]]:
    """The reduced block, or for a broadcasting pointwise graph the dim that lets every tensor span whole
    groups (a per-channel (C,) parameter of an (N, C, H, W) input: the channel dim, last dim first)."""
    specs = program.inputs + program.outputs
    if program.reduce_dims:
        layout = Layout(program.rank, program.reduce_dims[0], len(program.reduce_dims))
        return layout, {s.name: _group_terms(s, layout, f"`{s.ref}`") for s in specs}
    first_error = None
    for d in reversed(range(program.rank)):
        layout = Layout(program.rank, d)
        try:
            return layout, {s.name: _group_terms(s, layout, f"`{s.ref}`") for s in specs}
        except Unsupported as exc:
            first_error = first_error or exc
    raise first_error


def _levels(program: Program) -> dict[str, int]:
    """How many dependent reductions each value waits for."""
    level: dict[str, int] = {}
    for n in program.nodes:
        deps = [level[a] for a in n.args if isinstance(a, str)]
        level[n.name] = (1 + max(deps, default=0)) if n.op in REDUCTIONS else max(deps, default=0)
    return level


# -- the graph of a rows program --------------------------------------------------------------------


class RowGraph:
    """A rows program as its kernels read it: the layout and each tensor's dims per group (so its address),
    which values span the reduced dims (columns) and which are one per row, the reductions by level, and,
    while a kernel body is written, the values already in scope (``env``; ``done``: the row values)."""

    def __init__(self, program: Program):
        self.program = program
        self.layout, self.terms = layout_of(program)
        self.live = live(program)
        self.by_name = program.node_by_name
        self.specs = {s.name: s for s in program.inputs}
        for o in program.outputs:
            t = self.terms[o.name]
            if t["o"] is None and self.layout.outer or t["i"] is None and self.layout.inner:
                raise Unsupported("output broadcast over rows", "an output that does not span every row")
        self.has_inner = bool(self.layout.inner)
        self.em = Emitter(program, ref_pointer(program), self.load)
        self.is_col = {n.name: any(k in n.dims for k in self.layout.reduced) for n in program.nodes}
        self.level = _levels(program)
        self.reductions = [n for n in program.nodes if n.op in REDUCTIONS and n.name in self.live]
        self.depth = max((self.level[n.name] for n in self.reductions), default=0)
        reduced = set(self.layout.reduced)
        self.col_outputs = [o for o in program.outputs if reduced & set(o.dim_map)]
        self.row_outputs = [o for o in program.outputs if not reduced & set(o.dim_map)]
        self.pair = online_pair(self.reductions, self.level, self.by_name, self.is_col)
        # {sum of squares: (sum, x, mean)}: the sum of squares is taken in its mean's pass, so the input is
        # read once for both statistics (InstanceNorm's looped rows: 2 reads of x, not 3)
        self.variances = variance_pairs(self.reductions, self.by_name, self.is_col)
        self.welford = {v[0]: s2 for s2, v in self.variances.items()}  # sum -> its sum of squares
        self.has_sum = any(n.op == "sum" for n in self.reductions)
        self.env: dict[str, str] = {}
        self.done: set[str] = set()

    @property
    def tensors(self) -> list[TensorSpec]:
        return self.program.inputs + self.program.outputs

    def reset(self) -> None:
        """Nothing in scope: the start of a kernel body."""
        self.env.clear()
        self.done.clear()

    # addressing

    def row_offset(self, name: str) -> str:
        t = self.terms[name]
        parts = []
        if t["o"] is not None:
            parts.append(f"o * {name}_so")
        if t["i"] is not None:
            parts.append(f"i * {name}_si")
        return " + ".join(parts)

    def address(self, name: str, with_cols: bool, store: bool = False) -> str:
        t = self.terms[name]
        parts = []
        row = self.row_offset(name)
        if row:
            parts.append(f"({row})[:, None]")
        if with_cols and t["r"] is not None:
            parts.append(f"cols[None, :] * {name}_sr")
        if not row and store:  # no row term (a global reduction): a [ROWS, ...] block, masked to row 0
            parts.append("tl.zeros([ROWS, 1], dtype=tl.int64)")
        return f"{name}_ptr" + "".join(" + " + p for p in parts)

    def load(self, node: Node) -> str:
        s = self.specs[node.name]
        t = self.terms[s.name]
        upcast = load_suffix(s.dtype)
        if t["r"] is not None:
            m = "mask" if (t["o"] is not None or t["i"] is not None) else "col_mask[None, :]"
            return f"tl.load({self.address(s.name, True)}, mask={m}, other=0){upcast}"
        if t["o"] is None and t["i"] is None:
            return f"tl.load({s.name}_ptr){upcast}"
        return f"tl.load({self.address(s.name, False)}, mask=row_mask[:, None], other=0){upcast}"

    def store_col(self, o, env) -> str:
        v = env[o.node]
        if not self.is_col.get(o.node, False):
            v = f"({v} + tl.zeros([ROWS, BLOCK], dtype=tl.float32))"
        return f"tl.store({self.address(o.name, True, store=True)}, {v}.to({o.name}_ptr.dtype.element_ty), mask=mask)"

    def store_row(self, o, env) -> str:
        return (f"tl.store({self.address(o.name, False, store=True)}, {env[o.node]}.to({o.name}_ptr.dtype.element_ty), "
                "mask=row_mask[:, None])")

    def reduce_operand(self, n: Node, env) -> str:
        v = env[n.args[0]]
        return v if self.is_col[n.args[0]] else f"({v} + tl.zeros([ROWS, BLOCK], dtype=tl.float32))"

    def masked_operand(self, n: Node, env, fill: str) -> str:
        """A reduction's operand over the tile, ``fill`` (its identity) where the tile is past the tensor."""
        return f"tl.where(mask, {self.reduce_operand(n, env)}, {fill})"

    # the passes of a looped body

    def todo(self, p: int, online: bool) -> list[Node]:
        """The reductions accumulated in level ``p``'s pass (the online pair's sum rides on level 1, a
        variance's sum of squares on its sum's level)."""
        return [n for n in self.reductions if self.level[n.name] == p and not (online and n is self.pair[1])
                and n.name not in self.variances]

    def emit_rows(self, upto: int, out: list[str]) -> None:
        """Row values (no reduced dim) available once reductions up to ``upto`` are final."""
        for n in self.program.nodes:
            if n.name in self.live and n.name not in self.done and not self.is_col[n.name] \
                    and n.op not in REDUCTIONS and self.level[n.name] <= upto:
                out.append(f"{n.name} = {self.load(n) if n.op == 'input' else self.em.pointwise(n, self.env)}")
                self.env[n.name] = n.name
                self.done.add(n.name)

    def emit_cols(self, targets: list[str], out: list[str], scope: dict[str, str]) -> None:
        """Column values needed by ``targets``, recomputed inside a chunk loop."""
        need: list[str] = []

        def visit(name: str) -> None:
            if name in scope or name in need or not self.is_col.get(name, False):
                return
            for a in self.by_name[name].args:
                if isinstance(a, str):
                    visit(a)
            need.append(name)

        for t in targets:
            visit(t)
        for name in need:
            n = self.by_name[name]
            out.append(f"{name} = {self.load(n) if n.op == 'input' else self.em.pointwise(n, scope)}")
            scope[name] = name

    def accumulate(self, p: int, todo: list[Node], online: bool, lo: str = "0", hi: str = "n_cols") -> list[str]:
        """One pass over the columns in ``range(lo, hi, BLOCK)`` accumulating ``todo`` per lane, then the
        lanes reduced to one value per row. ``online``: softmax's sum of exp(v - max v) is kept beside the
        running max and rescaled when the max grows, so it needs no pass of its own; likewise a variance's
        sum of squares beside its sum (``welford``)."""
        out: list[str] = []
        pair_here = online and p == 1
        for n in todo:
            out += lane_init(n) + (lane_init(self.by_name[self.welford[n.name]]) if n.name in self.welford else [])
        if pair_here:
            out.append(f"{self.pair[1].name}_acc = tl.zeros([ROWS, BLOCK], dtype=tl.float32)")
        body = list(CHUNK)
        scope = dict(self.env)
        self.emit_cols([n.args[0] for n in todo], body, scope)
        if pair_here:
            body += online_step(self.pair[0].name, self.pair[1].name,
                                self.masked_operand(self.pair[0], scope, 'float("-inf")'))
        for n in todo:
            step = lane_step(n, self.masked_operand(n, scope, IDENTITY[n.op]))
            if n.name in self.welford:
                step = welford_step(self.welford[n.name], n.name, scope[n.args[0]], lo, step)
            body += step
        out += [f"for start in range({lo}, {hi}, BLOCK):"] + nest(body)
        for n in todo:
            out += lane_final(n)
            names = [n.name]
            if n.name in self.welford:
                names.append(self.welford[n.name])
                out += welford_final(names[1], n.name, lo, hi)
            for name in names:
                self.env[name] = name
                self.done.add(name)
        if pair_here:
            m, sm = self.pair[0].name, self.pair[1].name
            out += online_final(m, sm)
            self.env[sm] = sm
            self.done.add(sm)
        return out

    def column_pass(self, span: str) -> list[str]:
        """The last sweep over columns ``span``: each elementwise output computed and stored, a block at a time."""
        body = list(CHUNK)
        scope = dict(self.env)
        self.emit_cols([o.node for o in self.col_outputs], body, scope)
        body += [self.store_col(o, scope) for o in self.col_outputs]
        return [f"for start in range({span}, BLOCK):"] + nest(body)

    def passes(self, online: bool) -> list[str]:
        """Pass p accumulates the reductions of level p, then the row values they make available."""
        out: list[str] = []
        self.emit_rows(0, out)
        for p in range(1, self.depth + 1):
            todo = self.todo(p, online)
            if todo:
                out += self.accumulate(p, todo, online)
            self.emit_rows(p, out)
        return out


# -- the rows kernel --------------------------------------------------------------------------------


def _one_pass(g: RowGraph) -> list[str]:
    """Whole rows in registers: every value in graph order, each reduction over the row at once, then the
    stores."""
    out = ["cols = tl.arange(0, BLOCK)", "col_mask = cols < n_cols", "mask = row_mask[:, None] & col_mask[None, :]"]
    env: dict[str, str] = {}
    for n in g.program.nodes:
        if n.name not in g.live:
            continue
        if n.op == "input":
            out.append(f"{n.name} = {g.load(n)}")
        elif n.op in REDUCTIONS:
            out += whole_row(n, g.masked_operand(n, env, IDENTITY[n.op]))
        else:
            out.append(f"{n.name} = {g.em.pointwise(n, env)}")
        env[n.name] = n.name
    return out + [g.store_col(o, env) for o in g.col_outputs] + [g.store_row(o, env) for o in g.row_outputs]


def _looped(g: RowGraph) -> list[str]:
    """Rows in BLOCK-wide chunks: pass p accumulates the reductions of level p; a last pass writes the column
    outputs. A softmax-shaped graph has both forms, online (``ONLINE``) and one pass per level."""
    g.reset()
    if g.pair:
        online = g.passes(True)
        g.reset()
        out = ["if ONLINE:"] + nest(online) + ["else:"] + nest(g.passes(False))
    else:
        out = g.passes(False)
    if g.col_outputs:
        out += g.column_pass("0, n_cols")
    return out + [g.store_row(o, g.env) for o in g.row_outputs]


def _kernel_params(g: RowGraph) -> tuple[str, str]:
    """(pointers, strides and run-time scalars): the leading arguments of both kernels."""
    strides = [f"{s.name}_s{grp}" for s in g.tensors for grp in ("o", "r", "i") if g.terms[s.name][grp] is not None]
    strides += [n.name for n in numels(g.program)]
    return ", ".join(f"{s.name}_ptr" for s in g.tensors), ", ".join(strides)


def _row_setup(g: RowGraph) -> list[str]:
    """The rows of program step ``block``: their outer (``o``) and inner (``i``) indices and mask."""
    setup = ["rows = block * ROWS + tl.arange(0, ROWS)", "row_mask = rows < n_rows", "rows = rows.to(tl.int64)"]
    if not g.has_inner:
        return setup + ["o = rows"]
    # COLUMN: a program's ROWS rows are one outer index and ROWS adjacent inner ones, so a [ROWS, BLOCK]
    # tile reads ROWS contiguous elements per reduced index (coalesced), where rows // inner and
    # rows % inner hide that from the compiler and a row-major walk strides by inner
    return ["if COLUMN:", "    tile = block % n_tiles", "    o = tl.zeros([ROWS], dtype=tl.int64) + block // n_tiles",
            "    i = tile * ROWS + tl.arange(0, ROWS)", "    row_mask = i < inner", "    i = i.to(tl.int64)",
            "else:"] + nest(setup + ["o = rows // inner", "i = rows % inner"])


def _row_blocks(g: RowGraph) -> list[str]:
    """How many program steps the grid strides over: blocks of ROWS rows, or column tiles."""
    if not g.has_inner:
        return ["n_blocks = tl.cdiv(n_rows, ROWS)"]
    return ["n_tiles = tl.cdiv(inner, ROWS)", "if COLUMN:", "    n_blocks = (n_rows // inner) * n_tiles",
            "else:", "    n_blocks = tl.cdiv(n_rows, ROWS)"]


def _switches(g: RowGraph) -> tuple[str, str]:
    """The rows kernel's optional constexpr switches: (parameters, the launcher's arguments)."""
    params, args = "", ""
    if g.pair:
        params += ", ONLINE: tl.constexpr"
        args += ' ONLINE=config.get("online", True),'
    if g.has_inner:
        params += ", COLUMN: tl.constexpr"
        args += " COLUMN=column,"
    if g.has_sum:
        params += ", ACCURATE: tl.constexpr"
        args += ' ACCURATE=config.get("accurate", False),'
    return params, args


def _rows_kernel(g: RowGraph, suffix: str) -> str:
    one, loop = _one_pass(g), _looped(g)
    ptrs, strides = _kernel_params(g)
    doc = (f"Rows of n_cols elements{' with stride inner' if g.has_inner else ''}: "
           f"{len(g.reductions)} reduction(s) in {g.depth} dependent level(s); ROWS rows per step.")
    return f'''

@triton.jit
def _rows_kernel{suffix}({ptrs},
                 {strides},
                 n_rows, n_cols{', inner' if g.has_inner else ''},
                 BLOCK: tl.constexpr, ROWS: tl.constexpr, ONE_PASS: tl.constexpr{_switches(g)[0]}):
    """{doc}"""
{indent(_row_blocks(g), 4)}
    for block in range(tl.program_id(0), n_blocks, tl.num_programs(0)):
{indent(_row_setup(g), 8)}
        if ONE_PASS:
{indent(one, 12)}
        else:
{indent(loop, 12) if loop else ' ' * 12 + 'pass'}
'''


# -- the split kernel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitPlan:
    """What the launcher needs of a split kernel: the levels launched one after another (the last launch,
    ``depth + 1``, comes after them), and the fp32 slots each row and part stores."""

    levels: list[int]
    n_slots: int


class _Split:
    """The split kernel's body: per LEVEL, the levels before combined from every part's partials, level L
    accumulated over this program's part, and past the last level the part's outputs written."""

    def __init__(self, g: RowGraph):
        if any(n.op in ("argmax", "argmin") for n in g.reductions) or not g.reductions:
            raise Unsupported("split rows", "an argmax/argmin or a graph without reductions has no split schedule")
        self.g = g
        self.online = bool(g.pair)
        carried = [n for p in range(1, g.depth + 1) for n in g.todo(p, self.online)]
        carried += [g.pair[1]] if g.pair else []
        carried += [g.by_name[s2] for s2 in g.variances]
        self.slots = {n.name: k for k, n in enumerate(carried)}
        self.levels = [p for p in range(1, g.depth + 1) if self.todo(p)]

    def todo(self, p: int) -> list[Node]:
        """Level p's reductions in the split kernel: as in the rows kernel, a variance's sum of squared
        deviations rides on its mean's level (each part's own, by Welford; the parts combined by Chan's
        formula), so a LayerNorm's statistics take one launch, not two."""
        return self.g.todo(p, self.online)

    def paired(self, todo: list[Node]) -> list[tuple[str, str, str, str]]:
        """(sum of squares, sum, x, mean) of each variance whose sum is in ``todo``."""
        names = {n.name for n in todo}
        return [(s2, *v) for s2, v in self.g.variances.items() if v[0] in names]

    def level(self, L: int) -> list[str]:
        """The lines for LEVEL == L: the levels before L combined from every part's partial statistics,
        level L accumulated over this program's part of the row and stored as a partial; past the last
        level, the column outputs of this part written (and the row outputs, by part 0)."""
        g = self.g
        g.reset()
        out: list[str] = []
        g.emit_rows(0, out)
        for p in range(1, g.depth + 1):
            todo = self.todo(p)
            carried = todo + ([g.pair[1]] if self.online and p == 1 else [])
            if todo and p == L:
                return out + self._partials(p, todo, carried)
            if todo:
                out += combine(carried, self.slots, g.pair if self.online and p == 1 else None)
                for n in carried:
                    g.env[n.name] = n.name
                    g.done.add(n.name)
            g.emit_rows(p, out)
            for s2, s1, _, mean in self.paired(todo):
                out += combine_variance(s2, s1, mean, self.slots[s2])
                g.env[s2] = s2
                g.done.add(s2)
        if g.col_outputs:
            out += g.column_pass("col_lo, col_hi")
        if g.row_outputs:
            out += ["if part == 0:"] + nest([g.store_row(o, g.env) for o in g.row_outputs])
        return out

    def _partials(self, p: int, todo: list[Node], carried: list[Node]) -> list[str]:
        """Level ``p`` over this part (each variance's sum of squares about the part's own mean beside its
        sum), stored as this part's partials."""
        out = self.g.accumulate(p, todo, self.online, lo="col_lo", hi="col_hi")
        for s2, *_ in self.paired(todo):
            carried.append(self.g.by_name[s2])
        return out + [f"tl.store(part_out + {self.slots[n.name]}, {n.name}, mask=row_mask[:, None])" for n in carried]

    def branches(self) -> list[str]:
        out: list[str] = []
        for k, L in enumerate(self.levels + [self.g.depth + 1]):
            out.append(("if" if k == 0 else "elif") + f" LEVEL == {L}:")
            out += nest(self.level(L))
        return out


def _split_kernel(g: RowGraph, suffix: str) -> tuple[str, SplitPlan]:
    split = _Split(g)
    branches = split.branches()
    n_slots = len(split.slots)
    ptrs, strides = _kernel_params(g)
    params = (", COLUMN: tl.constexpr" if g.has_inner else "") + (", ACCURATE: tl.constexpr" if g.has_sum else "")
    text = f'''

@triton.jit
def _split_kernel{suffix}({ptrs},
                 {strides},
                 part_ptr, n_rows, n_cols{', inner' if g.has_inner else ''}, span,
                 BLOCK: tl.constexpr, ROWS: tl.constexpr, LEVEL: tl.constexpr, SPLIT: tl.constexpr{params}):
    """Split rows: program (b, s) takes row block b's columns [s * span, (s + 1) * span). LEVEL k <= the
    last level stores its partial statistics of level k (fp32, SLOTS per row and part) after combining
    the SPLIT partials of the levels before; the last launch combines them all and writes its part."""
    block = tl.program_id(0)
    part = tl.program_id(1)
{indent(["n_tiles = tl.cdiv(inner, ROWS)"] if g.has_inner else [], 4)}
{indent(_row_setup(g), 4)}
    rid = {"o * inner + i" if g.has_inner else "o"}
    part_out = part_ptr + (rid * SPLIT + part)[:, None] * {n_slots}
    part_in = part_ptr + ((rid * SPLIT)[:, None] + tl.arange(0, SPLIT)[None, :]) * {n_slots}
    col_lo = part * span
    col_hi = tl.minimum(col_lo + span, n_cols)
{indent(branches, 4)}
'''
    return text, SplitPlan(split.levels, n_slots)


# -- the launcher -----------------------------------------------------------------------------------


def _prepare(g: RowGraph) -> list[str]:
    """The launcher's first lines: contiguous inputs, every dim's size (from the first input that has it),
    the (outer, n_cols, inner) view, the run-time scalars, and the outputs allocated."""
    program = g.program
    size_expr: dict[int, str] = {}
    for s in program.inputs:
        for j, k in enumerate(s.dim_map):
            if k is not None and k not in size_expr:
                size_expr[k] = f"{s.name}.shape[{j}]"
    if any(k not in size_expr for k in range(program.rank)):
        raise Unsupported("expand to a new size", "a dimension no input carries")
    prep = [f"{s.name} = {s.name}.contiguous()" for s in program.inputs]
    prep += [f"size{k} = {size_expr[k]}" for k in range(program.rank)]
    prep.append("n_outer = " + (" * ".join(f"size{k}" for k in g.layout.outer) or "1"))
    prep.append("n_cols = " + " * ".join(f"size{k}" for k in g.layout.reduced))
    prep.append("inner = " + (" * ".join(f"size{k}" for k in g.layout.inner) or "1"))
    prep += numel_values(program, lambda k: f"size{k}")
    first = program.inputs[0].name
    for o in program.outputs:
        shape = ", ".join(f"size{k}" if k is not None else "1" for k in o.dim_map)
        prep.append(f"{o.name} = torch.empty(({shape}{',' if len(o.dim_map) == 1 else ''}), "
                    f"device={first}.device, dtype={torch_dtype(o, program)})")
    return prep


def _stride_values(g: RowGraph) -> list[str]:
    """The launcher's values for the kernels' stride and scalar arguments (see ``_kernel_params``)."""
    values = [f"{s.name}.stride({g.terms[s.name][grp]})" for s in g.tensors for grp in ("o", "r", "i")
              if g.terms[s.name][grp] is not None]
    return values + [n.name for n in numels(g.program)]


def _grid_plan(g: RowGraph, first: str) -> list[str]:
    """The configuration for this shape, its tile, and the grid (a column schedule: each program takes one
    outer index and ``rows`` adjacent inner ones)."""
    plan = ["config, block, rows, one_pass = _row_plan(n_outer * inner, n_cols)"]
    if not g.has_inner:
        return plan + [f"grid = _grid(triton.cdiv(n_outer * inner, rows), config, {first}.device)"]
    return plan + ['column = config.get("column", False) and inner > 1',
                   "if column:", "    rows = min(rows, triton.next_power_of_2(inner))",
                   "grid = _grid(n_outer * triton.cdiv(inner, rows) if column else "
                   f"triton.cdiv(n_outer * inner, rows), config, {first}.device)"]


def _split_launches(g: RowGraph, plan: SplitPlan, suffix: str, stride_vals: list[str], outs: str) -> list[str]:
    """With a split configuration: the partials buffer, one launch per split level, then the last launch
    (which combines and writes), and return."""
    first = g.program.inputs[0].name
    col_parts = "parts" if g.col_outputs else "1"  # the last launch writes columns per part, or rows only
    blocks = "n_outer * triton.cdiv(inner, rows) if column else triton.cdiv(n_outer * inner, rows)" \
        if g.has_inner else "triton.cdiv(n_outer * inner, rows)"
    accurate_arg = ' ACCURATE=config.get("accurate", False),' if g.has_sum else ""
    split_args = (f"{', '.join(s.name for s in g.tensors)}, {', '.join(stride_vals)}, "
                  f"partials, n_outer * inner, n_cols{', inner' if g.has_inner else ''}, span, BLOCK=block, "
                  f"ROWS=rows, SPLIT=parts,{' COLUMN=column,' if g.has_inner else ''}{accurate_arg} "
                  "num_warps=config[\"warps\"], num_stages=config[\"stages\"]")
    lines = ["if config.get(\"split\"):  # few long rows: each split over `parts` programs, then combined",
             f"    n_row_blocks = {blocks}",
             f"    parts = _split_parts(config[\"split\"], n_row_blocks, n_cols, block, {first}.device)",
             "    span = triton.cdiv(triton.cdiv(n_cols, parts), block) * block",
             f"    partials = torch.empty(n_outer * inner * parts * {plan.n_slots}, device={first}.device, "
             "dtype=torch.float32)"]
    lines += [f"    _split_kernel{suffix}[(n_row_blocks, parts)]({split_args}, LEVEL={L})" for L in plan.levels]
    return lines + [f"    _split_kernel{suffix}[(n_row_blocks, {col_parts})]({split_args}, LEVEL={g.depth + 1})",
                    f"    return {outs}"]


def _launcher(g: RowGraph, suffix: str, split: SplitPlan | None) -> str:
    """``fused{suffix}``: the shape's view and outputs, then the rows kernel's launch, or the split
    kernel's launches when the configuration asks for them."""
    program = g.program
    prep = _prepare(g)
    first = program.inputs[0].name
    outs = ", ".join(o.name for o in program.outputs) + ("," if len(program.outputs) == 1 else "")
    stride_vals = _stride_values(g)
    call = (f"_rows_kernel{suffix}[(grid,)]({', '.join(s.name for s in g.tensors)},\n"
            f"        {', '.join(stride_vals)},\n"
            f"        n_outer * inner, n_cols{', inner' if g.has_inner else ''}, BLOCK=block, ROWS=rows, "
            f"ONE_PASS=one_pass,{_switches(g)[1]}\n        num_warps=config[\"warps\"], num_stages=config[\"stages\"])")
    plan = _grid_plan(g, first)
    if split:
        plan += _split_launches(g, split, suffix, stride_vals, outs)
    return f'''

def fused{suffix}(*, {", ".join(launcher_params(program) + program.scalar_params)}):
{indent(prep, 4)}
    if n_outer * inner == 0 or n_cols == 0:
        return {outs}
{indent(plan, 4)}
    {call}
    return {outs}
'''
