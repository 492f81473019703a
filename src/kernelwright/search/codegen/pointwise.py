"""The pointwise schedule: every tensor has the full shape, so a kernel is a flat, grid-strided loop over
the elements, BLOCK at a time."""

from __future__ import annotations

from kernelwright.search.ir import REMAPS, Program, Unsupported
from kernelwright.search.codegen.expressions import Emitter, live, load_suffix, ref_pointer
from kernelwright.search.codegen.launch import launcher_params, numel_values, numels, torch_dtype
from kernelwright.search.codegen.source import indent


def pointwise_source(program: Program) -> tuple[str, str]:
    """(kernel, launcher) of a pointwise program."""
    if indexed(program):
        return indexed_source(program)
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


# -- indexed: broadcast inputs, remapped reads, several outputs ------------------------------------------
#
# Rotary embedding reads cos and sin broadcast over batch and heads, reads each row of q at its other
# half (rotate_half) and writes q and k, whose head counts differ. Every output still has one element per
# iteration: each tensor's offset is computed from the flat index over the output's elements, and one
# launch loops over each output's elements in turn.


def indexed(program: Program) -> bool:
    """Whether the program needs the indexed kernel: a read along a dim by index (broadcast inputs come
    with it) or outputs of different shapes."""
    return bool(program.parts) or any(n.op in REMAPS for n in program.nodes)


class _Index:
    """Offsets into one part's contiguous tensors from ``offs``, the flat (row-major) index of an element
    of its output; the sizes it reads (``size{k}{suffix}``) become kernel arguments."""

    def __init__(self, part: Program, suffix: str):
        self.rank, self.suffix, self.used = part.rank, suffix, set()

    def size(self, k: int) -> str:
        self.used.add(k)
        return f"size{k}{self.suffix}"

    def product(self, dims) -> str:
        dims = list(dims)
        text = " * ".join(self.size(k) for k in dims)
        return f"({text})" if len(dims) > 1 else text

    def index(self, first: int, last: int) -> str:
        """The index over iteration dims first..last, as one flattened dim."""
        if last == self.rank - 1:
            index = "offs"
        else:
            index = f"offs // {self.product(range(last + 1, self.rank))}"
        if first == 0:
            return index
        return f"{index if last == self.rank - 1 else f'({index})'} % {self.product(range(first, last + 1))}"

    def offset(self, dims: list[int]) -> str:
        """The offset of this element in a tensor spanning ``dims`` (each run of adjacent dims at once)."""
        if dims == list(range(self.rank)):
            return "offs"
        terms = []
        for first, last in _runs(dims):
            later = [k for k in dims if k > last]
            index = self.index(first, last)
            terms.append(f"({index}) * {self.product(later)}" if later else index)
        return " + ".join(terms)

    def stride(self, dims: list[int], k: int) -> str:
        later = [j for j in dims if j > k]
        return f" * {self.product(later)}" if later else ""


def _runs(dims: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for k in dims:
        if runs and runs[-1][1] == k - 1:
            runs[-1] = (runs[-1][0], k)
        else:
            runs.append((k, k))
    return runs


def _spanned(spec) -> list[int]:
    return [k for k in spec.dim_map if k is not None]


def _part_body(program: Program, part: Program, ix: _Index) -> list[str]:
    """One output's elements: the index along each remapped dim, then each needed value, then the store."""
    needed = live(part)
    specs = {s.name: s for s in part.inputs}
    em = Emitter(program, ref_pointer(program), None)
    lines, env = [], {}
    for k in sorted({n.attrs["dim"] for n in part.nodes if n.op in REMAPS and n.name in needed}):
        lines.append(f"col{k} = {ix.index(k, k)}")
        lines.append(f"half{k} = {ix.size(k)} // 2")
    for node in part.nodes:
        if node.name not in needed:
            continue
        if node.op == "input":
            s = specs[node.name]
            dims = _spanned(s)
            address = f"{node.name}_ptr + {ix.offset(dims)}" if dims else f"{node.name}_ptr"
            lines.append(f"{node.name} = tl.load({address}, mask=mask, other=0){load_suffix(s.dtype)}")
        elif node.op == "roll_half":  # the element half a row away: rotate_half's other half
            s, k = specs[node.args[0]], node.attrs["dim"]
            dims = _spanned(s)
            shift = f"tl.where(col{k} < half{k}, half{k}, -half{k}){ix.stride(dims, k)}"
            lines.append(f"{node.name} = tl.load({s.name}_ptr + {ix.offset(dims)} + {shift}, mask=mask, "
                         f"other=0){load_suffix(s.dtype)}")
        elif node.op == "first_half":
            lines.append(f"{node.name} = col{node.attrs['dim']} < half{node.attrs['dim']}")
        else:
            lines.append(f"{node.name} = {em.pointwise(node, env)}")
        env[node.name] = node.name
    for o in part.outputs:
        if sorted(_spanned(o)) != list(range(part.rank)):
            raise Unsupported("output broadcast", "an output that does not span every dim")
        lines.append(f"tl.store({o.name}_ptr + offs, {env[o.node]}.to({o.name}_ptr.dtype.element_ty), mask=mask)")
    return lines


def indexed_source(program: Program) -> tuple[str, str]:
    """(kernel, launcher) of an indexed program: one loop over each part's (output's) elements."""
    parts = program.parts or [program]
    suffixes = [f"_{i}" if len(parts) > 1 else "" for i in range(len(parts))]
    loops, scalars = [], []
    for part, suffix in zip(parts, suffixes):
        ix = _Index(part, suffix)
        body = indent(_part_body(program, part, ix), 8)
        scalars += [f"n_elements{suffix}"] + [ix.size(k) for k in sorted(ix.used)]
        loops.append(f'''    for block in range(tl.program_id(0), tl.cdiv(n_elements{suffix}, BLOCK), tl.num_programs(0)):
        offs = tl.arange(0, BLOCK).to(tl.int64) + block * BLOCK
        mask = offs < n_elements{suffix}
{body}''')
    ptrs = ", ".join(f"{s.name}_ptr" for s in program.inputs + program.outputs)
    ptrs += "".join(f", {n.name}" for n in numels(program))
    what = "each output's elements in turn" if len(parts) > 1 else "n_elements"
    kernel = f'''

@triton.jit
def _pointwise_kernel({ptrs}, {", ".join(scalars)}, BLOCK: tl.constexpr):
    """Elementwise over {what}, BLOCK at a time (a persistent grid strides over the
    blocks); each tensor read at the element's offset in it: broadcast dims skipped, a rotated half read
    half a row away."""
''' + "\n".join(loops) + "\n"
    return kernel, _indexed_launcher(program, parts, suffixes, scalars)


def _indexed_launcher(program: Program, parts: list[Program], suffixes: list[str], scalars: list[str]) -> str:
    inputs = program.inputs
    first = inputs[0].name
    lines = [f"{s.name} = {s.name}.contiguous()" for s in inputs]
    for i, (part, suffix) in enumerate(zip(parts, suffixes)):
        lines.append(f"shape{suffix} = ({', '.join(_shape_sizes(part))}{',' if part.rank == 1 else ''})")
        lines += [f"size{k}{suffix} = shape{suffix}[{k}]" for k in range(part.rank)
                  if f"size{k}{suffix}" in scalars]
        for k in sorted({n.attrs["dim"] for n in part.nodes if n.op in REMAPS}):
            lines.append(f"if size{k}{suffix} % 2:")
            lines.append(f'    raise ValueError(f"dim {k} has odd size {{size{k}{suffix}}}: rotate_half needs it even")')
        lines += _shape_checks(part, suffix)
        lines += [f"{o.name} = torch.empty(shape{suffix}, device={first}.device, dtype={torch_dtype(o, program)})"
                  for o in part.outputs]
        lines.append(f"n_elements{suffix} = {' * '.join(f'shape{suffix}[{k}]' for k in range(part.rank)) or '1'}")
        lines += numel_values(part, lambda k, suffix=suffix: f"shape{suffix}[{k}]")
    outs = ", ".join(o.name for o in program.outputs) + ("," if len(program.outputs) == 1 else "")
    largest = f"max({', '.join(f'n_elements{s}' for s in suffixes)})" if len(parts) > 1 else "n_elements"
    call = ", ".join(s.name for s in program.inputs + program.outputs)
    call += "".join(f", {n.name}" for n in numels(program)) + ", " + ", ".join(scalars)
    lines += [f"if {largest} == 0:", f"    return {outs}",
              f"n_cols = shape{suffixes[0]}[-1] if shape{suffixes[0]} else 1",
              f"config = pick_config({largest} // max(n_cols, 1), n_cols)",
              f"block = min(config[\"block\"], max(16, triton.next_power_of_2({largest})))",
              f"grid = _grid(triton.cdiv({largest}, block), config, {first}.device)",
              f"_pointwise_kernel[(grid,)]({call}, BLOCK=block,",
              "                           num_warps=config[\"warps\"], num_stages=config[\"stages\"])",
              f"return {outs}"]
    return f'''

def fused(*, {", ".join(launcher_params(program))}):
{indent(lines, 4)}
'''


def _shape_checks(part: Program, suffix: str) -> list[str]:
    """Each input's shape against the output's (the kernel reads every input at offsets computed from the
    output's sizes: an input of another size would be read out of bounds, so it is refused)."""
    sources = _shape_sizes(part)
    lines = []
    for spec in part.inputs:
        expected = ["1" if k is None else f"shape{suffix}[{k}]" for k in spec.dim_map]
        if all(k is not None and sources[k] == f"{spec.name}.shape[{j}]" for j, k in enumerate(spec.dim_map)):
            continue  # its sizes are the output's: nothing to compare
        wanted = f"({', '.join(expected)}{',' if len(expected) == 1 else ''})"
        lines += [f"if tuple({spec.name}.shape) != {wanted}:",
                  f'    raise ValueError(f"{spec.name} has shape {{tuple({spec.name}.shape)}}; with the other inputs this '
                  f'kernel needs {{{wanted}}}")']
    return lines


def _shape_sizes(part: Program) -> list[str]:
    """The output's shape: each dim's size from the first input spanning it."""
    sizes = []
    for k in range(part.rank):
        spec = next((s for s in part.inputs if k in s.dim_map), None)
        if spec is None:
            raise Unsupported("output broadcast", f"no input spans dim {k} of the output")
        sizes.append(f"{spec.name}.shape[{spec.dim_map.index(k)}]")
    return sizes
