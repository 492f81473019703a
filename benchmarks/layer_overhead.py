"""Host time per call of a packaged layer at a launch-bound shape (issue #13, item 3).

A decode step is host-bound: what a packaged layer costs the host per call decides whether kernelizing
helps it. This measures where a call's host time goes, at the decode shape (one token: every forward
input's leading dims set to 1), through each layer of the call, outermost first:

  eager            the replaced module's original forward
  layer            the kernelized forward (the packaged layer's forward bound to the module, as
                   kernels.kernelize installs it)
  ops.<fn>         the registered custom op
  impl             the op's Python implementation (_kw_op_<fn>), below the dispatcher
  fused            the generated launcher, down to kernel[grid](...)

Each is N calls timed with time.perf_counter, the GPU synchronised once at the end, no profiler; the
median of several rounds. Also: a cProfile top 20 (tottime) of 1000 layer calls, CUDA-graph capture and
replay of one layer call, and torch.compile(mode="reduce-overhead") of a tiny module calling the layer.

    python benchmarks/layer_overhead.py --kernel DIR --out OUT [--calls 2000] [--rounds 5]

DIR is a repository as `kernelwright package` writes it. Writes layer_overhead.{csv,json} and
layer_overhead_cprofile.txt under OUT and prints the table. Needs CUDA (exit 2 without).
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import csv
import datetime
import importlib.util
import io
import json
import pstats
import statistics
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@dataclass
class Subject:
    """A packaged layer made ready to call at the decode shape."""
    info: dict
    pkg: types.ModuleType      # the loaded build/torch-cuda package
    op: types.ModuleType       # its op.py: the generated kernel, fused, and the op's implementation
    eager: object              # the replaced module, original forward
    kernelized: object         # another instance of it, the packaged layer's forward bound
    inputs: list               # forward inputs
    op_args: list              # ops.<fn>'s arguments: the inputs, then the module's attributes
    fused_kwargs: dict         # what the implementation passes to fused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", type=Path, required=True, help="a repository written by `kernelwright package`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("layer_overhead measures host time around CUDA launches and needs a CUDA GPU; none is visible here.")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    subject = load(args.kernel, "cuda")
    rows = host_rows(subject, args.calls, args.rounds)
    profile = cprofile_top(subject, args.out / "layer_overhead_cprofile.txt")
    graph = cuda_graph(subject, args.calls)
    compiled = reduce_overhead(subject)
    report = {"environment": environment(), "kernel": str(args.kernel), "layer": subject.info.get("layer"),
              "function": subject.info["function"], "decode_inputs": [list(x.shape) for x in subject.inputs],
              "dtype": str(subject.inputs[0].dtype), "calls": args.calls, "rounds": args.rounds, "rows": rows,
              "cprofile_top20": profile, "cuda_graph": graph,
              "compile_reduce_overhead": compiled}
    (args.out / "layer_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    with open(args.out / "layer_overhead.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    show(report)
    return 0


# -- loading -------------------------------------------------------------------------------------------


def load(repo: Path, device: str) -> Subject:
    import torch

    from kernelwright.package.kernelize import read_package
    from kernelwright.package.replaced import import_class

    info = read_package(repo)
    if info.get("kind") == "cuda" or not info.get("layer"):
        raise SystemExit(f"{repo} holds no packaged Triton layer (a CUDA C++ or functions-only repository).")
    pkg = _import_variant(repo / "build" / "torch-cuda", info["id"])
    cases, op_attrs = _bench_cases(repo / "benchmarks" / "benchmark.py")
    case = cases[0]
    dtype = getattr(torch, info["dtypes"][0])
    cls = import_class(info["replaces"])
    eager, kernelized = (_instance(cls, case, device, dtype) for _ in range(2))
    layer_cls = getattr(pkg.layers, info["layer"])
    kernelized.forward = types.MethodType(layer_cls.forward, kernelized)  # what kernels.kernelize sets
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn([1] * (len(shape) - 1) + shape[-1:], generator=g).to(device=device, dtype=dtype)
              for shape in case["inputs"]]
    op_args = [*inputs, *[getattr(kernelized, a) for a in op_attrs]]
    return Subject(info, pkg, pkg.op, eager, kernelized, inputs, op_args, _fused_kwargs(pkg.op, info, op_args))


def _import_variant(variant: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, variant / "__init__.py",
                                                  submodule_search_locations=[str(variant)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its relative imports resolve through sys.modules
    spec.loader.exec_module(module)
    return module


def _bench_cases(path: Path) -> tuple[list[dict], list[str]]:
    """CASES and OP_ATTRS of the repository's generated benchmark: the benchmark shapes with the module's
    constructor arguments and attribute shapes, and the attributes the op takes after the inputs."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("CASES", "OP_ATTRS"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found["CASES"], found["OP_ATTRS"]


def _instance(cls, case: dict, device: str, dtype):
    """The replaced module built with the case's constructor arguments, its tensor attributes near 1 (as a
    trained norm's are)."""
    import torch

    module = cls(*case["init"]).to(device=device, dtype=dtype).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, spec in case["attrs"].items():
            if "shape" in spec:
                getattr(module, name).copy_(1 + 0.1 * torch.randn(spec["shape"], generator=g))
    return module


def _fused_kwargs(op: types.ModuleType, info: dict, op_args: list) -> dict:
    """The keyword arguments the op's implementation passes to fused, caught on one call."""
    impl = getattr(op, f"_kw_op_{info['function']}")
    seen = {}
    original = op.fused

    def record(**kwargs):
        seen.update(kwargs)
        return original(**kwargs)

    op.fused = record
    try:
        impl(*op_args)
    finally:
        op.fused = original
    return seen


# -- measurements --------------------------------------------------------------------------------------


def host_us(fn, calls: int, rounds: int) -> dict:
    """µs of host time per call: ``calls`` calls, then one synchronise; the median and the best round."""
    import torch

    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        per_call.append((time.perf_counter() - start) / calls * 1e6)
    return {"us_median": round(statistics.median(per_call), 2), "us_min": round(min(per_call), 2)}


def host_rows(s: Subject, calls: int, rounds: int) -> list[dict]:
    import torch

    fn = s.info["function"]
    op_fn = getattr(s.pkg.ops, fn)
    impl = getattr(s.op, f"_kw_op_{fn}")
    x = s.inputs
    measured = [("eager", "the replaced module's original forward", lambda: s.eager(*x)),
                ("layer", "the kernelized forward", lambda: s.kernelized(*x)),
                (f"ops.{fn}", "the custom op through the dispatcher", lambda: op_fn(*s.op_args)),
                ("impl", f"_kw_op_{fn}: the op's Python body", lambda: impl(*s.op_args)),
                ("fused", "the generated launcher", lambda: s.op.fused(**s.fused_kwargs))]
    with torch.no_grad():
        rows = [{"call": name, "what": what, **host_us(call, calls, rounds)} for name, what, call in measured]
    eager = rows[0]["us_median"]
    for row in rows:
        row["x_eager"] = round(row["us_median"] / eager, 2)
    return rows


def cprofile_top(s: Subject, path: Path, calls: int = 1000) -> list[dict]:
    import torch

    profiler = cProfile.Profile()
    with torch.no_grad():
        profiler.enable()
        for _ in range(calls):
            s.kernelized(*s.inputs)
        profiler.disable()
    torch.cuda.synchronize()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
    stats.print_stats(20)
    path.write_text(text.getvalue())
    top = []
    for (file, line, name), (_, ncalls, tottime, cumtime, _) in sorted(
            stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:20]:
        top.append({"function": f"{Path(file).name}:{line}({name})", "ncalls": ncalls,
                    "tottime_us_per_layer_call": round(tottime / calls * 1e6, 2),
                    "cumtime_us_per_layer_call": round(cumtime / calls * 1e6, 2)})
    return top


def cuda_graph(s: Subject, calls: int) -> dict:
    """Capture one layer call in a CUDA graph, replay it, and compare with the same call uncaptured (the same
    kernel: bitwise) and with the eager forward."""
    import torch

    try:
        static = [x.clone() for x in s.inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(3):  # compiles and caches before capture, as torch's graph docs ask
                s.kernelized(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            out = s.kernelized(*static)
        graph.replay()
        torch.cuda.synchronize()
        with torch.no_grad():
            layer, eager = s.kernelized(*static), s.eager(*static)
        timed = host_us(graph.replay, calls, 3)
        return {"works": True, "same_as_layer": torch.equal(out, layer),
                "max_abs_error_vs_eager": (out.float() - eager.float()).abs().max().item(),
                "us_per_replay": timed["us_median"]}
    except Exception as exc:  # the question is whether it works: a failure is the answer, recorded
        return {"works": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def reduce_overhead(s: Subject) -> dict:
    """torch.compile(mode="reduce-overhead") of a tiny module calling the kernelized layer, compared with the
    same module uncompiled (the same kernel: bitwise) and with the eager forward."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, *xs):
            return self.layer(*xs) * 2

    try:
        compiled = torch.compile(Tiny(s.kernelized), mode="reduce-overhead")
        with torch.no_grad():
            for _ in range(3):  # reduce-overhead records its CUDA graph after warm-up calls
                got = compiled(*s.inputs).clone()
            layer, eager = Tiny(s.kernelized)(*s.inputs), s.eager(*s.inputs) * 2
        torch.cuda.synchronize()
        with torch.no_grad():
            timed = host_us(lambda: compiled(*s.inputs), 500, 3)
        return {"compiles": True, "same_as_layer": torch.equal(got, layer),
                "max_abs_error_vs_eager": (got.float() - eager.float()).abs().max().item(),
                "us_per_call": timed["us_median"]}
    except Exception as exc:
        return {"compiles": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


# -- report --------------------------------------------------------------------------------------------


def environment() -> dict:
    import torch
    import triton

    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "triton": triton.__version__, "python": sys.version.split()[0]}


def show(report: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    env = report["environment"]
    table = Table(title=escape(f"host µs per call, {report['layer']} at {report['decode_inputs']} "
                               f"{report['dtype']} on {env['device']} (torch {env['torch']}, triton {env['triton']})"))
    for column in ("call", "µs median", "µs best", "× eager", "what"):
        table.add_column(column, justify="left" if column in ("call", "what") else "right")
    for row in report["rows"]:
        table.add_row(escape(row["call"]), f"{row['us_median']:.1f}", f"{row['us_min']:.1f}",
                      f"{row['x_eager']:.2f}", escape(row["what"]))
    console = Console(width=160)
    console.print(table)
    console.print(escape(f"CUDA graph of one layer call: {report['cuda_graph']}"))
    console.print(escape(f"torch.compile(reduce-overhead) of a module calling the layer: "
                         f"{report['compile_reduce_overhead']}"))
    console.print("cProfile, 1000 layer calls, top 10 by tottime (µs per layer call):")
    for entry in report["cprofile_top20"][:10]:
        console.print(escape(f"  {entry['tottime_us_per_layer_call']:8.2f}  {entry['function']}"))


if __name__ == "__main__":
    sys.exit(main())
