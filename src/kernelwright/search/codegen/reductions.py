"""Reductions as lines of kernel code, shared by the row and split kernels: a row sum's (compensated)
step, a variance's statistics in one pass (Welford), the online max/sum-exp pair, and the split kernel's
combine of every part's partial statistics."""

from __future__ import annotations

from kernelwright.search.ir import Node

# what a masked-off lane contributes to each reduction
IDENTITY = {"sum": "0.0", "max": 'float("-inf")', "min": 'float("inf")', "argmax": 'float("-inf")',
            "argmin": 'float("inf")'}


def variance_pairs(reductions: list[Node], by_name: dict[str, Node], is_col: dict[str, bool]) -> dict[str, tuple]:
    """sum((x - mean)^2) with mean = sum(x) / n, all in fp32 (how capture lowers var, std, LayerNorm,
    InstanceNorm and training BatchNorm, whatever the correction): {sum of squares: (sum, x, mean)}, one
    per sum. A looped pass takes such a pair together (Welford, see ``welford_step``) and the split kernel
    combines the parts' pairs in one launch (Chan et al.: each part's sum and squared deviations from its
    own mean, combined exactly)."""
    names = {n.name for n in reductions}
    found = {}
    for s2 in reductions:
        sq = by_name.get(s2.args[0]) if s2.op == "sum" and isinstance(s2.args[0], str) else None
        if sq is None or sq.op != "mul" or sq.args[0] != sq.args[1] or not isinstance(sq.args[0], str):
            continue
        dev = by_name[sq.args[0]]
        if dev.op != "sub" or "alpha" in dev.attrs or not all(isinstance(a, str) for a in dev.args):
            continue
        x, mean = dev.args
        m = by_name[mean]
        if m.op != "div" or not all(isinstance(a, str) for a in m.args) or by_name[m.args[1]].op != "ncols":
            continue
        s1 = by_name[m.args[0]]
        if s1.op == "sum" and s1.name in names and s1.args[0] == x and is_col.get(x) and \
                {sq.dtype, dev.dtype, m.dtype, s1.dtype} == {"f32"} and \
                all(v[0] != s1.name for v in found.values()):  # a second pair on one sum keeps its own pass
            found[s2.name] = (s1.name, x, mean)
    return found


def combine_variance(s2: str, s1: str, mean: str, slot: int) -> list[str]:
    """sum((x - mean)^2) over the row from each part's own sum of squared deviations ``s2`` and sum ``s1``:
    each adds n_part * (part mean - row mean)^2 (a part past the row's end holds nothing)."""
    return [f"{s2}_parts = tl.load(part_in + {slot}, mask=row_mask[:, None], other=0.0)",
            f"{s2}_n = tl.minimum(tl.maximum(n_cols - tl.arange(0, SPLIT)[None, :] * span, 0), span).to(tl.float32)",
            f"{s2}_d = tl.where({s2}_n > 0, {s1}_parts / tl.maximum({s2}_n, 1.0) - {mean}, 0.0)",
            f"{s2} = tl.sum({s2}_parts + {s2}_n * {s2}_d * {s2}_d, axis=1)[:, None]"]


def combine(carried: list[Node], slots: dict[str, int], pair) -> list[str]:
    """A level's reductions combined from the SPLIT partials of each row (``part_in``): sums added, max/min
    taken (a NaN in any part wins, as torch's does), and softmax's online sum rescaled from each part's
    own max to the row's."""
    out = []
    for n in carried:
        if pair and n is pair[1]:
            continue
        out.append(f"{n.name}_parts = tl.load(part_in + {slots[n.name]}, mask=row_mask[:, None], "
                   f"other={IDENTITY[n.op]})")
        if n.op == "sum":
            out.append(f"{n.name} = tl.sum({n.name}_parts, axis=1)[:, None]")
        else:
            out.append(f"{n.name} = tl.where(tl.max(({n.name}_parts != {n.name}_parts).to(tl.int32), axis=1)"
                       f"[:, None] > 0, float(\"nan\"), tl.{n.op}({n.name}_parts, axis=1)[:, None])")
    if pair:
        m, sm = pair[0].name, pair[1].name
        out.append(f"{sm}_parts = tl.load(part_in + {slots[sm]}, mask=row_mask[:, None], other=0.0)")
        out.append(f"{sm} = tl.sum(tl.where({m}_parts == float(\"-inf\"), 0.0, "
                   f"{sm}_parts * tl.exp({m}_parts - {m})), axis=1)[:, None]")
    return out


def sum_step(name: str, value: str) -> list[str]:
    """One chunk added to a row sum's per-lane accumulators. A lane adds n_cols / BLOCK values in turn, and
    a plain running sum loses about one rounding per add: for rows of millions (a LayerNorm over 4M
    elements) that is past fp32's tolerance. ACCURATE keeps each lane's lost low-order part (Kahan), so a
    lane's sum is good to a rounding or two however long the row; ``err`` stays unchanged where the sum is
    not finite (inf - inf would turn an inf sum into NaN)."""
    return [f"{name}_v = {value}",
            "if ACCURATE:",
            f"    {name}_y = {name}_v - {name}_err",
            f"    {name}_t = {name}_acc + {name}_y",
            f"    {name}_err = tl.where({name}_t - {name}_t == 0.0, ({name}_t - {name}_acc) - {name}_y, {name}_err)",
            f"    {name}_acc = {name}_t",
            "else:",
            f"    {name}_acc += {name}_v"]


def online_pair(reductions, level, by_name, is_col):
    """(max node, sum node) when the only level-2 reduction sums exp(v - max(v)) over the max's own
    operand v (softmax, log-softmax, cross-entropy): the two can share one pass over the row."""
    second = [n for n in reductions if level[n.name] == 2]
    if len(second) != 1 or second[0].op != "sum" or not isinstance(second[0].args[0], str):
        return None
    total = second[0]
    e = by_name[total.args[0]]
    if e.op != "exp" or not isinstance(e.args[0], str):
        return None
    diff = by_name[e.args[0]]
    if diff.op != "sub" or "alpha" in diff.attrs or not all(isinstance(a, str) for a in diff.args):
        return None
    peak = by_name[diff.args[1]]
    if peak.op != "max" or level[peak.name] != 1 or peak.args[0] != diff.args[0] or not is_col[diff.args[0]]:
        return None
    return peak, total


def whole_row(n: Node, v: str) -> list[str]:
    """``n`` over whole rows held in registers (``v``: its operand, masked to the identity)."""
    if n.op == "sum":
        return [f"{n.name} = tl.sum({v}, axis=1)[:, None]"]
    # torch's max/min keep a NaN and its argmax/argmin point at the first one; tl's drop it
    out = [f"{n.name}_in = {v}",
           f"{n.name}_nan = tl.min(tl.where({n.name}_in != {n.name}_in, cols[None, :], n_cols), axis=1)[:, None]"]
    if n.op in ("max", "min"):
        out.append(f"{n.name} = tl.where({n.name}_nan < n_cols, float(\"nan\"), "
                   f"tl.{n.op}({n.name}_in, axis=1)[:, None])")
    else:
        out.append(f"{n.name} = tl.where({n.name}_nan < n_cols, {n.name}_nan, "
                   f"tl.{n.op}({n.name}_in, axis=1)[:, None]).to(tl.int64)")
    return out


def lane_init(n: Node) -> list[str]:
    """Per-lane accumulators of ``n`` before a loop over a row's chunks."""
    if n.op in ("sum",):
        return [f"{n.name}_acc = tl.zeros([ROWS, BLOCK], dtype=tl.float32)",
                f"{n.name}_err = tl.zeros([ROWS, BLOCK], dtype=tl.float32)"]
    out = [f"{n.name}_acc = tl.full([ROWS, BLOCK], {IDENTITY[n.op]}, dtype=tl.float32)"]
    if n.op in ("argmax", "argmin"):
        out.append(f"{n.name}_idx = tl.zeros([ROWS, BLOCK], dtype=tl.int64)")
    return out


def lane_step(n: Node, v: str) -> list[str]:
    """One chunk ``v`` (masked to the identity) folded into ``n``'s per-lane accumulators."""
    if n.op == "sum":
        return sum_step(n.name, v)
    if n.op in ("max", "min"):
        return [f"{n.name}_acc = tl.{'maximum' if n.op == 'max' else 'minimum'}({n.name}_acc, {v}, "
                "propagate_nan=tl.PropagateNan.ALL)"]
    cmp = ">" if n.op == "argmax" else "<"
    return [f"{n.name}_val = {v}",
            f"{n.name}_take = ({n.name}_val {cmp} {n.name}_acc) | (({n.name}_val != {n.name}_val) "
            f"& ({n.name}_acc == {n.name}_acc))  # strict: the first index (first NaN) wins",
            f"{n.name}_acc = tl.where({n.name}_take, {n.name}_val, {n.name}_acc)",
            f"{n.name}_idx = tl.where({n.name}_take, cols[None, :] + tl.zeros([ROWS, BLOCK], "
            f"dtype=tl.int64), {n.name}_idx)"]


def lane_final(n: Node) -> list[str]:
    """``n``'s lanes reduced to one value per row after the loop."""
    if n.op == "sum":  # the lanes' sums, less what each lost, then a tree sum over the lanes
        return [f"{n.name} = tl.sum({n.name}_acc - {n.name}_err, axis=1)[:, None]"]
    if n.op in ("max", "min"):
        return [f"{n.name} = tl.where(tl.max(({n.name}_acc != {n.name}_acc).to(tl.int32), axis=1)"
                f"[:, None] > 0, float(\"nan\"), tl.{n.op}({n.name}_acc, axis=1)[:, None])"]
    best = "tl.max" if n.op == "argmax" else "tl.min"
    # a lane that met a NaN keeps its first one; the first over lanes is torch's answer
    return [f"{n.name}_nan = tl.min(tl.where({n.name}_acc != {n.name}_acc, {n.name}_idx, n_cols), "
            "axis=1)[:, None]",
            f"{n.name}_best = {best}({n.name}_acc, axis=1)[:, None]",
            f"{n.name} = tl.where({n.name}_nan < n_cols, {n.name}_nan, tl.min(tl.where("
            f"{n.name}_acc == {n.name}_best, {n.name}_idx, n_cols), axis=1)[:, None])"]


def online_step(m: str, sm: str, v: str) -> list[str]:
    """The online pair's step: the running max ``m`` and the sum of exp ``sm`` rescaled when the max grows
    (a row still all -inf adds nothing)."""
    return [f"{m}_new = tl.maximum({m}_acc, {v}, propagate_nan=tl.PropagateNan.ALL)",
            f"{sm}_acc = {sm}_acc * tl.where({m}_new == float(\"-inf\"), 0.0, tl.exp({m}_acc - {m}_new)) "
            f"+ tl.where({m}_new == float(\"-inf\"), 0.0, tl.exp({v} - {m}_new))"]


def online_final(m: str, sm: str) -> list[str]:
    """The online pair's sum of exp, each lane's rescaled from its own max to the row's."""
    return [f"{sm} = tl.sum(tl.where({m}_acc == float(\"-inf\"), 0.0, "
            f"{sm}_acc * tl.exp({m}_acc - {m})), axis=1)[:, None]"]


def welford_step(s2: str, s1: str, x: str, lo: str, sum_lines: list[str]) -> list[str]:
    """One chunk ``x`` folded into a variance pair's per-lane state: ``sum_lines`` (the sum's own step) and,
    around it, the squared deviations (Welford: (x - mean before) * (x - mean after)), so the row's sum and
    variance take one read of it, not one each. The lane's mean is its running sum (compensated under
    ACCURATE) over its count, so the sum and its inf/NaN are the plain sum's. Chunks run in order from
    ``lo``: every lane that holds a value in this chunk holds its k-th, k the chunk's ordinal, so the count
    is one scalar per chunk (a masked lane adds nothing)."""
    total = f"({s1}_acc - {s1}_err)"
    return [f"{s2}_seen = {_offset('start', lo)} // BLOCK",
            f"{s2}_before = {total} * (1.0 / tl.maximum({s2}_seen, 1))",
            *sum_lines,
            f"{s2}_after = {total} * (1.0 / ({s2}_seen + 1))",
            *sum_step(s2, f"tl.where(mask, ({x} - {s2}_before) * ({x} - {s2}_after), 0.0)")]


def welford_final(s2: str, s1: str, lo: str, hi: str) -> list[str]:
    """After the sum ``s1`` is final: the lanes' (count, mean, M2) combined into the row's sum of squared
    deviations ``s2`` (Chan et al.: each lane's M2 plus its count times its mean's squared distance from the
    row's mean, all added in one tree sum). Lane j holds columns lo + j + k * BLOCK: its count."""
    return [f"{s2}_n = tl.cdiv(tl.maximum({_offset(hi, lo)} - tl.arange(0, BLOCK), 0), BLOCK).to(tl.float32)[None, :]",
            f"{s2}_mu = {s1} / tl.maximum(tl.sum({s2}_n, axis=1)[:, None], 1.0)",
            f"{s2}_dm = ({s1}_acc - {s1}_err) / tl.maximum({s2}_n, 1.0) - {s2}_mu",
            f"{s2} = tl.sum(({s2}_acc - {s2}_err) + {s2}_n * {s2}_dm * {s2}_dm, axis=1)[:, None]"]


def _offset(col: str, lo: str) -> str:
    return col if lo == "0" else f"({col} - {lo})"
