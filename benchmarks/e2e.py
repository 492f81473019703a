"""GPU "done when" for packaging: package a verified RMSNorm kernel, load it through `kernels`, kernelize a
Qwen3-shaped model and record the end-to-end table.

    python benchmarks/e2e.py --out OUT [--candidate examples/rmsnorm.py | RUN_DIR] [--model qwen3]
                             [--size 8b-shape] [--layers N] [--no-compile]

Steps (each result lands in OUT, so a timeout keeps what finished):
  1. `kernelwright package` the candidate (verified on the GPU)            -> OUT/kernel/
  2. the repository's own tests on the GPU (get_local_kernel, kernelize)    -> OUT/kernel_tests.log
  3. `kernels.get_local_kernel(OUT/kernel)`: which variant kernels chose    -> OUT/load.json
  4. `kernelwright e2e` on the model                                        -> OUT/e2e/e2e.{json,csv,png}
Prints a Markdown table for benchmarks/RESULTS.md last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")) / "e2e")
    parser.add_argument("--candidate", type=Path, default=ROOT / "examples" / "rmsnorm.py",
                        help="a candidate file or an optimize run directory with best.py")
    parser.add_argument("--task", default="rmsnorm")
    parser.add_argument("--model", default="qwen3", choices=["llama", "qwen3"])
    parser.add_argument("--size", default="8b-shape", choices=["small", "8b-shape"])
    parser.add_argument("--layers", type=int, default=None, help="fewer decoder layers (shorter compile)")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    import torch

    from kernelwright.package import package
    from kernelwright.package.e2e import run_e2e

    args.out.mkdir(parents=True, exist_ok=True)
    repo = args.out / "kernel"
    if repo.exists():
        import shutil

        shutil.rmtree(repo)
    result = package(args.candidate, name="rmsnorm-kernelwright", out=repo, task=args.task, device="cuda")
    print(f"packaged {result.path} (id {result.kernel_id}), verified on "
          f"{result.verification['environment'].get('device_name')}", flush=True)

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           cwd=repo.resolve(), capture_output=True, text=True)
    (args.out / "kernel_tests.log").write_text(tests.stdout + tests.stderr)
    print(f"repository tests on GPU: {'passed' if tests.returncode == 0 else 'FAILED'} "
          f"({tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else 'no output'})", flush=True)

    import kernels
    from kernels import get_local_kernel, get_loaded_kernels

    module = get_local_kernel(repo)
    loaded = [k for k in get_loaded_kernels() if k.module is module]
    load = {"kernels": kernels.__version__, "module": module.__name__, "functions": module.__all__,
            "variant": Path(module.__file__).parent.name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(), "metadata_id": loaded[0].metadata.id if loaded else None}
    (args.out / "load.json").write_text(json.dumps(load, indent=2) + "\n")
    print(f"kernels.get_local_kernel chose {load['variant']} -> module {load['module']}", flush=True)

    e2e = run_e2e(args.model, args.size, kernel=repo, device="cuda", out=args.out / "e2e",
                  compile=not args.no_compile, layers=args.layers,
                  progress=lambda line: print(line, flush=True))
    print(markdown(e2e, load, tests.returncode == 0))
    return 0 if tests.returncode == 0 and e2e.logits_check and e2e.logits_check["passed"] else 1


def markdown(e2e, load, tests_ok: bool) -> str:
    env = e2e.environment
    eager = {r["phase"]: r["median_ms"] for r in e2e.rows if r["variant"] == "eager"}
    lines = [f"### e2e: {e2e.model} {e2e.size} ({e2e.config['num_hidden_layers']} layers), {e2e.dtype}, "
             f"batch {e2e.prompt[0]} × {e2e.prompt[1]} tokens",
             f"{env.get('device_name')} sm_{str(env.get('compute_capability', '')).replace('.', '')}, torch "
             f"{env.get('torch')}, CUDA {env.get('cuda')}, Triton {env.get('triton')}, kernels {load['kernels']}; "
             f"variant {load['variant']}; repository tests {'passed' if tests_ok else 'FAILED'}", "",
             "| variant | phase | median ms | IQR ms | × eager | RMSNorm share |", "|---|---|---|---|---|---|"]
    for r in e2e.rows:
        share = e2e.shares.get(r["variant"], {}).get(r["phase"])
        lines.append(f"| {r['variant']} | {r['phase']} | {r['median_ms']:.3f} | {r['q75_ms'] - r['q25_ms']:.3f} | "
                     f"{eager[r['phase']] / r['median_ms']:.3f} | {f'{100 * share:.1f}%' if share is not None else '–'} |")
    lines.append("")
    for phase, a in e2e.amdahl.items():
        lines.append(f"- {phase}: RMSNorm {100 * a['share_eager']:.1f}% of eager GPU time; op speedup "
                     f"{a['op_speedup']:.2f}× → Amdahl {a['predicted_speedup']:.3f}×, measured "
                     f"{a['measured_speedup']:.3f}× (ceiling {a['ceiling']:.3f}×)")
    check = e2e.logits_check or {}
    lines.append(f"- logits vs eager: rel L2 {check.get('rel_l2', float('nan')):.2e} (tolerance "
                 f"{check.get('tolerance')}), argmax agreement {check.get('argmax_agreement')}, "
                 f"{check.get('kernel_calls')} kernel calls per prefill, swapped {e2e.kernelize['swapped']} modules")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
