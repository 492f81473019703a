"""Everything around the kernels: the run-time scalars the launcher passes, the launch plan (``CONFIGS``
and the helpers that pick from it), and ``ModelNew``, which calls the launcher with ``Model``'s own
constructor and parameters."""

from __future__ import annotations

import re

from kernelwright.search.ir import Node, Program, TensorSpec, Unsupported
from kernelwright.search.codegen.expressions import live
from kernelwright.search.config import LaunchConfig

MAX_TILE = 32768  # elements of one row held in registers by a one-pass program


# -- run-time scalars and launcher arguments ----------------------------------------------------------


def numels(program: Program) -> list[Node]:
    """The kernel's run-time scalars: dimension sizes (``numel``) and constructor arguments (``init``),
    plain (not constexpr) arguments, so a new value needs no new compile."""
    needed = live(program)
    return [n for n in program.nodes if n.op in ("numel", "init") and n.name in needed]


def init_args(program: Program) -> list[str]:
    """The launcher's keyword arguments for constructor arguments the kernel reads (``init_<name>``)."""
    return list(dict.fromkeys(f"init_{n.attrs['param']}" for n in numels(program)
                              if n.op == "init" and n.name not in program.scalar_params))


def numel_values(program: Program, size) -> list[str]:
    """Launcher lines computing each run-time scalar: a size constant from ``size(k)``, the k-th dim's size
    (a stage's constants come from its caller, which sees every dim), or a constructor argument."""
    lines = []
    for n in numels(program):
        if n.name in program.scalar_params:
            continue
        if n.op == "init":
            lines.append(f"{n.name} = {_init_value(n)}")
            continue
        product = " * ".join(size(k) for k in n.attrs["of"])
        lines.append(f"{n.name} = " + (f"1.0 / float({product})" if n.attrs["inverse"] else f"float({product})"))
    return lines


def _init_value(n: Node) -> str:
    """A constructor argument as the kernel reads it: captured as an affine map of the argument's value."""
    value = f"float(init_{n.attrs['param']})"
    if n.attrs["inverse"]:
        value = f"1.0 / {value}"
    if n.attrs["scale"] != 1.0:
        value = f"{n.attrs['scale']!r} * {value}"
    if n.attrs["offset"] != 0.0:
        value = f"{value} + {n.attrs['offset']!r}"
    return value


def torch_dtype(spec, program: Program) -> str:
    """The dtype an output is allocated with: the task's (that of an input in it) or a fixed one."""
    if spec.dtype == "case":
        ref = next((s for s in program.inputs if s.dtype == "case"), None)
        if ref is None:
            raise Unsupported("task-dtype output", "a stage writes the task's dtype but reads no tensor of it")
        return f"{ref.name}.dtype"
    return {"f32": "torch.float32", "i64": "torch.int64", "bool": "torch.bool"}[spec.dtype]


def launcher_params(program: Program) -> list[str]:
    """The launcher's keyword arguments: the input tensors, then the constructor arguments it reads."""
    return [s.name for s in program.inputs] + init_args(program)


# -- launch plan and ModelNew ------------------------------------------------------------------------


def _config_literal(cfg: LaunchConfig) -> str:
    # the stored dict's form: the kernel reads an optional field with config.get(name, default)
    fields = cfg.as_dict()
    return "dict(" + ", ".join(f"{k}={fields[k]!r}" for k in sorted(fields)) + ")"


def plan_section(program: Program, configs: list[tuple[tuple[int, int], LaunchConfig]], label: str) -> str:
    table = ",\n".join(f"    (({r}, {c}), {_config_literal(cfg)})" for (r, c), cfg in configs)
    tile = '''

def _tile(n_cols, config):
    """(BLOCK, ROWS, ONE_PASS): whole rows in registers when they fit, else BLOCK-wide chunks."""
    width = max(16, triton.next_power_of_2(n_cols))
    one_pass = config["one_pass"] and width <= MAX_TILE
    rows = max(1, min(config["rows"], MAX_TILE // width)) if one_pass else config["rows"]
    block = width if one_pass else min(config["block"], width)
    return block, rows, one_pass


def _split_parts(per_sm, n_row_blocks, n_cols, block, device):
    """How many programs share a row (split schedule): enough for ``per_sm`` programs per SM over the row
    blocks, a power of two from 2 (so the combine always runs) to one ``block`` chunk per part."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 2
    most = max(2, triton.next_power_of_2(triton.cdiv(n_cols, block)))
    return max(2, min(triton.next_power_of_2(triton.cdiv(per_sm * sms, n_row_blocks)), most, 1024))


@functools.lru_cache(maxsize=4096)  # a decode step calls a norm per layer: the host's time per call counts
def _row_plan(n_rows, n_cols):
    """(config, BLOCK, ROWS, ONE_PASS) for a shape, worked out once."""
    config = pick_config(n_rows, n_cols)
    return (config, *_tile(n_cols, config))
''' if program.kind == "rows" else ""
    return f'''

# {label or "launch configurations"}: ((rows, cols) of a tuned shape, its configuration)
CONFIGS = [
{table},
]
MAX_TILE = {MAX_TILE}


@functools.lru_cache(maxsize=4096)
def pick_config(n_rows, n_cols):
    """The configuration tuned for the nearest shape bucket: closest width first, then closest height."""
    def distance(entry):
        (rows, cols), _ = entry
        return (abs(math.log2(max(cols, 1)) - math.log2(max(n_cols, 1))),
                abs(math.log2(max(rows, 1)) - math.log2(max(n_rows, 1))))
    return min(CONFIGS, key=distance)[1]


def _grid(n_blocks, config, device):
    """One program per block, or a persistent grid of programs_per_sm programs per SM."""
    if not config["programs_per_sm"]:
        return max(1, n_blocks)
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 2
    return max(1, min(n_blocks, config["programs_per_sm"] * sms))
{tile}'''


def model_new(program: Program) -> str:
    init = program.init_source
    init = re.sub(r"super\(\s*\w+\s*,\s*self\s*\)", "super()", init)
    init = "\n".join("    " + line if line.strip() else "" for line in init.splitlines())
    fwd_args = ", ".join(["self"] + program.forward_args)
    batched = _batch_inputs(program)
    body, call_args = [], []
    for s in program.inputs:
        value = s.ref if s.source == "input" else f"self.{s.ref}"
        if s.source == "input" and s.ref in batched:
            body.append(f"{s.ref} = _rows_of({s.ref!r}, {s.ref}, {len(s.dim_map)}, lead)")
        elif s.source == "input":
            body.append(f"_check_rank({s.ref!r}, {s.ref}, {len(s.dim_map)})")
        call_args.append(f"{s.name}={value}")
    for arg in init_args(program):  # the values this module was built with, read on every call
        call_args.append(f"{arg}=self.{program.init_attrs[arg[len('init_'):]]}")
    if batched:
        first = batched[0]
        body.insert(0, f"lead = {first}.shape[:{first}.dim() - {len(_spec(program, first).dim_map) - 1}]")
    outs = "fused(" + ", ".join(call_args) + ")"
    if batched:
        body.append(f"outs = tuple(_unrows(o, lead) for o in {outs})")
        outs = "outs"
    body.append(f"return {outs}" if program.output_is_tuple else f"return {outs}[0]")
    body_text = "\n".join("        " + line for line in body)
    return f'''{_RANK_HELPERS if batched else _RANK_CHECK}

class ModelNew(nn.Module):
{init}

    def forward({fwd_args}):
{body_text}
'''


def _spec(program: Program, ref: str) -> TensorSpec:
    return next(s for s in program.inputs if s.source == "input" and s.ref == ref)


def _batch_inputs(program: Program) -> list[str]:
    """The forward inputs that may carry extra leading dims, flattened into dim 0 at call time: those whose
    dim 0 is iteration dim 0, when that dim is independent (no reduction over it, every output starts with
    it, no other input carries it elsewhere). Empty when the program allows none; then every input must
    come with the rank it was captured at."""
    if program.stages or program.parts or program.rank == 0 or 0 in program.reduce_dims:
        return []
    if any(not o.dim_map or o.dim_map[0] != 0 for o in program.outputs):
        return []
    carriers = []
    for s in program.inputs:
        if 0 in s.dim_map[1:]:
            return []
        if s.dim_map and s.dim_map[0] == 0:
            if s.source != "input":
                return []
            carriers.append(s.ref)
    return carriers


_RANK_CHECK = '''

def _check_rank(name, t, rank):
    """The kernel was generated for inputs of one rank; another one is refused, never read out of shape."""
    if t.dim() != rank:
        raise ValueError(f"{name} has {t.dim()} dims; this kernel was generated for {rank}")
'''

_RANK_HELPERS = _RANK_CHECK + '''

def _rows_of(name, t, rank, lead):
    """Extra leading dims folded into dim 0, which the kernel treats as independent rows (a batch of
    sequences through a kernel captured on 2-D tokens x hidden, say)."""
    if t.dim() < rank:
        raise ValueError(f"{name} has {t.dim()} dims; this kernel was generated for {rank} "
                         "(extra leading dims are folded into its rows)")
    if tuple(t.shape[:t.dim() - rank + 1]) != tuple(lead):
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not share the leading dims {tuple(lead)} of the "
                         "first input")
    return t.reshape(-1, *t.shape[t.dim() - rank + 1:])


def _unrows(out, lead):
    return out.reshape(*lead, *out.shape[1:])
'''
