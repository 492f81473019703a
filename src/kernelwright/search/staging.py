"""Staging: a Program that reduces over more than one block of dims becomes one Program per block.

A per-row norm followed by the mean over rows cannot be one row kernel: each block of reduced dims gets
its own stage (its own kernel), in dependency order, and values crossing stages go through buffers.
"""

from __future__ import annotations

from kernelwright.search.ir import REDUCTIONS, Node, Op, Program, Source, TensorSpec


def stage(program: Program, reductions_dims: set[tuple[int, ...]]) -> None:
    """Set the program's reduced block and, when it reduces over several blocks, its stages."""
    if len(reductions_dims) > 1:
        program.stages = split_stages(program)
        # the first stage's block, in this program's numbering: the first reduction starts stage 0
        group = next(tuple(n.attrs["dim"]) for n in program.nodes if n.op in REDUCTIONS)
    else:
        group = next(iter(reductions_dims), ())
    program.reduce_dims = tuple(group)
    program.reduce_dim = group[0] if group else None


def split_stages(program: Program) -> list[Program]:
    """One Program per block of reduced dims, in dependency order. Values with no reduction behind them
    are recomputed where needed; a value a later stage needs from an earlier one is stored in its own
    dtype and loaded back. Each stage gets its own compact iteration space."""
    by_name = program.node_by_name
    free: dict[str, bool] = {}
    for n in program.nodes:
        free[n.name] = n.op not in REDUCTIONS and all(free[a] for a in n.args if isinstance(a, str))
    stage: dict[str, int] = {}
    groups: dict[int, tuple[int, ...]] = {}
    for n in program.nodes:
        if free[n.name]:
            continue
        s = max((stage[a] for a in n.args if isinstance(a, str) and not free[a]), default=0)
        if n.op in REDUCTIONS:
            g = tuple(n.attrs["dim"])
            while groups.get(s, g) != g:
                s += 1
            groups[s] = g
        stage[n.name] = s
    count = max(groups) + 1
    where = lambda name: 0 if free[name] else stage[name]  # noqa: E731
    crossing: dict[int, list[str]] = {t: [] for t in range(count)}  # values stage t stores for later ones
    for n in program.nodes:
        for a in n.args:
            if isinstance(a, str) and not free[n.name] and not free[a] and stage[a] < stage[n.name] \
                    and a not in crossing[stage[a]]:
                crossing[stage[a]].append(a)
    specs_by_node = {s.name: s for s in program.inputs}
    stages = []
    for t in range(count):
        finals = [o for o in program.outputs if where(o.node) == t]
        roots = [o.node for o in finals] + crossing[t]
        keep: list[str] = []
        loaded: list[str] = []

        def visit(name: str) -> None:
            if name in keep or name in loaded:
                return
            if not free[name] and stage[name] < t:
                loaded.append(name)
                return
            for a in by_name[name].args:
                if isinstance(a, str):
                    visit(a)
            keep.append(name)

        for r in roots:
            visit(r)
        order = {n.name: i for i, n in enumerate(program.nodes)}
        members = sorted(keep + loaded, key=order.get)
        used = set(groups[t])
        for name in members:
            used |= by_name[name].dims
        renumber = {k: i for i, k in enumerate(sorted(used))}
        nodes, inputs, outputs, numels = [], [], [], []
        for name in members:
            n = by_name[name]
            dims = frozenset(renumber[k] for k in n.dims)
            if name in loaded:  # stored in its own dtype: already rounded where the model rounds
                dtype = n.dtype
                nodes.append(Node(name, Op.INPUT, [], dims, dtype))
                inputs.append(TensorSpec(name=name, source=Source.STAGE, ref=name, dim_map=tuple(sorted(dims)),
                                         dtype=dtype))
                continue
            attrs = dict(n.attrs)
            if "dim" in attrs and n.op in REDUCTIONS:
                attrs["dim"] = tuple(renumber[k] for k in attrs["dim"])
            elif "dim" in attrs:
                attrs["dim"] = renumber[attrs["dim"]]
            if n.op in (Op.NUMEL, Op.INIT):
                numels.append(name)
            nodes.append(Node(name, n.op, list(n.args), dims, n.dtype, attrs))
            if n.op == Op.INPUT:
                spec = specs_by_node[name]
                inputs.append(TensorSpec(name=spec.name, source=spec.source, ref=spec.ref, dtype=spec.dtype,
                                         dim_map=tuple(None if k is None else renumber[k] for k in spec.dim_map)))
        for o in finals:
            outputs.append(TensorSpec(name=o.name, source=Source.OUTPUT, ref=o.ref, dtype=o.dtype, node=o.node,
                                      dim_map=tuple(None if k is None else renumber[k] for k in o.dim_map)))
        for name in crossing[t]:
            n = by_name[name]
            dtype = n.dtype
            outputs.append(TensorSpec(name=name, source=Source.STAGE, ref=name, dtype=dtype, node=name,
                                      dim_map=tuple(sorted(renumber[k] for k in n.dims))))
        group = tuple(renumber[k] for k in groups[t])
        stages.append(Program(task=program.task, nodes=nodes, inputs=inputs, outputs=outputs, rank=len(renumber),
                              reduce_dim=group[0], forward_args=program.forward_args, scalar_args={},
                              init_source="", ops=program.ops, output_is_tuple=True, reduce_dims=group,
                              scalar_params=numels))
    return stages

