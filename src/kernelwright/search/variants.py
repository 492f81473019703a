"""Variant enumeration: the launch configurations worth trying for one shape bucket, best guess first.

A configuration is a frozen :class:`~kernelwright.search.config.LaunchConfig`, written (as the dict of its
``as_dict``) into the candidate's ``CONFIGS`` table:

* ``one_pass`` — hold whole rows in registers (rows kernel; falls back to chunks past ``MAX_TILE``)
* ``block`` — chunk width of the looped rows kernel, or elements per step of the pointwise kernel
* ``rows`` — rows per program step (narrow rows: several per program)
* ``warps``, ``stages`` — Triton's ``num_warps`` / ``num_stages``
* ``programs_per_sm`` — 0: one program per block; k: a persistent grid of k programs per SM
* ``online`` (optional, default True) — looped softmax-shaped rows: running max and rescaled sum of exp
  in one pass instead of two (the kernel ignores it when the graph has no such pair)
* ``column`` (optional, default False) — a reduction over a middle dim read as columns: ``rows`` adjacent
  inner elements of one outer index per program, ``block`` reduced indices per step (coalesced loads)
* ``split`` (optional, default 0) — few long rows: each row's columns shared by several programs (the
  launcher picks how many so the grid holds about ``split`` programs per SM), each writing partial
  statistics in fp32 to a scratch buffer that the next launch combines (see :func:`schedule`)
* ``accurate`` (optional, default False) — looped row sums keep each lane's rounding error (compensated,
  Kahan) and add it back before the tree sum over the lanes: the form for rows of millions of elements

The first entry of each list is the prior (what a kernel engineer would write, as in ``examples/``);
the rest are its neighbours, ordered so a small budget still tries the changes that matter most.
"""

from __future__ import annotations

from typing import Any

from kernelwright.search.codegen import MAX_TILE
from kernelwright.search.config import LaunchConfig

# Rows at least this wide are summed in the accurate form by default: a lane of a 4096-wide chunk then adds
# 64 values or more in turn, and on 40_LayerNorm's 4M-element rows the plain form missed fp32's bound.
ACCURATE_COLS = 1 << 18
CPU_PROBE_BLOCK = 64
# A reduction over a middle dim with at least this many contiguous inner elements per reduced index is
# read by the column schedule first (a warp's loads then cover whole 64-byte segments or more in fp32)
COLUMN_INNER = 16
# Split schedules (see ``schedule``): fewer row programs than this leave SMs idle (about 2 per SM of an
# H100/H200's 132), and a row at least SPLIT_COLS wide (SPLIT_REDUCED reduced indices for a column tile)
# has enough work per part to pay for the extra launch and the partials' round trip
SPLIT_PROGRAMS = 264
SPLIT_COLS = 1 << 16
SPLIT_REDUCED = 1 << 10  # the sum over dim 1 of (32, 2048, 1024): 256 column tiles, split in 4
COLUMN_TILE = 128  # the column schedule's prior tile of inner elements (column_configs' first entry)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


def _warps_for(elements: int) -> int:
    return 16 if elements >= 8192 else 8 if elements >= 2048 else 4


def config(**fields: Any) -> LaunchConfig:
    """A configuration: the defaults with ``fields`` changed."""
    return LaunchConfig(**fields)


def probes(kind: str, device: str = "cuda", inner: int = 1, split: bool = False) -> list[tuple[str, LaunchConfig]]:
    """Configurations that drive every code path of a generated kernel on the verifier's small shapes:
    whole rows with several rows per program and row tails; narrow chunks (many chunks, column tails)
    on a persistent grid. With ``inner`` > 1 (a reduced middle dim) also the column schedule, with tails
    on both the inner tile and the reduced chunks. With ``split`` (a bucket leads with a split schedule)
    also rows (and, with ``inner`` > 1, column tiles) in parts combined by a later launch.

    On the CPU the Triton interpreter pays per program and per loop iteration, not per element, and a
    KernelBench loss keeps its rows thousands wide at every verified shape (its width is a tuple the
    verifier does not shrink): 16-wide chunks made one probe of 95_CrossEntropyLoss take 9.5 minutes.
    There the chunks are 64 wide (still several per row, with tails, at the verifier's CPU widths of 100
    and more) and a program takes 8 rows: 15 times fewer loop steps there; the whole-row path is left to
    best.py's own verification."""
    column = [("probe-column", config(one_pass=False, block=16, rows=16, warps=4, programs_per_sm=1, column=True))
              ] if kind == "rows" and inner > 1 else []
    if kind == "rows" and split:  # parts of rows and their combine (at least 2 parts whatever the shape)
        cpu = device == "cpu"
        column += [("probe-split", config(one_pass=False, block=CPU_PROBE_BLOCK if cpu else 16, rows=8 if cpu else 2,
                                          warps=4, split=1))]
        if inner > 1:
            column += [("probe-column-split", column[0][1].replace(split=1))]
    if device == "cpu":
        if kind == "pointwise":
            return [("probe-pointwise", config(block=1024, warps=4, programs_per_sm=1))]
        return [("probe-looped", config(one_pass=False, block=CPU_PROBE_BLOCK, rows=8, warps=4,
                                        programs_per_sm=1))] + column
    if kind == "pointwise":
        return [("probe-pointwise", config(block=64, warps=4, programs_per_sm=1))]
    return [("probe-one-pass", config(one_pass=True, rows=4, warps=4)),
            ("probe-looped", config(one_pass=False, block=16, rows=2, warps=4, programs_per_sm=1))] + column


def schedule(kind: str, n_rows: int, n_cols: int, inner: int = 1, split_ok: bool = False) -> str:
    """The schedule a shape bucket leads with, and why:

    * ``pointwise`` — no reduction;
    * ``column`` — a reduced middle dim with COLUMN_INNER or more contiguous inner elements: programs tile
      the inner dim and loop over the reduced one, so every load is a run of adjacent elements;
    * ``column-split`` — the same, when the tiles are fewer than SPLIT_PROGRAMS and the reduced dim is
      tall (SPLIT_REDUCED or more): the reduced dim is split across programs too, so the grid fills the GPU;
    * ``split`` — rows fewer than SPLIT_PROGRAMS and SPLIT_COLS wide or more (KernelBench 40_LayerNorm:
      16 rows of 4M): one program per row would use 16 SMs of 132, so each row is split across programs
      and its partial statistics combined;
    * ``rows`` — everything else: whole rows (or chunks) per program, several narrow rows per program.

    ``split_ok``: the program has a split form (no argmax/argmin; see ``codegen.splittable``)."""
    if kind == "pointwise":
        return "pointwise"
    column = inner >= COLUMN_INNER
    programs = (n_rows // max(inner, 1)) * -(-inner // COLUMN_TILE) if column else n_rows
    tall = n_cols >= (SPLIT_REDUCED if column else SPLIT_COLS)
    if split_ok and programs < SPLIT_PROGRAMS and tall:
        return "column-split" if column else "split"
    return "column" if column else "rows"


def split_configs(n_cols: int, inner: int = 1) -> list[LaunchConfig]:
    """Split schedule: ``split`` is the programs per SM the launcher aims at over rows x parts; each part
    loops over its share of the row ``block`` columns at a time (with ``inner`` > 1: the column tile, split
    over the reduced dim). Priors by reasoning, not measured: 16 programs per SM with 4096-wide chunks, so
    40_LayerNorm's 16 x 4M rows become 16 x 256 parts of 16K columns (64 KiB in fp32): small enough that a
    variance's second sweep over its part (see ``codegen.reductions.variance_pairs``) finds it in L2 while the
    programs in flight hold some tens of MiB."""
    if inner >= COLUMN_INNER:
        return [cfg.replace(split=k) for cfg in column_configs(n_cols, inner)[:3] for k in (4, 8)]
    out = []
    for block, warps, per_sm in ((4096, 8, 16), (4096, 8, 32), (4096, 8, 4), (8192, 16, 8), (2048, 4, 32),
                                 (4096, 16, 16)):
        cfg = config(one_pass=False, block=min(block, max(16, _next_pow2(n_cols))), rows=1, warps=warps,
                     split=per_sm)
        if cfg not in out:
            out.append(cfg)
    return out


def accurate(cfg: LaunchConfig, kind: str | None = None) -> LaunchConfig | None:
    """The accurate form of ``cfg`` (compensated row sums), or None when it already is or when there is
    none (a pointwise kernel has no sums). For a probe that failed only on accuracy: the same code paths,
    summed so that long rows keep fp32's precision."""
    if kind == "pointwise" or cfg.accurate:
        return None
    return cfg.replace(accurate=True)


def column_configs(n_cols: int, inner: int) -> list[LaunchConfig]:
    """Column schedule (``column``): a program takes one outer index and ``rows`` adjacent inner elements and
    loops over the reduced dim ``block`` at a time, so each load is ``rows`` contiguous elements. The
    rows kernel walks a reduced middle dim with a stride of ``inner`` instead (0.15-0.19x eager on an H200
    for a sum over dim 1 of 128x4096x4095 fp32). Priors by reasoning, not measured: 128 inner x 32 reduced
    (a 4096-element tile) first."""
    width = max(16, _next_pow2(inner))
    out = []
    for rows, block, warps in ((128, 32, 8), (64, 64, 8), (256, 16, 8), (128, 16, 4), (64, 32, 4), (256, 32, 16)):
        rows = min(rows, width)
        cfg = config(one_pass=False, block=min(block, max(16, _next_pow2(n_cols))), rows=rows, warps=warps,
                     column=True)
        if cfg not in out:
            out.append(cfg)
    return out


def ranked(kind: str, n_rows: int, n_cols: int, inner: int = 1, split_ok: bool = False) -> list[LaunchConfig]:
    """Configurations for one bucket, prior first, without duplicates. ``inner``: the extent of the
    contiguous dims after the reduced ones; the bucket's :func:`schedule` leads (split, column), the
    other forms follow as variants for tuning to rank."""
    out: list[LaunchConfig] = []
    lead = schedule(kind, n_rows, n_cols, inner, split_ok)
    if lead in ("split", "column-split"):
        out += split_configs(n_cols, inner)
    if kind == "rows" and inner >= COLUMN_INNER:
        out += column_configs(n_cols, inner)

    def add(cfg: LaunchConfig) -> None:
        if cfg not in out:
            out.append(cfg)

    if kind == "pointwise":
        n = n_rows * n_cols
        for block, warps, persistent in ((4096, 8, 0), (2048, 4, 0), (8192, 8, 0), (1024, 4, 0), (4096, 4, 0),
                                         (8192, 16, 0), (4096, 8, 8), (2048, 4, 16), (16384, 16, 0), (1024, 2, 0),
                                         (2048, 8, 0), (8192, 8, 4)):
            add(config(block=min(block, max(16, _next_pow2(n))), warps=warps, programs_per_sm=persistent))
        return out

    width = max(16, _next_pow2(n_cols))
    many_rows = n_rows >= 2048
    if width <= MAX_TILE:
        rows = max(1, min(16, 2048 // width))
        prior = config(one_pass=True, rows=rows, warps=_warps_for(rows * width))
        add(prior)
        for warps in (prior.warps * 2, max(1, prior.warps // 2)):
            if warps <= 32:
                add(prior.replace(warps=warps))
        if rows > 1:
            add(prior.replace(rows=rows // 2))
        add(prior.replace(rows=rows * 2, warps=_warps_for(rows * 2 * width)))
        if many_rows:
            add(prior.replace(programs_per_sm=4))
            add(prior.replace(programs_per_sm=8))
    # looped variants: always available, needed past MAX_TILE, sometimes faster for wide rows
    if width > 2048:
        few_rows = n_rows < 512
        for block, warps in ((16384, 16), (8192, 16), (4096, 8), (2048, 8), (8192, 8), (4096, 16)) if few_rows else \
                ((4096, 8), (8192, 16), (2048, 8), (4096, 16), (8192, 8), (16384, 16)):
            if block < width:
                add(config(one_pass=False, block=block, rows=1, warps=warps))
        for cfg in list(out):
            if not cfg.one_pass:
                add(cfg.replace(stages=3))
                add(cfg.replace(stages=1))
        # softmax-shaped rows fold the sum of exp into the max's pass (online); the three-pass form is kept
        # as a variant: its speed against the online one is unmeasured
        looped = [cfg for cfg in out if not cfg.one_pass]
        if looped:
            add(looped[0].replace(online=False))
    if not out:
        add(config(one_pass=True, rows=1, warps=4))
    if n_cols >= ACCURATE_COLS:
        return [accurate(cfg) or cfg for cfg in out]
    return out
