"""Graph capture, the offline search's front end: a task's ``Model.forward`` traced into ATen ops
(:mod:`.trace`), lowered to the IR (:mod:`.lowering`, types in :mod:`.ir`) and split into stages where it
reduces over more than one block of dims (:mod:`.staging`).

This module is the entry point (:func:`capture`, :func:`describe`) and re-exports the few names its callers
import from it; the IR's types live in :mod:`.ir`.
"""

from __future__ import annotations

from typing import Any

from kernelwright.search.ir import REDUCTIONS, Const, Program, Unsupported
from kernelwright.search.lowering import COVERS, lower, outside_family
from kernelwright.search.staging import stage
from kernelwright.search.trace import (CAPTURE_SIZES, capture_shape, distinct_sizes, init_constants, init_params,
                                       signature, size_constants, trace, trace_or_refuse)
from kernelwright.tasks.knobs import relations
from kernelwright.tasks.task import Task

__all__ = ["CAPTURE_SIZES", "COVERS", "Const", "Program", "Unsupported", "capture", "capture_shape", "describe",
           "trace"]


def capture(task: Task) -> Program:
    """Trace the task's Model and lower it to the IR; raises :class:`Unsupported` naming the op."""
    graph = trace_or_refuse(task, CAPTURE_SIZES[0])
    try:
        distinct_sizes(task, graph[0])
        program = _capture(task, *graph)
    except Unsupported as exc:
        family = outside_family(graph[0])
        if family and not exc.outside:
            raise Unsupported(exc.op, exc.why, outside=family) from None
        raise
    program.shape_relations = relations(task).note(task)
    return program


def _capture(task: Task, graph, model, inputs, tensor_positions, state_names, low, init_inputs) -> Program:
    import inspect

    sizes: dict = {}
    if task.knobs:
        other = trace_or_refuse(task, CAPTURE_SIZES[1])[0]
        if signature(graph) != signature(other):
            sizes = size_constants(graph, other)
    forward_params = list(inspect.signature(model.forward).parameters)
    from_init = init_constants(task, graph, init_inputs, init_params(model))
    program, blocks = lower(task, graph, model, inputs, tensor_positions, state_names, low, forward_params, sizes,
                            from_init)
    stage(program, blocks)
    return program


def describe(program: Program) -> dict[str, Any]:
    """A JSON summary for the tuning plan, in plain strings (the IR's kinds are enums)."""
    return {"kind": str(program.kind), "rank": program.rank, "reduce_dim": program.reduce_dim, "ops": program.ops,
            "inputs": [{"name": s.name, "source": str(s.source), "ref": s.ref, "dims": list(s.dim_map),
                        "dtype": str(s.dtype)}
                       for s in program.inputs],
            "outputs": [{"name": s.name, "node": s.node, "dims": list(s.dim_map), "dtype": str(s.dtype)}
                        for s in program.outputs],
            "nodes": len(program.nodes), "reductions": sum(n.op in REDUCTIONS for n in program.nodes),
            "reduce_dims": list(program.reduce_dims),
            "stages": [{"reduce_dims": list(st.reduce_dims), "rank": st.rank, "nodes": len(st.nodes)}
                       for st in program.stages],
            **({"notes": [program.shape_relations]} if program.shape_relations else {})}

