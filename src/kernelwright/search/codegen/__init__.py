"""Code generation: a captured :class:`Program` becomes a readable KernelBench-format candidate.

The file reads top to bottom: the Triton kernel, the launch plan (configuration per shape bucket), the
launcher, then ``ModelNew`` with ``Model``'s own ``__init__`` (same constructor, same parameter names, so
``load_state_dict`` works). Every kernel computes in fp32 (loads are upcast) and rounds where the eager
model rounds: at explicit casts and after each op whose result is in the task's dtype.

One module per schedule, each giving (kernel, launcher):

* :mod:`.pointwise` — every tensor has the full shape: a flat, grid-strided loop over the elements.
* :mod:`.rows` — one reduced dimension (or the last dimension of a broadcasting pointwise graph): rows
  held whole in registers or streamed in chunks, column tiles, and rows split across programs.
* :mod:`.staged` — reductions over different blocks of dims: one rows kernel per stage, called in order.

Shared: :mod:`.expressions` (IR nodes as Triton expressions), :mod:`.reductions` (reductions as lines),
:mod:`.source` (the file's header and indentation), and :mod:`.launch` (the launch plan, run-time
scalars and ``ModelNew``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernelwright.search.ir import REDUCTIONS, Program
from kernelwright.search.codegen.expressions import expression
from kernelwright.search.codegen.launch import MAX_TILE, model_new, plan_section
from kernelwright.search.codegen.pointwise import pointwise_source
from kernelwright.search.codegen.rows import Layout, rows_source
from kernelwright.search.codegen.source import HEADER, TANH
from kernelwright.search.codegen.staged import staged_launcher
from kernelwright.search.config import LaunchConfig, as_config

__all__ = ["MAX_TILE", "Layout", "expression", "generate", "splittable"]


def generate(program: Program, configs: list[tuple[tuple[int, int], LaunchConfig | Mapping[str, Any]]], *,
             label: str = "") -> str:
    """Source of a candidate whose launcher dispatches on (rows, cols) to the nearest bucket's config (a
    stored dict is read with ``LaunchConfig.from_dict``)."""
    configs = [(key, as_config(cfg)) for key, cfg in configs]
    split = any(cfg.split for _, cfg in configs)
    if program.stages:
        parts = [rows_source(stage, suffix=f"_{i}", split=split) for i, stage in enumerate(program.stages)]
        kernel = "".join(k for k, _ in parts)
        launcher = "".join(launch for _, launch in parts) + staged_launcher(program)
    elif program.kind == "pointwise":
        kernel, launcher = pointwise_source(program)
    else:
        kernel, launcher = rows_source(program, split=split)
    ops = ", ".join(o.replace("aten.", "") for o in program.ops) or "none"
    parts = [HEADER.format(task=program.task, kind=program.kind, ops=ops)]
    if "_tanh(" in kernel:
        parts.append(TANH)
    parts.append(kernel)
    parts.append(plan_section(program, configs, label))
    parts.append(launcher)
    parts.append(model_new(program))
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def splittable(program: Program) -> bool:
    """Whether the split schedule can generate this program: rows with reductions, none an argmax/argmin
    (a partial index would need its own combine), in every stage."""
    parts = program.stages or [program]
    return program.kind == "rows" and all(
        any(n.op in REDUCTIONS for n in p.nodes) and not any(n.op in ("argmax", "argmin") for n in p.nodes)
        for p in parts)
