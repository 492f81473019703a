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


def render_card(*, name: str, repo_id: str, function: str, args: list[str], task: Any, replaces: str | None,
                layer: str | None, layer_key: str | None, verifications: list[dict[str, Any]],
                benches: list[dict[str, Any]], plots: list[str], dtypes: list[str], versions: dict[str, str],
                archs: list[str], can_compile: bool, limits: list[str], provenance: dict[str, Any],
                license: str, kind: str = "triton", build_steps: list[str] | None = None) -> str:
    """``kind`` "cuda" is a kernel-builder source repository (CUDA C++): ``build_steps`` say how to build it."""
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
    local = ("# or, from a checkout of this repository: kernel = get_local_kernel(Path(\".\"))" if kind == "triton" else
             "# or, after `kernel-builder build-and-copy` in this repository: kernel = get_local_kernel(Path(\".\"))")
    lines += ["## Install and use", "", "```python", "from pathlib import Path", "",
              "from kernels import get_kernel, get_local_kernel", "",
              f'kernel = get_kernel("{repo_id}", version=1, trust_remote_code=True)  # after upload', local,
              f"y = kernel.{function}({', '.join(args)})", "```", ""]
    if layer:
        lines += ["Swap the layer into a `transformers` model:", "", "```python",
                  "from pathlib import Path", "",
                  "from kernels import LocalLayerRepository, Mode, kernelize, use_kernel_mapping", "",
                  f'mapping = {{"{layer_key}": {{"cuda": LocalLayerRepository(repo_path=Path("."), '
                  f'layer_name="{layer}")}}}}',
                  "with use_kernel_mapping(mapping):",
                  "    model = kernelize(model, mode=Mode.INFERENCE, device=\"cuda\")", "```", "",
                  "Or with kernelwright: `kernelwright e2e --model qwen3 --kernel .`.", ""]
    lines += ["## Benchmarks", "", *_bench_section(benches, plots), "",
              "`benchmarks/benchmark.py` follows the `kernels benchmark` contract: `kernels benchmark .` on a GPU.", "",
              "## Known limits", "", *[f"- {item}" for item in limits], "",
              "## Provenance", "", *[f"- {k}: {v}" for k, v in provenance.items()], ""]
    del can_compile, dtypes
    return "\n".join(lines)
