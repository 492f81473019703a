"""``kernelwright package``: verify a candidate, then write a Hugging Face ``kernels`` repository.

Order matters: every check that can refuse (name, output directory, candidate syntax, task, replaced
class, attribute mapping, the CUDA extension's mapping, verification) runs before anything is written; the
repository is assembled in a temporary sibling directory, validated with ``kernels``' own parsers, and only
then renamed into place.

A Triton candidate becomes a loadable ``torch-noarch`` repository (``build/torch-cuda/``). A CUDA C++
(``load_inline``) candidate becomes a kernel-builder *source* repository (``[torch]`` + ``[kernel.NAME]``);
nothing is compiled here, so it has no ``build/`` until kernel-builder builds it.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.errors import KernelwrightError, UsageError
from kernelwright.hardware import resolve_device
from kernelwright.package import card, cuda_candidate, cuda_repo, generate, repo_files
from kernelwright.package.candidate import read_candidate
from kernelwright.package.evidence import gather
from kernelwright.package.replaced import (BuiltIn, Replaced, built_in_values, describe_replaced, describe_task_model,
                                           map_attributes)
from kernelwright.sandbox.runner import Limits

# kernels' KernelName rule (kernels._rust.KernelName): lowercase letters, digits and dashes.
NAME_RE = re.compile(r"^[a-z][-a-z0-9]*[a-z0-9]$")
LICENSE = "apache-2.0"
CPU_TEST_CASES = 4  # interpreter cases kept in the generated tests: the smallest verified shapes


class CandidateRejected(KernelwrightError):
    """The candidate failed verification; nothing was written (exit 1)."""

    def __init__(self, result):
        self.result = result
        reasons = sorted({f["check"] for f in result.failures})
        super().__init__(f"The candidate was rejected by verification ({', '.join(reasons)}); nothing was packaged.")


@dataclass
class PackageResult:
    path: Path
    name: str
    module: str
    kernel_id: str | None  # None for a CUDA source repository: kernel-builder names the ops at build time
    function: str
    layer: str | None
    layer_key: str | None
    verification: dict[str, Any]
    files: list[str]
    kind: str = "triton"  # "triton" (built, loadable) or "cuda" (kernel-builder source, not built)
    notes: list[str] = field(default_factory=list)  # what the user must know (e.g. how to build)

    def as_json(self) -> dict[str, Any]:
        return {"schema": "kernelwright.package/1", "path": str(self.path), "name": self.name, "module": self.module,
                "id": self.kernel_id, "function": self.function, "layer": self.layer, "layer_key": self.layer_key,
                "verified_on": self.verification.get("environment", {}).get("device_name"), "files": self.files,
                "kind": self.kind, "notes": self.notes}


def check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"Kernel name '{name}' is not allowed; use lowercase letters, digits and dashes, starting "
                         "with a letter and not ending with a dash (e.g. `rmsnorm-triton`).")


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"Output {out} already exists and is not an empty directory; choose a new --out.")


def _kernels_module():
    try:
        import kernels  # noqa: F401
        from kernels import _rust
    except ImportError:
        raise UsageError("Packaging needs the `kernels` package; install the extra with "
                         "`pip install 'kernelwright[package]'`.") from None
    return _rust


def package(source: Path, *, name: str, out: Path, task: str | None = None, device: str = "auto",
            limits: Limits = Limits(), version: int = 1) -> PackageResult:
    """Verify ``source`` (a candidate file or a run directory with best.py) and write the repository to
    ``out``. Raises UsageError for bad input and CandidateRejected for a candidate that fails verification."""
    from kernelwright.tasks import load_task
    from kernelwright.verify import verify

    check_name(name)
    out = Path(out)
    check_out(out)
    rust = _kernels_module()
    evidence = gather(Path(source))
    task_ref = task or evidence.task_hint or _task_from_stem(evidence.candidate)
    task_obj = load_task(task_ref)
    candidate = read_candidate(evidence.candidate)
    extension = cuda_candidate.read_extension(candidate) if candidate.kind == "cuda" else None
    shapes = _case_shapes(task_obj)
    init_values = dict(zip(candidate.init_params, shapes["init"]))
    # without REPLACES there is no layer: the task's own Model stands in for attribute names and the reference,
    # and the repository ships the function only
    functions_only = not task_obj.replaces
    if functions_only and candidate.kind == "cuda":
        raise UsageError(f"Task {task_obj.name} has no REPLACES, and a CUDA C++ candidate is packaged only as a layer; "
                         "add `REPLACES = \"transformers.models....Class\"` to the task file.")
    replaced = (describe_task_model(task_obj, shapes["init"]) if functions_only
                else describe_replaced(task_obj.replaces, shapes["init"]))
    mapping = map_attributes(candidate, replaced, init_values)
    built_in = built_in_values(candidate, replaced, init_values, mapping)
    op_name = re.sub(r"\W", "_", task_obj.name.lower())
    spec = generate.op_spec(candidate, op_name, init_values, shapes["outputs"])
    if extension is not None:
        call = cuda_candidate.forward_call(candidate, extension)
        if resolve_device(device) == "cpu":
            raise UsageError("A CUDA C++ candidate is verified by running it on a GPU, and this run is on the CPU; run "
                             "`kernelwright package` on a machine with an NVIDIA GPU (--device cuda).")

    result = verify(task_obj.path, evidence.candidate, device=device, limits=limits)
    if not result.accepted:
        raise CandidateRejected(result)
    verification = result.as_json()

    if extension is not None:
        files = _render_cuda(name=name, version=version, task_obj=task_obj, candidate=candidate, replaced=replaced,
                             mapping=mapping, spec=spec, verification=verification, evidence=evidence,
                             ext=extension, call=call, built_in=built_in)
        return _write_source(out, files, evidence.plots, name=name, spec=spec, replaced=replaced,
                             verification=verification, op=call.function)
    files = _render(name=name, version=version, task_obj=task_obj, candidate=candidate, replaced=replaced,
                    mapping=mapping, spec=spec, verification=verification, evidence=evidence, built_in=built_in,
                    functions_only=functions_only)
    return _write(out, files, evidence.plots, rust, name=name, spec=spec, replaced=None if functions_only else replaced,
                  verification=verification)


def _task_from_stem(candidate: Path) -> str:
    from kernelwright.tasks import bundled_names

    if candidate.stem in bundled_names():
        return candidate.stem
    raise UsageError(f"Cannot tell which task {candidate.name} solves; pass --task (a task file or a bundled name).")


def _case_shapes(task_obj, knobs: dict[str, int] | None = None) -> dict[str, Any]:
    """Input shapes, init inputs and output count at ``knobs`` (tiny by default), built on the meta device
    so that benchmark-sized shapes allocate nothing."""
    import torch

    from kernelwright.tasks.knobs import tiny_shape
    from kernelwright.tasks.task import instantiate

    module = task_obj.load()
    with torch.device("meta"):
        inputs, init = instantiate(module, knobs or tiny_shape(task_obj))
    bad = [type(x).__name__ if not isinstance(x, torch.Tensor) else str(x.dtype) for x in inputs
           if not (isinstance(x, torch.Tensor) and x.is_floating_point())]
    if bad:
        raise UsageError(f"Task {task_obj.name} has forward inputs of type {', '.join(bad)}; packaging handles "
                         "floating-point tensor inputs only.")
    outputs = 1
    if knobs is None:
        with torch.device("meta"):
            result = module.Model(*init)(*inputs)
        outputs = len(result) if isinstance(result, (tuple, list)) else 1
    return {"inputs": [list(x.shape) for x in inputs], "init": list(init), "outputs": outputs}


def _cases(task_obj, replaced: Replaced, mapping: dict[str, str], spec, verification) -> list[dict[str, Any]]:
    import torch

    knob_sets: list[tuple[dict[str, int], bool]] = []
    verified = sorted({json.dumps(c["knobs"], sort_keys=True) for c in verification["cases"]},
                      key=lambda k: sum(json.loads(k).values()))
    knob_sets += [(json.loads(k), False) for k in verified[:CPU_TEST_CASES]]
    knob_sets += [(dict(s), True) for s in task_obj.bench_shapes]
    cases = []
    for knobs, gpu_only in knob_sets:
        shapes = _case_shapes(task_obj, {**task_obj.knobs, **knobs})
        with torch.device("meta"):
            instance = replaced.cls(*shapes["init"])
        attrs = {}
        for a in spec.attrs:
            value = getattr(instance, mapping[a])
            attrs[mapping[a]] = {"shape": list(value.shape)} if isinstance(value, torch.Tensor) else {"value": value}
        cases.append({"knobs": knobs, "inputs": shapes["inputs"], "init": shapes["init"], "attrs": attrs,
                      "gpu_only": gpu_only})
    return cases


EXAMPLE_ELEMENTS = 1 << 16  # the card's example runs on a CPU through Triton's interpreter: keep it small


def _example(task_obj, replaced: Replaced, mapping: dict[str, str], spec, dtype: str) -> dict[str, Any]:
    """The card's example call: the task's smallest benchmark shape with the leading knobs (rows, batch) halved
    until it fits EXAMPLE_ELEMENTS, so the trailing dims keep a realistic width."""
    import math

    import torch

    from kernelwright.tasks.knobs import _legal

    knobs = {**task_obj.knobs, **min(task_obj.bench_shapes, key=lambda s: math.prod(s.values()))}
    for knob in knobs:
        while math.prod(knobs.values()) > EXAMPLE_ELEMENTS and _legal(task_obj, knob, knobs[knob] // 2) < knobs[knob]:
            knobs[knob] = _legal(task_obj, knob, knobs[knob] // 2)
    shapes = _case_shapes(task_obj, knobs)
    with torch.device("meta"):
        instance = replaced.cls(*shapes["init"])
    attrs = {}
    for a, arg in zip(spec.attrs, spec.args[len(spec.inputs):]):  # keyed by the function's argument names
        value = getattr(instance, mapping[a])
        attrs[arg] = {"shape": list(value.shape)} if isinstance(value, torch.Tensor) else {"value": value}
    return {"dtype": dtype, "inputs": dict(zip(spec.inputs, shapes["inputs"])), "attrs": attrs,
            "init": shapes["init"]}


def _tolerance(verification) -> dict[str, list[float]]:
    tol: dict[str, list[float]] = {}
    for case in verification["cases"]:
        for out in case.get("outputs", []):
            t = out.get("tolerance") or {}
            cur = tol.setdefault(case["dtype"], [0.0, 0.0])
            cur[0], cur[1] = max(cur[0], t.get("atol", 0.0)), max(cur[1], t.get("rtol", 0.0))
    return tol


def _render(*, name, version, task_obj, candidate, replaced: Replaced, mapping, spec, verification,
            evidence, built_in: BuiltIn, functions_only: bool = False) -> dict[str, str]:
    module = name.replace("-", "_")
    unique = secrets.token_hex(4)[:7]  # random material: two packagings never share an ops namespace
    kernel_id = f"_{module}_cuda_{unique}"
    verifications = [verification] + [v for v in evidence.verifications if v.get("accepted")]
    dtypes = sorted({c["dtype"] for c in verification["cases"]}, key=task_obj.dtype_names.index)
    archs = sorted({v["environment"]["compute_capability"] for v in verifications
                    if v.get("environment", {}).get("compute_capability")})
    fake = generate.fake_call(replaced, spec, mapping, built_in.guards)
    can_compile = fake is not None
    sources = {
        "__init__.py": generate.init_source(name, task_obj.description or task_obj.name, spec, not functions_only,
                                            can_compile),
        "op.py": generate.op_source(candidate, spec, fake=fake),
        "_support.py": generate.support_source(dtypes),
    }
    if not functions_only:
        sources["layers.py"] = generate.layer_source(replaced, spec, mapping, can_compile=can_compile,
                                                     built_in=built_in.guards)
    if can_compile:
        sources["_reference.py"] = generate.reference_module(replaced)
    files: dict[str, str] = {}
    for rel, text in sources.items():
        files[f"torch-ext/{module}/{rel}"] = text
        files[f"build/torch-cuda/{rel}"] = text
    files["build/torch-cuda/_ops.py"] = generate.ops_source(module, unique)
    metadata = {"name": name, "id": kernel_id, "version": version, "license": LICENSE, "python-depends": [],
                "backend": {"type": "cuda", **({"archs": archs} if archs else {})}}
    files["build/torch-cuda/metadata.json"] = json.dumps(metadata, indent=2) + "\n"
    files["build.toml"] = _build_toml(name, version, archs)
    op_attrs = [mapping[a] for a in spec.attrs]
    cases = _cases(task_obj, replaced, mapping, spec, verification)
    files["tests/__init__.py"] = ""
    # Its own pytest root: run from inside another project, pytest would otherwise adopt that project's config.
    files["pytest.ini"] = "[pytest]\ntestpaths = tests\n"
    files[f"tests/test_{module}.py"] = repo_files.tests_source(
        replaces=None if functions_only else replaced.qualname, layer=replaced.class_name, layer_key=replaced.layer_key,
        function=spec.op_name, op_attrs=op_attrs, dtypes=dtypes, tolerance=_tolerance(verification), cases=cases)
    if functions_only:  # the generated tests' reference: the task file itself
        files["tests/_task.py"] = task_obj.source
    gpu_cases = [c for c in cases if c["gpu_only"]] or cases
    files["benchmarks/benchmark.py"] = repo_files.benchmark_source(
        function=spec.op_name, op_attrs=op_attrs, dtype=dtypes[0], cases=gpu_cases,
        reference=replaced.reference_source, class_name=f"{module.title().replace('_', '')}Benchmark")
    env = verification["environment"]
    versions = {"torch": env.get("torch"), "Triton": env.get("triton"), "CUDA": env.get("cuda", "– (verified on CPU)"),
                "python": env.get("python"), "kernelwright": env.get("kernelwright")}
    limits = (_function_limits(dtypes, verification, can_compile) if functions_only else
              _limits(task_obj, dtypes, verification, replaced, can_compile) + _built_in_limits(built_in))
    provenance = {"task": f"{task_obj.name} ({task_obj.path.name})", "candidate": candidate.path.name,
                  "run directory": str(evidence.run_dir) if evidence.run_dir else "none (a single candidate file)",
                  "ops namespace": f"torch.ops.{kernel_id} on CUDA builds of torch", **{
                      f"note {i + 1}": n for i, n in enumerate(evidence.notes)}}
    layer = {"replaces": None, "layer": None, "layer_key": None} if functions_only else {
        "replaces": replaced.qualname, "layer": replaced.class_name, "layer_key": replaced.layer_key}
    files["CARD.md"] = card.render_card(
        name=name, repo_id=f"<your-org>/{name}", function=spec.op_name, args=spec.args, task=task_obj, **layer,
        verifications=verifications, benches=evidence.benches, plots=[f"media/{p.name}" for p in evidence.plots],
        dtypes=dtypes, versions=versions, archs=archs, can_compile=can_compile, limits=limits,
        provenance=provenance, license=LICENSE, example=_example(task_obj, replaced, mapping, spec, dtypes[0]))
    files["kernelwright.json"] = json.dumps({
        "schema": "kernelwright.package/1", "name": name, "id": kernel_id, "task": task_obj.name, **layer,
        "functions_only": functions_only, "function": spec.op_name, "arguments": spec.args, "attribute_map": mapping, "dtypes": dtypes,
        "archs": archs, "can_torch_compile": can_compile, "verification": {
            k: verification[k] for k in ("accepted", "device", "environment", "checks", "seconds")}}, indent=2) + "\n"
    return files


def _limits(task_obj, dtypes, verification, replaced: Replaced, can_compile: bool) -> list[str]:
    ranges = card._ranges(verification["cases"])
    limits = [f"dtypes: {', '.join(dtypes)} only; other dtypes, and inputs whose floating dtypes differ (e.g. a float32 "
              "weight with bfloat16 activations), go back to the original forward with a logged reason.",
              f"shapes verified: {ranges} (plus the task's benchmark shapes on GPU when benchmarked); larger "
              "shapes run but were not verified.",
              "devices: CUDA (Triton); CPU tensors go back to the original forward unless TRITON_INTERPRET=1.",
              "no backward: the layer declares has_backward = False, so kernelize in training mode keeps the "
              "original forward, and a call with autograd recording falls back.",
              "non-contiguous inputs are accepted only as far as the candidate's own launcher handles them "
              "(verified with contiguous inputs)."]
    if not can_compile:
        limits.append(f"torch.compile: no fake implementation ({replaced.reference_note}); the layer declares "
                      "can_torch_compile = False.")
    else:
        limits.append("torch.compile: the op has a fake implementation copied from the replaced module's forward.")
    del task_obj
    return limits


def _function_limits(dtypes, verification, can_compile: bool) -> list[str]:
    return [f"dtypes: {', '.join(dtypes)} only (verified); the function has no fallback for others.",
            f"shapes verified: {card._ranges(verification['cases'])} (plus the task's benchmark shapes on GPU when "
            "benchmarked); larger shapes run but were not verified.",
            "no layer: the task names no REPLACES, so nothing here can be kernelized into a model; call the function.",
            "devices: CUDA (Triton); on the CPU only under TRITON_INTERPRET=1.",
            "no backward." + ("" if can_compile else " torch.compile: no fake implementation.")]


def _built_in_limits(built_in: BuiltIn) -> list[str]:
    lines = [f"`{attr}` = {value!r} is built into the kernel (the value it was verified with); a module with "
             "another value goes back to the original forward with a logged reason."
             for attr, value in built_in.guards.items()]
    lines += [f"the candidate's `{name}` = {value!r} is built into the kernel and no attribute of the replaced "
              "class holds that value, so a module configured otherwise is not detected."
              for name, value in built_in.unmatched.items()]
    return lines


def _capability_key(arch: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", arch))


def _render_cuda(*, name, version, task_obj, candidate, replaced: Replaced, mapping, spec, verification, evidence,
                 ext: cuda_candidate.Extension, call: cuda_candidate.ForwardCall,
                 built_in: BuiltIn) -> dict[str, str]:
    """A kernel-builder source repository. cuda-capabilities are the compute capabilities of the GPUs the
    candidate was accepted on: this verification plus accepted ones recorded in the run directory."""
    module = name.replace("-", "_")
    verifications = [verification] + [v for v in evidence.verifications if v.get("accepted")]
    dtypes = sorted({c["dtype"] for c in verification["cases"]}, key=task_obj.dtype_names.index)
    archs = sorted({v["environment"]["compute_capability"] for v in verifications
                    if v.get("environment", {}).get("compute_capability")}, key=_capability_key)
    constants = {n: ast.Constant(a.constant) for n, a in candidate.attributes.items() if a.kind == "constant"}
    arg_of = dict(zip(spec.attrs, spec.args[len(spec.inputs):]))
    function_call = cuda_repo.rewrite_call(call.node, ext.var, {}, {
        **constants, **{a: ast.Name(arg_of[a], ast.Load()) for a in spec.attrs}})
    layer_inputs = dict(zip(spec.inputs, [p.name for p in replaced.forward_params[:len(spec.inputs)]]))
    layer_call = cuda_repo.rewrite_call(call.node, ext.var, layer_inputs, {
        **constants, **{a: ast.Attribute(ast.Name("self", ast.Load()), mapping[a], ast.Load()) for a in spec.attrs}})
    package_dir = f"torch-ext/{module}"
    files = {
        cuda_repo.kernel_source_path(module): cuda_repo.cu_source(ext, candidate.path.name),
        "torch-ext/torch_binding.h": cuda_repo.binding_header(ext),
        "torch-ext/torch_binding.cpp": cuda_repo.binding_source(ext),
        f"{package_dir}/__init__.py": cuda_repo.init_source(
            name=name, description=task_obj.description or task_obj.name, function=spec.op_name, args=spec.args,
            call=function_call, inputs=spec.inputs, attrs=spec.attrs, exported=list(ext.signatures.values())),
        f"{package_dir}/layers.py": generate.layer_source(replaced, spec, mapping, can_compile=False,
                                                          call=layer_call, built_in=built_in.guards),
        f"{package_dir}/_support.py": generate.support_source(dtypes, backend="cuda"),
        "build.toml": cuda_repo.build_toml(name=name, version=version, license=LICENSE, module=module, archs=archs,
                                           cuda_flags=ext.cuda_flags, repo_id=None),
        "flake.nix": cuda_repo.flake_nix(name),
        ".gitignore": "/build/\n/result\n",
        "tests/__init__.py": "",
        "pytest.ini": "[pytest]\ntestpaths = tests\n",
    }
    op_attrs = [mapping[a] for a in spec.attrs]
    cases = _cases(task_obj, replaced, mapping, spec, verification)
    files[f"tests/test_{module}.py"] = repo_files.tests_source(
        replaces=replaced.qualname, layer=replaced.class_name, layer_key=replaced.layer_key, function=spec.op_name,
        op_attrs=op_attrs, dtypes=dtypes, tolerance=_tolerance(verification), cases=cases, backend="cuda")
    gpu_cases = [c for c in cases if c["gpu_only"]] or cases
    files["benchmarks/benchmark.py"] = repo_files.benchmark_source(
        function=spec.op_name, op_attrs=op_attrs, dtype=dtypes[0], cases=gpu_cases,
        reference=replaced.reference_source, class_name=f"{module.title().replace('_', '')}Benchmark")
    env = verification["environment"]
    versions = {"torch": env.get("torch"), "CUDA (verification)": env.get("cuda"), "GPU driver": env.get("driver"),
                "python": env.get("python"), "kernelwright": env.get("kernelwright"),
                "build": "not built: kernel-builder picks the torch and CUDA versions of each build variant"}
    limits = _cuda_limits(dtypes, verification, archs) + _built_in_limits(built_in)
    provenance = {"task": f"{task_obj.name} ({task_obj.path.name})", "candidate": candidate.path.name,
                  "run directory": str(evidence.run_dir) if evidence.run_dir else "none (a single candidate file)",
                  "extension": f"load_inline({ext.name!r}), line {ext.line}",
                  "ops": "; ".join(f"`{s.schema}`" for s in ext.signatures.values()),
                  "ops namespace": f"torch.ops._{module}_cuda_<revision>, named by kernel-builder at build time",
                  **{f"note {i + 1}": n for i, n in enumerate(evidence.notes)}}
    files["CARD.md"] = card.render_card(
        name=name, repo_id=f"<your-org>/{name}", function=spec.op_name, args=spec.args, task=task_obj,
        replaces=replaced.qualname, layer=replaced.class_name, layer_key=replaced.layer_key,
        verifications=verifications, benches=evidence.benches, plots=[f"media/{p.name}" for p in evidence.plots],
        dtypes=dtypes, versions=versions, archs=archs, can_compile=False, limits=limits, provenance=provenance,
        license=LICENSE, kind="cuda", build_steps=cuda_repo.build_steps(name, ext.notes),
        example=_example(task_obj, replaced, mapping, spec, dtypes[0]))
    files["kernelwright.json"] = json.dumps({
        "schema": "kernelwright.package/1", "kind": "cuda", "built": False, "name": name, "id": None,
        "task": task_obj.name, "replaces": replaced.qualname, "layer": replaced.class_name,
        "layer_key": replaced.layer_key, "function": call.function, "python_function": spec.op_name,
        "arguments": spec.args, "ops": {n: s.schema for n, s in ext.signatures.items()}, "attribute_map": mapping,
        "dtypes": dtypes, "archs": archs, "cuda_flags": ext.cuda_flags, "can_torch_compile": False,
        "verification": {k: verification[k] for k in ("accepted", "device", "environment", "checks", "seconds")}},
        indent=2) + "\n"
    return files


def _cuda_limits(dtypes, verification, archs) -> list[str]:
    return [f"dtypes: {', '.join(dtypes)} only; other dtypes, and inputs whose floating dtypes differ, go back to the "
            "original forward with a logged reason.",
            f"shapes verified: {card._ranges(verification['cases'])} (plus the task's benchmark shape on the GPU); "
            "larger shapes run but were not verified.",
            f"devices: CUDA GPUs of compute capability {', '.join(archs)} (the ones it was verified on; add others to "
            "`cuda-capabilities` in build.toml only after verifying there). CPU tensors go back to the original "
            "forward.",
            "not built by kernelwright: nvcc, kernel-builder's ABI3 build and its ABI check have not run on these "
            "sources; a compile error would surface at `kernel-builder build-and-copy`.",
            "no backward: the layer declares has_backward = False, so kernelize in training mode keeps the original "
            "forward, and a call with autograd recording falls back.",
            "torch.compile: the C++ ops have no fake (meta) implementation; the layer declares "
            "can_torch_compile = False.",
            "non-contiguous inputs are accepted only as far as the candidate's own C++ handles them (verified with "
            "contiguous inputs)."]


def _write_source(out: Path, files: dict[str, str], plots: list[Path], *, name, spec, replaced: Replaced,
                  verification, op: str) -> PackageResult:
    _write_atomically(out, files, plots, cuda_repo.validate_source_repository)
    notes = [f"a CUDA C++ source repository for kernel-builder: nothing was compiled, so there is no build/ "
             f"directory yet; build it with `kernel-builder build-and-copy -L` in {out} (see CARD.md, How to build).",
             f"op `{op}` is registered under the namespace kernel-builder names at build time; layer and function "
             "call it through `from ._ops import ops`."]
    return PackageResult(path=out, name=name, module=name.replace("-", "_"), kernel_id=None, function=spec.op_name,
                         layer=replaced.class_name, layer_key=replaced.layer_key, verification=verification,
                         files=sorted(files), kind="cuda", notes=notes)


def _build_toml(name: str, version: int, archs: list[str]) -> str:
    lines = ["[general]", f'name = "{name}"', f"version = {version}", "edition = 5", f'license = "{LICENSE}"',
             'backends = ["cuda"]', "", "[torch-noarch]"]
    if archs:
        # kernels 0.17 parses this key in snake case in [torch-noarch] (kebab case in [kernel.*]).
        lines.append("cuda_capabilities = [" + ", ".join(f'"{a}"' for a in archs) + "]")
    return "\n".join(lines) + "\n"


def _write(out: Path, files: dict[str, str], plots: list[Path], rust, *, name, spec, replaced: Replaced | None,
           verification) -> PackageResult:
    def digest_and_validate(repo: Path) -> None:
        variant = repo / "build" / "torch-cuda"
        digest = rust.Digest.hash_variant(rust.DigestAlgorithm.SHA256, variant)
        meta_path = variant / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["digest"] = {"algorithm": "sha256", "files": dict(sorted(digest.files.items()))}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        validate_repository(repo)

    _write_atomically(out, files, plots, digest_and_validate)
    meta = json.loads((out / "build" / "torch-cuda" / "metadata.json").read_text())
    return PackageResult(path=out, name=name, module=name.replace("-", "_"), kernel_id=meta["id"],
                         function=spec.op_name, layer=replaced.class_name if replaced else None,
                         layer_key=replaced.layer_key if replaced else None, verification=verification,
                         files=sorted(files))


def _write_atomically(out: Path, files: dict[str, str], plots: list[Path], finish) -> None:
    """Write the repository into a temporary sibling of ``out``, let ``finish`` complete and validate it
    there, then move it into place: a refusal or a crash leaves ``out`` as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for plot in plots:
            (tmp / "media").mkdir(exist_ok=True)
            shutil.copy2(plot, tmp / "media" / plot.name)
        finish(tmp)
        if out.exists():
            out.rmdir()  # checked empty above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def validate_repository(repo: Path) -> dict[str, Any]:
    """Check a repository with ``kernels``' own parsers: build.toml, each variant's metadata.json (name,
    Python dependencies, digest against the files) and its variant directory name. A CUDA source repository
    (not built) is checked by ``cuda_repo.validate_source_repository`` and returns its ``[kernel.*]`` tables."""
    rust = _kernels_module()
    from kernels.python_deps import validate_dependencies
    from kernels.variants import parse_variant

    if not (repo / "build").is_dir() and (repo / "torch-ext" / "torch_binding.cpp").is_file():
        return cuda_repo.validate_source_repository(repo)  # a CUDA source repository: no variant until built
    try:
        build = rust.Build.open(repo)
    except ValueError as exc:
        raise UsageError(f"build.toml does not validate: {exc}") from None
    variants = {}
    for variant in sorted(p for p in (repo / "build").iterdir() if p.is_dir()):
        parse_variant(variant.name)
        meta = rust.Metadata.read_from_file(variant / "metadata.json")
        backend = meta.backend.backend_type
        if backend not in build.general.backends:
            raise UsageError(f"{variant.name} is for backend {backend}, which build.toml does not list.")
        validate_dependencies(meta.name.python_name, meta.python_depends, _backend_named(str(backend)))
        if meta.digest is not None:
            meta.digest.validate(rust.Digest.hash_variant(meta.digest.algorithm, variant))
        if not meta.id.isidentifier():
            raise UsageError(f"metadata id {meta.id!r} is not a Python identifier.")
        variants[variant.name] = meta
    if not variants:
        raise UsageError(f"{repo} has no build variant.")
    return variants


def _backend_named(name: str):
    # kernels' dependency table is keyed by backend name only; a CUDA Backend object would need a toolkit
    # version that a noarch package does not have.
    from types import SimpleNamespace

    return SimpleNamespace(name=name.lower().removeprefix("backend."))
