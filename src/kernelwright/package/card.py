"""CARD.md: what the kernel does, where it was verified and measured, how to use it, and its limits.

Every number comes from a result present at packaging time; a missing measurement says so.
"""

from __future__ import annotations

from typing import Any


def _ranges(cases: list[dict[str, Any]]) -> str:
    knobs: dict[str, list[int]] = {}
    for case in cases:
        for k, v in (case.get("knobs") or {}).items():
            knobs.setdefault(k, []).append(v)
    return ", ".join(f"{k} {min(v)}–{max(v)}" for k, v in knobs.items()) or "–"


def _verification_rows(verifications: list[dict[str, Any]]) -> list[str]:
    rows = []
    for v in verifications:
        env = v.get("environment", {})
        cases = v.get("cases", [])
        dtypes = sorted({c.get("dtype") for c in cases if c.get("dtype")})
        arch = env.get("compute_capability")
        where = env.get("device_name", v.get("device"))
        if env.get("interpreter"):
            where = f"{where} (correctness only)"
        rows.append((where, f"{'sm_' + arch.replace('.', '') if arch else '–'}", ", ".join(dtypes), _ranges(cases),
                     len(cases), "accepted" if v.get("accepted") else "REJECTED"))
    merged: dict[tuple, list[int]] = {}  # the same kernel verified again (the run's own check, then packaging's)
    for *key, n, verdict in rows:
        merged.setdefault((*key, verdict), []).append(n)
    return [f"| {where} | {arch} | {dtypes} | {ranges} | "
            f"{counts[0] if len(counts) == 1 else ' + '.join(map(str, counts)) + f' ({len(counts)} runs)'} | {verdict} |"
            for (where, arch, dtypes, ranges, verdict), counts in merged.items()]


def _bench_section(benches: list[dict[str, Any]], plots: list[str]) -> list[str]:
    if not benches:
        return ["Not benchmarked: no benchmark results were present when this repository was packaged. Run",
                "`kernelwright bench TASK CANDIDATE --json` on a GPU (or `kernels benchmark .` in this repository)",
                "and repackage to record them."]
    lines = ["Method (kernelwright bench): CUDA events around each call with the device synchronised, L2 flushed",
             "between repetitions, inputs rotated among several sets, warm-up excluded, median and IQR reported;",
             "baselines are the eager PyTorch module, the native fused op where PyTorch has one and",
             "`torch.compile(dynamic=False)` compiled per shape. Ratios above 1 mean the kernel is faster.", ""]
    for b in benches:
        env = b.get("environment", {})
        meaningful = b.get("timings_meaningful", True)
        lines.append(f"**{env.get('device_name', b.get('device'))}**, torch {env.get('torch', '?')}, "
                     f"Triton {env.get('triton', '?')}, CUDA {env.get('cuda', '–')}"
                     + ("" if meaningful else " — timings NOT meaningful (interpreter)"))
        lines.append("")
        rows = b.get("rows", [])
        baselines = sorted({k for r in rows for k in (r.get("speedup") or {})})
        lines.append("| shape | dtype | kernel ms | " + " | ".join(f"× {k}" for k in baselines) + " | GB/s |")
        lines.append("|---|---|---|" + "---|" * len(baselines) + "---|")
        for r in rows:
            shape = "×".join(str(v) for v in (r.get("knobs") or {}).values())
            cand = (r.get("timings") or {}).get("candidate", {}).get("median_ms")
            ratios = " | ".join(f"{r['speedup'][k]:.2f}" if k in (r.get("speedup") or {}) else "–" for k in baselines)
            gbps = r.get("gbps")
            lines.append(f"| {shape} | {r.get('dtype')} | {cand:.4f} | {ratios} | "
                         f"{gbps:.0f} |" if cand is not None and gbps is not None else
                         f"| {shape} | {r.get('dtype')} | – | {ratios} | – |")
        lines.append("")
    lines += [f"![sweep]({p})" for p in plots]
    return lines


def _preamble(kind: str) -> list[str]:
    """Imports, the device and where the kernel loads from. Without a GPU, Triton's interpreter runs the kernel
    on the CPU; it must be switched on before anything imports Triton (transformers and kernels do)."""
    lines = ["import os", "from pathlib import Path", "", "import torch", "",
             'device = "cuda" if torch.cuda.is_available() else "cpu"', "torch.manual_seed(0)"]
    if kind == "triton":
        lines += ['if device == "cpu":  # no GPU: Triton\'s interpreter runs the kernel on the CPU (slow, correctness only)',
                  '    os.environ.setdefault("TRITON_INTERPRET", "1")',
                  "# A CUDA build of torch picks build/torch-cuda by kernels' variant rules; a CPU build has no variant",
                  "# of its own, so it loads the CUDA one directly.",
                  'repo = Path(".") if torch.version.cuda else Path("build/torch-cuda")']
    else:
        lines += ["# after `kernel-builder build-and-copy -L` in this repository; the compiled kernel needs a GPU",
                  'repo = Path(".")']
    return lines


def _tensors(example: dict[str, Any], names: list[str]) -> list[str]:
    """Example inputs and attributes: random tensors of the example's shapes and dtype, scalars as literals."""
    dtype = example["dtype"]
    specs = {**{n: {"shape": s} for n, s in example["inputs"].items()}, **example["attrs"]}
    lines = []
    for name in names:
        spec = specs[name]
        if "shape" in spec:
            lines.append(f"{name} = torch.randn({tuple(spec['shape'])!r}, dtype=torch.{dtype}, device=device)")
        else:
            lines.append(f"{name} = {spec['value']!r}")
    return lines


def _use_snippet(function: str, args: list[str], example: dict[str, Any] | None, kind: str,
                 repo_id: str) -> list[str]:
    lines = [*_preamble(kind), "", "from kernels import get_local_kernel", "",
             "kernel = get_local_kernel(repo)",
             f'# after an upload to the Hub: kernel = kernels.get_kernel("{repo_id}", version=1, trust_remote_code=True)', ""]
    if example is None:
        return lines + [f"# y = kernel.{function}({', '.join(args)})"]
    return lines + [*_tensors(example, args), f"y = kernel.{function}({', '.join(args)})",
                    "print(y.shape, y.dtype)"]


def _layer_snippet(replaces: str | None, layer: str, layer_key: str | None, example: dict[str, Any] | None,
                   kind: str) -> list[str]:
    module, _, cls = (replaces or "").rpartition(".")
    init = ", ".join(repr(v) for v in (example or {}).get("init", []))
    inputs = list((example or {}).get("inputs", {}))
    lines = [*_preamble(kind), "",
             "from kernels import (LocalLayerRepository, Mode, kernelize, replace_kernel_forward_from_hub,",
             "                     use_kernel_mapping)", f"from {module} import {cls}", "",
             f"if not hasattr({cls}, \"kernel_layer_name\"):  # transformers marks it only for a kernels version it supports",
             f"    replace_kernel_forward_from_hub({cls}, \"{layer_key}\")"]
    if example is None:
        return lines + ["# model = ...  # a transformers model that uses " + cls,
                        f'mapping = {{"{layer_key}": {{device: LocalLayerRepository(repo_path=repo, layer_name="{layer}")}}}}',
                        "with use_kernel_mapping(mapping, inherit_mapping=False):",
                        "    model = kernelize(model, mode=Mode.INFERENCE, device=device)"]
    return lines + [f"model = {cls}({init}).to(device=device, dtype=torch.{example['dtype']}).eval()",
                    *_tensors(example, inputs), "with torch.no_grad():",
                    f"    expected = model({', '.join(inputs)})", "",
                    f'mapping = {{"{layer_key}": {{device: LocalLayerRepository(repo_path=repo, layer_name="{layer}")}}}}',
                    "with use_kernel_mapping(mapping, inherit_mapping=False):",
                    "    model = kernelize(model, mode=Mode.INFERENCE, device=device)",
                    "with torch.no_grad():",
                    f"    y = model({', '.join(inputs)})",
                    'print("max abs difference from the original forward:", (y.float() - expected.float()).abs().max().item())']


def render_card(*, name: str, repo_id: str, function: str, args: list[str], task: Any, replaces: str | None,
                layer: str | None, layer_key: str | None, verifications: list[dict[str, Any]],
                benches: list[dict[str, Any]], plots: list[str], dtypes: list[str], versions: dict[str, str],
                archs: list[str], can_compile: bool, limits: list[str], provenance: dict[str, Any],
                license: str, kind: str = "triton", build_steps: list[str] | None = None,
                example: dict[str, Any] | None = None) -> str:
    """``kind`` "cuda" is a kernel-builder source repository (CUDA C++): ``build_steps`` say how to build it.
    ``example`` (dtype, input shapes, attribute shapes or values, constructor arguments) makes the card's
    snippets runnable as written."""
    gpu = [v for v in verifications if str(v.get("device", "")).startswith("cuda")]
    if kind == "triton":
        intro = (f"{task.description or task.name}. Triton kernel found and verified by kernelwright; "
                 "packaged in the Hugging Face `kernels` layout.")
    else:
        intro = (f"{task.description or task.name}. CUDA C++ kernel (a `load_inline` candidate) verified by "
                 "kernelwright; packaged as a `kernel-builder` **source** repository. Nothing "
                 "was compiled when it was packaged, so there is no `build/` directory: build it as below.")
    lines = ["---", "library_name: kernels", f"license: {license}", "tags:", "- kernel", f"- {kind}", "- kernelwright",
             "---", "", f"# {name}", "", intro, ""]
    if replaces:
        lines += [f"Replaces `{replaces}` in `transformers` models: layer `{layer}` (kernels mapping key "
                  f"`{layer_key}`).", ""]
    else:
        lines += ["Functions only: it has no layer to kernelize. The task names no `REPLACES` (the `transformers` "
                  "class this op stands for), so there is no `layers` module; call the function directly.", ""]
    lines += ["## Verified on", "",
              "| device | arch | dtypes | shapes (knob ranges) | cases | result |", "|---|---|---|---|---|---|",
              *_verification_rows(verifications), ""]
    if not gpu:
        lines += ["**Not verified on a GPU.** Correctness was checked with Triton's interpreter on CPU only; no GPU",
                  "architecture is declared. Repackage on a GPU machine to record one.", ""]
    elif kind == "triton":
        lines += [f"GPU architectures verified: {', '.join(archs)} (declared in `build.toml` and `metadata.json`).", ""]
    else:
        lines += [f"GPU architectures verified: {', '.join(archs)}, declared as `cuda-capabilities` in `build.toml`: "
                  "kernel-builder compiles for these only (and writes them to each build's `metadata.json`).", ""]
    lines += ["Verification (kernelwright verify): fuzzed shapes from the task's knobs (tiny, one-row, prime, tails,",
              "wide), several input distributions, float64 reference, dtype-aware tolerances, NaN never passes,",
              "anti-cheat checks (aliasing, input mutation, caching, determinism, partial writes).", "",
              "## Versions", "", *[f"- {k}: {v}" for k, v in versions.items()], ""]
    if build_steps:
        lines += ["## How to build", "", *build_steps, ""]
    lines += ["## Install and use", "", "From a checkout of this repository (its folder as the working directory):", "",
              "```python", *_use_snippet(function, args, example, kind, repo_id), "```", ""]
    if layer:
        lines += ["Swap the layer into a `transformers` model (here the replaced module on its own; "
                  "`kernelize` a whole model the same way):", "", "```python",
                  *_layer_snippet(replaces, layer, layer_key, example, kind), "```", "",
                  "Or with kernelwright: `kernelwright e2e --model qwen3 --kernel .`.", ""]
    lines += ["## Benchmarks", "", *_bench_section(benches, plots), "",
              "`benchmarks/benchmark.py` follows the `kernels benchmark` contract: `kernels benchmark .` on a GPU.", "",
              "## Known limits", "", *[f"- {item}" for item in limits], "",
              "## Provenance", "", *[f"- {k}: {v}" for k, v in provenance.items()], ""]
    del can_compile, dtypes
    return "\n".join(lines)
