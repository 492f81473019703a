"""The pointwise schedule: every tensor has the full shape, so a kernel is a flat, grid-strided loop over
the elements, BLOCK at a time."""

from __future__ import annotations

from kernelwright.search.ir import Program
from kernelwright.search.codegen.expressions import Emitter, live, load_suffix, ref_pointer
from kernelwright.search.codegen.launch import launcher_params, numel_values, numels, torch_dtype
from kernelwright.search.codegen.source import indent


def pointwise_source(program: Program) -> tuple[str, str]:
    """(kernel, launcher) of a pointwise program."""
    return _kernel(program), _launcher(program)


def _body(program: Program) -> list[str]:
    """Each needed value in graph order, then the stores; a load or a value per line."""
    needed = live(program)
    specs = {s.name: s for s in program.inputs}
    lines = []
    env: dict[str, str] = {}
    em = Emitter(program, ref_pointer(program), None)
    for node in program.nodes:
        if node.name not in needed:
            continue
        if node.op == "input":
            s = specs[node.name]
            lines.append(f"{node.name} = tl.load({node.name}_ptr + offs, mask=mask, other=0){load_suffix(s.dtype)}")
        else:
            lines.append(f"{node.name} = {em.pointwise(node, env)}")
        env[node.name] = node.name
    for o in program.outputs:
        lines.append(f"tl.store({o.name}_ptr + offs, {env[o.node]}.to({o.name}_ptr.dtype.element_ty), mask=mask)")
    return lines


def _kernel(program: Program) -> str:
    ptrs = ", ".join(f"{s.name}_ptr" for s in program.inputs + program.outputs)
    ptrs += "".join(f", {n.name}" for n in numels(program))
    body = indent(_body(program), 8)
    return f'''

@triton.jit
def _pointwise_kernel({ptrs}, n_elements, BLOCK: tl.constexpr):
    """Elementwise over n_elements, BLOCK at a time; a persistent grid strides over the blocks."""
    n_blocks = tl.cdiv(n_elements, BLOCK)
    for block in range(tl.program_id(0), n_blocks, tl.num_programs(0)):
        offs = tl.arange(0, BLOCK).to(tl.int64) + block * BLOCK
        mask = offs < n_elements
{body}
'''


def _launcher(program: Program) -> str:
    """``fused``: contiguous inputs, the outputs allocated, then one launch over every element."""
    inputs = program.inputs
    first = inputs[0].name
    args = ", ".join(launcher_params(program))
    prep = "\n".join(f"    {s.name} = {s.name}.contiguous()" for s in inputs)
    allocs = "\n".join(f"    {o.name} = torch.empty({first}.shape, device={first}.device, "
                       f"dtype={torch_dtype(o, program)})" for o in program.outputs)
    outs = ", ".join(o.name for o in program.outputs)
    call_ptrs = ", ".join(s.name for s in program.inputs + program.outputs)
    call_ptrs += "".join(f", {n.name}" for n in numels(program))
    prep += "".join(f"\n    {line}" for line in numel_values(program, lambda k: f"{first}.shape[{k}]"))
    return f'''

def fused(*, {args}):
{prep}
{allocs}
    n_elements = {first}.numel()
    if n_elements == 0:
        return {outs}{',' if len(program.outputs) == 1 else ''}
    n_cols = {first}.shape[-1] if {first}.dim() else 1
    config = pick_config(n_elements // max(n_cols, 1), n_cols)
    block = min(config["block"], max(16, triton.next_power_of_2(n_elements)))
    grid = _grid(triton.cdiv(n_elements, block), config, {first}.device)
    _pointwise_kernel[(grid,)]({call_ptrs}, n_elements, BLOCK=block,
                               num_warps=config["warps"], num_stages=config["stages"])
    return {outs}{',' if len(program.outputs) == 1 else ''}
'''
