"""``verify``: run a candidate on many shapes, dtypes and distributions and judge every output.

The candidate runs first, in a sandboxed worker, on inputs built here with fresh secret seeds; only
after that process has exited is the reference computed (float64) together with the task's own Model
in the case dtype, which calibrates the tolerance. Nothing the candidate can reach ever holds a
reference output.
"""

from __future__ import annotations

import copy
import secrets
import time
from pathlib import Path

from kernelwright.errors import UsageError
from kernelwright.executor.timing import GpuBusy, timing_lock
from kernelwright.hardware import describe, resolve_device
from kernelwright.sandbox.runner import Limits, load_result, run_worker
from kernelwright.tasks.knobs import draw_shapes
from kernelwright.tasks.task import candidate_file, Task, load_task
from kernelwright.verify import checks, constructor, fuzz, memory, static, tolerance
from kernelwright.verify.inputs import (DISTRIBUTIONS, Case, ModelRaised, build_case, on_host, outline,
                                       reference_outputs, row_slices, rows_independent, time_eager)
from kernelwright.verify.result import VerifyResult

MIN_SHAPES = 8
# Product-of-knobs budget per drawn shape: the interpreter is slow, a GPU is not.
ELEMENT_BUDGET = {"cpu": 2**14, "cuda": 2**22}
CPU_LEADING_CAP = 257  # rows under the interpreter: each row is a program run in Python
REPEATS = 2  # every case runs twice: the second run must match the first bit for bit
# Cases (the first of each dtype) that also run on VARIANTS more input sets of the same shape, in the same
# process: a result cached by pointer, id, shape or content is stale on them, and a cache grows.
PROBES_PER_DTYPE = 1
VARIANTS = 2
# A case whose inputs exceed this is judged from the host (only the benchmark shape, on a GPU): where the op
# treats rows of dim 0 independently, streamed, each slice of rows of the candidate's outputs compared on the
# device with the reference computed there for it; otherwise the reference gathered on the host, outputs
# compared slice by slice on the device. 64 MiB is above every drawn case (ELEMENT_BUDGET elements per input)
# and below KernelBench's smallest benchmark shapes: judged whole, their 256 MiB peaked at 6.4x (H200).
HOST_JUDGE_BYTES = 64 << 20


def plan_cases(task: Task, device: str, *, shapes: int = MIN_SHAPES, seed: int | None = None,
               benchmark_shape: bool = True, notes: list[str] | None = None) -> list[Case]:
    """Shapes × dtypes, distributions cycling so every dtype sees the task's own inputs and signed ones.
    On a GPU the benchmark shape (the file's own knobs) is verified too. A few cases carry other
    constructor arguments (``notes`` collects those the task's own Model rejects)."""
    rng_seed = secrets.randbits(31) if seed is None else seed
    on_cpu = device == "cpu"
    drawn = draw_shapes(task, count=shapes, budget=ELEMENT_BUDGET["cpu" if on_cpu else "cuda"], seed=rng_seed,
                        leading_cap=CPU_LEADING_CAP if on_cpu else None)
    if device != "cpu" and benchmark_shape:  # off for optimize's probes: best.py is verified at it once
        drawn.append(("benchmark", dict(task.knobs)))
    module = task.load()
    cases = []
    seeds = secrets.SystemRandom() if seed is None else __import__("random").Random(seed)
    for s, (label, knobs) in enumerate(drawn):
        # the benchmark shape is large: its one case is the dtype that is timed first
        for d, dtype in enumerate(task.dtype_names if label != "benchmark" else task.dtype_names[:1]):
            distribution = DISTRIBUTIONS[(s + d) % len(DISTRIBUTIONS)] if label != "benchmark" else "task"
            case_id = f"{label}-{s}-{dtype}"
            cases.append(_build(module, device, case_id=case_id, label=label, knobs=knobs, dtype=dtype,
                                distribution=distribution, seed=seeds.randrange(2**31)))
    for f, (knobs, dtype, distribution) in enumerate(fuzz.draw(
            task, count=fuzz.FUZZ_CASES["cpu" if on_cpu else "cuda"], seed=seeds.randrange(2**31),
            budget=ELEMENT_BUDGET["cpu" if on_cpu else "cuda"], leading_cap=CPU_LEADING_CAP if on_cpu else None)):
        cases.append(build_case(module, case_id=f"fuzz-{f}-{dtype}", label="fuzz", knobs=knobs, dtype=dtype,
                                distribution=distribution, seed=seeds.randrange(2**31)))
    for dtype in task.dtype_names:
        for case in [c for c in cases if c.dtype == dtype and c.label != "fuzz"][:PROBES_PER_DTYPE]:
            case.variants = [_build(module, device, case_id=f"{case.id}-v{v}", label=case.label, knobs=case.knobs,
                                    dtype=dtype, distribution=case.distribution, seed=seeds.randrange(2**31),
                                    model_seed=case.seed) for v in range(VARIANTS)]
    cases += _constructor_cases(module, task, cases, seeds, notes if notes is not None else [])
    return cases


def _build(module, device: str, **kwargs) -> Case:
    """``build_case``; the benchmark shape's inputs (gigabytes, where the host draws ~1 GB a second) are
    drawn on the GPU, kept on the host for judging, and drawn again on the GPU by the worker."""
    if kwargs["label"] != "benchmark" or device == "cpu":
        return build_case(module, **kwargs)
    return on_host(build_case(module, **kwargs, device=device))


def _constructor_cases(module, task: Task, cases: list[Case], seeds, notes: list[str]) -> list[Case]:
    """Cases built with other constructor arguments (see ``constructor``), in the task's most precise
    dtype on drawn shapes: a near value on small-magnitude inputs (where an eps shows), far ones on normal."""
    import torch

    dtype = min(task.dtype_names, key=lambda d: torch.finfo(getattr(torch, d)).eps)
    shapes = [c for c in cases if c.dtype == dtype and c.label not in ("fuzz", "benchmark", "tiny")] or cases
    built = []
    for n, (position, value, kind) in enumerate(constructor.variations(module, cases[0].init_inputs)):
        base = shapes[n % len(shapes)]
        try:
            built.append(build_case(module, case_id=f"init-{n}-{dtype}", label="init", knobs=base.knobs, dtype=dtype,
                                    distribution="small" if kind == "near" else "normal",
                                    seed=seeds.randrange(2**31), init_override={position: value}))
        except Exception as exc:  # noqa: BLE001 -- the task's own Model refuses the value: not a test
            notes.append(f"constructor argument {position} = {value!r} skipped: the task's own Model rejects it "
                         f"({type(exc).__name__}: {exc})"[:300])
    return built


def _time_eager(cases: list[Case], device: str) -> None:
    """Each case's ``eager_s``, from one call per distinct shape and dtype (a hang deadline needs a scale,
    not a benchmark)."""
    timed: dict = {}
    for case in cases:
        key = (tuple(sorted(case.knobs.items())), case.dtype)
        if key not in timed:
            timed[key] = time_eager(case, device)
        case.eager_s = timed[key]


def verify(task: str | Path, candidate: str | Path, *, device: str = "cpu", limits: Limits = Limits(),
           shapes: int = MIN_SHAPES, seed: int | None = None, static_policy: bool = True,
           sanitize: bool = False, benchmark_shape: bool = True, progress=None) -> VerifyResult:
    """Verify ``candidate`` against ``task``. Raises ``UsageError`` for bad input; a bad candidate is a
    rejected ``VerifyResult``, never an exception.

    ``static_policy=False`` skips the AST pass (to show the dynamic checks stand on their own);
    ``sanitize=True`` (GPU only) also runs one case under compute-sanitizer's memcheck and racecheck;
    ``benchmark_shape=False`` leaves the task's own (large) shape out of a GPU run's cases;
    ``progress`` (a callable taking one line) hears "verify: case 7 of 41 (...), 23 s" at most every ~10 s."""
    started = time.monotonic()
    device = resolve_device(device)
    task_obj = load_task(task)
    candidate_path = candidate_file(candidate)
    if sanitize and device == "cpu":
        raise UsageError("--sanitize needs a GPU (compute-sanitizer checks CUDA kernels); run with --device cuda "
                         "on a machine with an NVIDIA GPU.")
    if sanitize:
        from kernelwright.verify.sanitize import find_sanitizer

        find_sanitizer()
    result = VerifyResult(task=task_obj.name, task_path=str(task_obj.path), candidate=str(candidate_path.resolve()),
                          device=device, environment=describe(device))
    result.environment["fuzzer"] = fuzz.planner_name()
    extensions = task_extensions(task_obj)
    if static_policy:
        violations = static.check_source(candidate_path.read_text(errors="replace"), allow=extensions["policy"])
        result.record("static", not violations)
        for v in violations:
            result.fail(v.check, v.message, None, rule=v.rule, line=v.line)
        if violations:  # policy violations are not run at all: they may open sockets or spawn processes
            result.seconds = time.monotonic() - started
            return result

    def attempt(shared: bool) -> VerifyResult:
        if device.startswith("cuda"):  # what an earlier attempt left cached here is the worker's to use
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()
        memory.reset_peak(device)
        fresh = copy.deepcopy(result)
        # eager timings, the candidate's process and the judging are all GPU work: none beside a timing
        try:
            with timing_lock(device, shared=shared, deadline=limits.deadline):
                return _verify_cases(fresh, task_obj, candidate_path, extensions, started, device=device,
                                     limits=limits, shapes=shapes, seed=seed, sanitize=sanitize,
                                     benchmark_shape=benchmark_shape, progress=progress)
        except GpuBusy as exc:  # the time budget ran out waiting for the GPU: no verdict on the candidate
            fresh.fail("timeout", f"not verified: {exc}", None, limit="budget")
            return fresh
        except memory.DoesNotFit as exc:
            if not shared:
                raise
            fresh.fail("parent_out_of_memory", str(exc))  # free memory is what other processes left
            return fresh
        except Exception as exc:
            import torch

            if not isinstance(exc, torch.OutOfMemoryError):
                raise
            fresh.fail("parent_out_of_memory", str(exc)[:500])
            return fresh

    checked = attempt(shared=True)
    if device.startswith("cuda") and _out_of_device_memory(checked):
        # Other processes' memory may have caused it: once more with the GPU's lock held exclusively (no other
        # kernelwright work on that GPU), so only an out-of-memory on a GPU of its own rejects a candidate.
        checked = attempt(shared=False)
        checked.notes.append("ran out of GPU memory (other kernelwright work may have shared the GPU); verified "
                             "again with the GPU to itself")
    if any(f["check"] == "parent_out_of_memory" for f in checked.failures):
        # the fit check estimates; a Model whose own temporaries are many times its outputs can still not fit
        raise UsageError(memory.does_not_fit(task_obj.name, checked.memory.get("task_bytes") or 0,
                                             memory.free_device_bytes(device)))
    return checked


def _out_of_device_memory(result: VerifyResult) -> bool:
    return any(f["check"] == "parent_out_of_memory" or (f["check"] == "out_of_memory" and "device memory" in f["message"])
               for f in result.failures)


def _verify_cases(result: VerifyResult, task_obj: Task, candidate_path: Path, extensions: dict, started: float, *,
                  device: str, limits: Limits, shapes: int, seed: int | None, sanitize: bool,
                  benchmark_shape: bool, progress=None) -> VerifyResult:
    phase_started = time.monotonic()
    notes: list[str] = []
    cases = plan_cases(task_obj, device, shapes=shapes, seed=seed, benchmark_shape=benchmark_shape, notes=notes)
    largest = memory.largest(cases)
    result.memory = {"task_bytes": memory.case_bytes(largest), "largest_case": largest.id,
                     "parent_peak_bytes": None, "worker_peak_bytes": None}
    result.notes += notes
    memory.check_fits(task_obj.name, result.memory["task_bytes"], device)
    _time_eager(cases, device)
    phase_started = _phase(result, "plan", phase_started)
    by_id = {c.id: c for c in cases}
    # the worker loads every input set the job carries, and draws the rest: its memory limit counts both
    job_bytes = sum(memory.tensor_bytes(c.inputs) + sum(memory.tensor_bytes(v.inputs) for v in c.variants) for c in cases)
    outcome = run_worker({"mode": "run", "candidate": str(candidate_path.resolve()), "task": str(task_obj.path),
                          "allowed_ops": extensions["ops"], "cases": [c.job(repeat=REPEATS) for c in cases]},
                         device=device, limits=limits, progress=progress, job_bytes=job_bytes)
    phase_started = _phase(result, "worker", phase_started)
    result.environment.update(network_isolated=outcome.network_isolated, isolation_note=outcome.isolation_note)
    result.record("process", outcome.ok)
    if not outcome.ok:
        limit = {"limit": outcome.extra["timeout_limit"]} if outcome.extra.get("timeout_limit") else {}
        result.fail(outcome.reason or "worker", outcome.message, None, traceback=(outcome.report or {}).get("traceback", ""),
                    **limit)
        result.log_tail = outcome.log_tail
        result.memory["parent_peak_bytes"] = memory.peak_bytes(device)
        result.seconds = time.monotonic() - started
        return result
    result.memory["worker_peak_bytes"] = outcome.report.get("peak_bytes")
    runs_by_case = load_result(outcome) or {}  # on the host: each case's runs reach the device only when judged
    for reported in outcome.report["cases"]:
        case = by_id[reported["id"]]
        result.cases.append(_judge(result, case, reported, runs_by_case.pop(case.id, []), task_obj, device))
    if result.cases and all(c.get("skipped") for c in result.cases):
        raise UsageError(f"Task {task_obj.name}: its own Model raises at every drawn shape "
                         f"({result.cases[0]['skipped']}); fix the task file or declare legal shapes "
                         "(KNOB_MULTIPLE_OF, FIXED).")
    missing = [c.id for c in cases if c.id not in {r["id"] for r in outcome.report["cases"]}]
    if missing:
        result.fail("not_run", f"{len(missing)} case(s) never ran because an earlier CUDA error killed the context",
                    None, cases=missing)
    phase_started = _phase(result, "judge", phase_started)
    if sanitize:  # even when rejected: the sanitizer's report often names the bug
        from kernelwright.verify.sanitize import run_sanitizer

        run_sanitizer(result, cases, candidate_path, device, limits)
        _phase(result, "sanitize", phase_started)
    if not result.accepted:
        result.log_tail = result.log_tail or outcome.log_tail
    result.memory["parent_peak_bytes"] = memory.peak_bytes(device)
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()  # references at benchmark size: give the memory back to other processes
    result.seconds = time.monotonic() - started
    return result


def _phase(result: VerifyResult, name: str, started: float) -> float:
    """Record the seconds since ``started`` as phase ``name`` (a slow verification says where its time
    went); the start of the next phase."""
    now = time.monotonic()
    result.phases[name] = now - started
    return now


def task_extensions(task: Task) -> dict[str, list[str]]:
    """The task file's verifier extensions: ``ALLOWED_TORCH_OPS`` (ATen op names, e.g. ``"sum"``, that
    forward may use besides the built-in glue) and ``ALLOWED_POLICY`` (static rule ids to allow)."""
    module = task.load()
    found = {}
    for key, name in (("ops", "ALLOWED_TORCH_OPS"), ("policy", "ALLOWED_POLICY")):
        value = getattr(module, name, [])
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"Task file {task.path}: {name} must be a list of strings, got {value!r}.")
        found[key] = list(value)
    return found


def _judge(result: VerifyResult, case: Case, reported: dict, runs: list, task: Task, device: str) -> dict:
    """Every check of one case; failures go into ``result`` with the case as reproducer. A benchmark-size
    case stays on the host and is compared on the device a slice at a time (streamed by rows where the op
    allows: nothing of it full-size in float64 anywhere)."""
    entry = {**case.describe(), "passed": False, "outputs": []}
    on_host = memory.tensor_bytes(case.inputs) > HOST_JUDGE_BYTES
    streamed = on_host and rows_independent(case, device)
    if not on_host:
        runs = [[o.to(device) for o in run] for run in runs]
    # (the candidate's process has exited: the reference is computed only now)
    try:
        refs, eagers = (None, outline(case, device)) if streamed else reference_outputs(case, device, on_host=on_host)
    except Exception as exc:  # noqa: BLE001 -- the task's own Model: a shape outside the op's domain judges nothing
        return _skipped(result, case, entry, exc)
    result.record("process", "error" not in reported)
    if "error" in reported:
        err = reported["error"]
        result.fail(err["reason"], err["message"], case.describe(), traceback=err.get("traceback", ""))
        return entry
    before = len(result.failures)
    result.record("inputs", not reported["mutated_inputs"])
    if reported["mutated_inputs"]:
        result.fail("mutated_input", f"ModelNew wrote to input(s) {reported['mutated_inputs']}", case.describe())
    violations = reported.get("violations", [])
    result.record("anti_cheat", not violations)
    for v in violations:
        result.fail(v["check"], v["message"], case.describe(), call=v.get("call", 0))
    entry.update(torch_ops=reported.get("torch_ops", {}), launches=reported.get("launches", 0))
    structure = checks.check_structure(runs[0], eagers, reported.get("outputs", []), device)
    _record(result, "structure", structure, case)
    if not structure:
        base = tolerance.for_case(case.dtype, device, atol=task.atol, rtol=task.rtol)
        if streamed:
            try:
                value_failures, stats, determinism = checks.check_values_in_rows(
                    runs[:REPEATS], row_slices(case, device, eagers), base, device)
            except ModelRaised as exc:  # on a later slice of rows than the first: as if it raised whole
                return _skipped(result, case, entry, exc)
        else:
            value_failures, stats = checks.check_values(runs[0], refs, eagers, base, device)
            determinism = checks.check_determinism(runs[:REPEATS], device)
        entry["outputs"] = stats
        # Each variant input set (same shape, new values, later in the same process) is judged on its own.
        for variant, outs in zip(case.variants, runs[REPEATS:]):
            try:
                more, _ = judge_outputs(variant, outs, base, device, on_host)
            except ModelRaised as exc:  # the task's own Model refuses these values: as if it refused the case
                return _skipped(result, case, entry, exc)
            for f in more:
                f.message = f"on a new input set of the same shape (call {REPEATS + case.variants.index(variant) + 1}): " + f.message
                f.details["variant_seed"] = variant.seed
            value_failures += more
        _record(result, "values", value_failures, case)
        _record(result, "determinism", determinism, case)
    if reported.get("note"):
        entry["note"] = reported["note"]
    entry["passed"] = len(result.failures) == before
    return entry


def judge_outputs(case: Case, outs: list, base: tolerance.Tolerance, device: str, on_host: bool) -> tuple[list, list]:
    """(structure and value failures, per-output statistics) of one run's outputs on ``case``, judged as
    ``_judge`` judges a case: streamed by rows when it is benchmark-size (``on_host``) and its rows are
    independent, else against the whole reference. Variant input sets and the bench's re-check use it."""
    if on_host and rows_independent(case, device):
        shaped = outline(case, device)
        failures = checks.check_structure(outs, shaped)
        if failures:
            return failures, []
        failures, stats, _ = checks.check_values_in_rows([outs], row_slices(case, device, shaped), base, device)
        return failures, stats
    refs, eagers = reference_outputs(case, device, on_host=on_host)
    failures = checks.check_structure(outs, eagers)
    if failures:
        return failures, []
    return checks.check_values(outs, refs, eagers, base, device)


def _skipped(result: VerifyResult, case: Case, entry: dict, exc: BaseException) -> dict:
    """The case's entry when the task's own Model raises on it (never for running out of memory: the
    machine's limit, not the op's, is never a silently skipped case)."""
    import torch

    if isinstance(exc, ModelRaised):
        exc = exc.__cause__
    if isinstance(exc, torch.OutOfMemoryError):
        raise exc
    entry["skipped"] = f"the task's own Model raises here: {type(exc).__name__}: {exc}"[:300]
    if case.init_varied:
        result.notes.append(f"constructor arguments {entry['init_inputs']} skipped: {entry['skipped']}"[:300])
    return entry


def _record(result: VerifyResult, group: str, failures: list, case: Case) -> None:
    result.record(group, not failures)
    for f in failures:
        result.fail(f.check, f.message, case.describe(), **f.details)
