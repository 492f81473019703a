"""The staged schedule: a program whose reductions run over different blocks of dims is split (by capture)
into stages, each a rows kernel of its own; ``fused`` calls their launchers in order."""

from __future__ import annotations

from kernelwright.search.ir import Program
from kernelwright.search.codegen.launch import launcher_params, numel_values
from kernelwright.search.codegen.source import indent


def staged_launcher(program: Program) -> str:
    """``fused`` for a staged program: every dim's size from the inputs, the size constants, then each
    stage's launcher in order, its stored values passed on by name."""
    lines = numel_values(program, lambda k: f"size{k}")
    seen: set[int] = set()
    for s in program.inputs:
        for j, k in enumerate(s.dim_map):
            if k is not None and k not in seen and lines:
                seen.add(k)
                lines.insert(len(seen) - 1, f"size{k} = {s.name}.shape[{j}]")
    for i, stage in enumerate(program.stages):
        args = [f"{s.name}={s.name}" for s in stage.inputs] + [f"{n}={n}" for n in stage.scalar_params]
        outs = ", ".join(o.name for o in stage.outputs)
        lines.append(f"{outs}{',' if len(stage.outputs) == 1 else ''} = fused_{i}({', '.join(args)})")
    outs = ", ".join(o.name for o in program.outputs) + ("," if len(program.outputs) == 1 else "")
    body = indent(lines, 4)
    return f'''

def fused(*, {", ".join(launcher_params(program))}):
    """{len(program.stages)} kernels: each reduces over its own block of dims."""
{body}
    return {outs}
'''
