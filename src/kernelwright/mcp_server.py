"""The MCP server: kernelwright's tools for any coding agent, over the official ``mcp`` SDK (FastMCP).

Every tool calls the same library function as the CLI (``verify.verify``, ``bench.bencher.bench``,
``run.optimize``, ``package.package``): there is no second implementation, and candidate code runs only
in the sandbox those functions use. Long tools (verify, bench, optimize, package) run in a background
thread as a *job*: the plain tool waits for it and relays its progress at least every
``HEARTBEAT_S`` seconds; ``start_*`` returns a job id at once for ``job_status`` / ``job_result``, so no
client times out. Jobs run one at a time: two candidates timed together would spoil each other's numbers.

Paths a client passes (candidates, task files, run and output directories) must lie under the allowed
roots (default: the server's working directory). Bad input is a tool error of one sentence, never a
crash of the server. ``mcp`` is an optional extra, imported only by :func:`build_server` and :func:`serve`.
"""

import itertools
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from pydantic import BaseModel, Field

from kernelwright.errors import KernelwrightError, UsageError

HEARTBEAT_S = 15.0  # a client hears from a long tool at least this often (the issue asks for 30 s)
POLL_S = 0.25
LOG_TAIL_CHARS = 2000
MISSING_EXTRA = "The MCP server needs the `mcp` package; install it with: pip install 'kernelwright[mcp]'."
# An LLM agent sends the task to a provider: allowed only when its key is already in the server's environment.
AGENT_KEYS = {"anthropic": ("ANTHROPIC_API_KEY",), "openai": ("OPENAI_API_KEY",),
              "openai-compatible": ("OPENAI_COMPATIBLE_API_KEY", "OPENROUTER_API_KEY")}


# -- structured outputs (the SDK turns these into each tool's output schema) -----------------------------

class TaskSummary(BaseModel):
    name: str
    description: str
    knobs: dict[str, int] = Field(description="shape knobs and their default values")
    dtypes: list[str]
    benchmark_shapes: list[dict[str, int]]


class TaskList(BaseModel):
    tasks: list[TaskSummary]


class RooflineShape(BaseModel):
    knobs: dict[str, int]
    dtype: str
    bytes: Optional[int] = Field(description="fewest bytes a kernel must move: inputs and parameters read once, "
                                             "outputs written once (None when the task cannot be built on meta)")
    flops: Optional[int] = Field(description="matmul-like FLOPs PyTorch's counter sees (0 for memory-bound ops)")


class TaskDescription(BaseModel):
    name: str
    path: str
    description: str
    knobs: dict[str, int]
    fixed: dict[str, int] = Field(description="small integer constants kept fixed (not drawn by the verifier)")
    knob_multiple_of: dict[str, int]
    dtypes: list[str]
    benchmark_shapes: list[dict[str, int]]
    atol: Optional[float]
    rtol: Optional[float]
    replaces: Optional[str] = Field(description="the transformers module class this op stands for")
    baselines: list[str] = Field(description="what bench times a candidate against on a GPU")
    roofline: list[RooflineShape]
    source: str = Field(description="the task file: the reference Model, get_inputs, get_init_inputs")


class Failure(BaseModel):
    check: str
    message: str
    case: Optional[dict[str, Any]] = None


class VerifyOutput(BaseModel):
    accepted: bool
    task: str
    candidate: str
    device: str
    cases: int = Field(description="cases run (skipped ones not counted)")
    seconds: float
    failed_checks: list[str] = Field(description="names of the checks that failed, each once")
    failures: list[Failure]
    checks: dict[str, dict[str, int]] = Field(description="per check: passed and failed counts")
    notes: list[str]
    log_tail: str = Field(description="the candidate process's log (tail), when rejected")


class BenchRow(BaseModel):
    knobs: dict[str, Any]
    dtype: str
    candidate_ms: float
    baseline_ms: dict[str, float]
    fastest_baseline: Optional[str]
    speedup_vs_fastest: Optional[float] = Field(description="above 1: the candidate is faster")
    bytes: int
    gbps: float
    fraction_of_copy: Optional[float] = Field(description="achieved bandwidth over the measured copy bandwidth")
    bound: str
    recheck_passed: bool


class BenchOutput(BaseModel):
    ok: bool
    task: str
    candidate: str
    device: str
    timings_meaningful: bool = Field(description="false on the CPU (Triton interpreter): correctness only")
    rows: list[BenchRow]
    failures: list[Failure]
    ceilings: Optional[dict[str, Any]]
    seconds: float


class OptimizeOutput(BaseModel):
    accepted: bool = Field(description="a verified kernel is in best_path")
    task: str
    agent: str
    device: str
    out: str
    best_path: Optional[str]
    message: str
    verdict: dict[str, Any] = Field(description="the best kernel against the fastest baseline")
    evaluations: dict[str, int]
    seconds: float


class PackageOutput(BaseModel):
    path: str
    name: str
    kind: str
    function: str
    layer: Optional[str]
    layer_key: Optional[str]
    kernel_id: Optional[str]
    verified_on: Optional[str]
    files: list[str]
    notes: list[str]


class RunCandidate(BaseModel):
    name: str
    role: str
    source_path: str
    verify: Optional[str] = Field(description="'accepted', 'rejected' or 'error' (latest verification)")
    failed_checks: list[str]


class RunOutput(BaseModel):
    out: str
    summary: dict[str, Any] = Field(description="summary.json (schema kernelwright.optimize/1)")
    verdict: dict[str, Any]
    best_source: Optional[str]
    candidates: list[RunCandidate]


class JobInfo(BaseModel):
    job_id: str
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    seconds: float
    progress: list[str] = Field(description="the latest progress lines")
    error: Optional[str] = None


# -- allowed roots -------------------------------------------------------------------------------------

class Roots:
    """The directories a client's paths must lie under, resolved once (symlinks included)."""

    def __init__(self, roots: list[str | Path] | None = None):
        self.dirs = [Path(r).resolve() for r in (roots or [Path.cwd()])]

    def check(self, path: str | Path, what: str) -> Path:
        resolved = Path(path).expanduser().resolve()
        if not any(resolved == d or resolved.is_relative_to(d) for d in self.dirs):
            raise UsageError(f"The {what} {path} lies outside the server's allowed roots "
                             f"({', '.join(map(str, self.dirs))}); pass a path under them or start the server "
                             "with --root.")
        return resolved

    def task(self, task: str) -> str:
        """A bundled name passes as is; anything else is a task file under the roots."""
        from kernelwright.tasks import bundled_names

        if task in bundled_names():
            return task
        return str(self.check(task, "task file"))


# -- jobs: a long tool in a background thread ----------------------------------------------------------

@dataclass
class Job:
    id: str
    kind: str
    work: Callable[[Callable[[str], None]], BaseModel]
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    lines: list[str] = field(default_factory=list)
    result: BaseModel | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def say(self, line: str) -> None:
        self.lines.append(str(line))

    def info(self) -> JobInfo:
        end = self.finished or time.monotonic()
        state = "failed" if self.error else "done" if self.done.is_set() else "running" if self.started else "queued"
        return JobInfo(job_id=self.id, kind=self.kind, state=state, seconds=round(end - (self.started or end), 1),
                       progress=self.lines[-5:], error=self.error)


class Jobs:
    """Jobs run one at a time, in order: two at once would share the device and spoil each other's timings."""

    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._device = threading.Lock()

    def start(self, kind: str, work: Callable[[Callable[[str], None]], BaseModel]) -> Job:
        job = Job(f"{kind}-{next(self._ids)}", kind, work)
        self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), name=job.id, daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        if job_id not in self._jobs:
            raise UsageError(f"No job {job_id}; start_verify, start_bench, start_optimize and start_package return "
                             "job ids.")
        return self._jobs[job_id]

    def _run(self, job: Job) -> None:
        with self._device:
            job.started = time.monotonic()
            job.say(f"{job.kind}: started")  # a client hears progress even from a job quicker than a heartbeat
            try:
                job.result = job.work(job.say)
            except KernelwrightError as exc:
                job.error = str(exc)
            except BaseException as exc:  # noqa: BLE001 -- a bug in one job must not end the server
                traceback.print_exc(file=sys.stderr)
                job.error = f"{job.kind} failed unexpectedly ({type(exc).__name__}: {exc}); see the server's log."
            finally:
                job.finished = time.monotonic()
                job.say(f"{job.kind}: {'failed' if job.error else 'done'} in {job.finished - job.started:.1f} s")
                job.done.set()


async def wait_for(job: Job, ctx) -> BaseModel:
    """Relay the job's progress to the client (new lines as they come, a heartbeat when there are none)
    until it ends; then its result, or its error as a tool error."""
    import anyio

    sent, last = 0, time.monotonic()
    while not job.done.is_set() or sent < len(job.lines):
        now = time.monotonic()
        if sent < len(job.lines):
            line, sent, last = job.lines[sent], sent + 1, now
            await _tell(ctx, job, line)
        elif now - last >= HEARTBEAT_S:
            last = now
            info = job.info()
            await _tell(ctx, job, f"{job.kind}: {info.state}, {info.seconds:.0f} s")
        else:
            await anyio.sleep(POLL_S)
    return result_of(job)


async def _tell(ctx, job: Job, line: str) -> None:
    elapsed = time.monotonic() - job.created
    await ctx.report_progress(progress=round(elapsed, 1), message=line)
    await ctx.info(line)


def result_of(job: Job) -> BaseModel:
    if not job.done.is_set():
        raise UsageError(f"Job {job.id} is still {job.info().state}; poll job_status until it is done.")
    if job.error:
        raise UsageError(job.error)
    return job.result


# -- the work behind each tool: one library call and its conversion ------------------------------------

def task_summary(task) -> TaskSummary:
    return TaskSummary(name=task.name, description=task.description, knobs=dict(task.knobs),
                       dtypes=list(task.dtype_names), benchmark_shapes=task.bench_shapes)


def describe_task(task_ref: str) -> TaskDescription:
    from kernelwright.tasks import load_task

    task = load_task(task_ref)
    module = task.load()
    peers = sorted(dict(getattr(module, "PEERS", {})))
    baselines = ["eager", *(["native"] if task.has_native else []), "compile", *[f"peer:{p}" for p in peers]]
    roofline = [roofline_at(task, shape, dtype) for shape in task.bench_shapes for dtype in task.dtype_names]
    return TaskDescription(name=task.name, path=str(task.path), description=task.description, knobs=dict(task.knobs),
                           fixed=dict(task.fixed), knob_multiple_of=dict(task.knob_multiple_of),
                           dtypes=list(task.dtype_names), benchmark_shapes=task.bench_shapes, atol=task.atol,
                           rtol=task.rtol, replaces=task.replaces, baselines=baselines, roofline=roofline,
                           source=task.source)


def roofline_at(task, knobs: dict[str, int], dtype: str) -> RooflineShape:
    """The roofline's minimal bytes and FLOPs at one benchmark shape, from tensors on the meta device (no
    memory, no compute): floating inputs and parameters cast to ``dtype`` as the verifier casts them."""
    import torch

    from kernelwright.bench import roofline
    from kernelwright.tasks.task import instantiate

    shape = {**task.knobs, **knobs}
    try:
        with torch.device("meta"):
            inputs, init = instantiate(task.load(), shape)
            model = task.load().Model(*init).to(getattr(torch, dtype))
            inputs = [x.to(getattr(torch, dtype)) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                      for x in inputs]
            outputs = model(*inputs)
        outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        nbytes = roofline.minimal_bytes(inputs, outputs, model.parameters())
        flops = roofline.count_flops(model, inputs, "meta")
    except Exception:  # noqa: BLE001 -- a task whose Model cannot run on meta still describes itself
        nbytes = flops = None
    return RooflineShape(knobs=shape, dtype=dtype, bytes=nbytes, flops=flops)


def verify_output(result) -> VerifyOutput:
    ran = [c for c in result.cases if not c.get("skipped")]
    failures = [Failure(check=str(f["check"]), message=str(f["message"]), case=f.get("case")) for f in result.failures]
    return VerifyOutput(accepted=result.accepted, task=result.task, candidate=result.candidate, device=result.device,
                        cases=len(ran), seconds=round(result.seconds, 2),
                        failed_checks=sorted({f.check for f in failures}), failures=failures,
                        checks=result.checks, notes=list(result.notes),
                        log_tail="" if result.accepted else result.log_tail[-LOG_TAIL_CHARS:])


def bench_output(result) -> BenchOutput:
    rows = []
    for row in result.rows:
        timings = row["timings"]
        best = row["fastest_baseline"]
        rows.append(BenchRow(knobs=row["knobs"], dtype=row["dtype"], candidate_ms=timings["candidate"]["median_ms"],
                             baseline_ms={n: t["median_ms"] for n, t in timings.items()
                                          if n not in ("candidate", "candidate_repeat")},
                             fastest_baseline=best, speedup_vs_fastest=row["speedup"].get(best) if best else None,
                             bytes=row["bytes"], gbps=row["gbps"], fraction_of_copy=row["fraction_of_copy"],
                             bound=row["bound"], recheck_passed=row["recheck"]["passed"]))
    failures = [Failure(check=str(f["check"]), message=str(f["message"])) for f in result.failures]
    return BenchOutput(ok=result.ok, task=result.task, candidate=result.candidate, device=result.device,
                       timings_meaningful=result.timings_meaningful, rows=rows, failures=failures,
                       ceilings=result.ceilings, seconds=round(result.seconds, 2))


def optimize_output(result) -> OptimizeOutput:
    return OptimizeOutput(accepted=result.accepted, task=result.task, agent=result.agent, device=result.device,
                          out=str(result.out), best_path=str(result.best_path) if result.best_path else None,
                          message=result.message, verdict=json.loads(json.dumps(result.verdict, default=str)),
                          evaluations=dict(result.evaluations), seconds=round(result.seconds, 1))


def check_agent(agent: str, roots: Roots) -> str:
    """Offline always; an LLM agent only when its key is already set; a replay only from under the roots."""
    from kernelwright.agents.llm.spec import AgentSpec

    if agent == "offline":
        return agent
    spec = AgentSpec.parse(agent)
    if spec.kind == "replay":
        roots.check(spec.run_dir, "replay run directory")
        return agent
    keys = AGENT_KEYS.get(spec.kind, ())
    if not any(os.environ.get(k) for k in keys):
        raise UsageError(f"Agent {agent} needs {' or '.join(keys)} in the server's environment; set it where the "
                         "server starts, or use the offline agent.")
    return agent


def read_run(out: Path) -> RunOutput:
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        raise UsageError(f"{out} holds no summary.json; pass a run directory written by optimize.")
    try:
        summary = json.loads(summary_path.read_text())
    except ValueError as exc:
        raise UsageError(f"{summary_path} is not valid JSON ({exc}); the run may still be writing it.") from None
    best = out / "best.py"
    return RunOutput(out=str(out), summary=summary, verdict=summary.get("verdict") or {},
                     best_source=best.read_text(errors="replace") if best.is_file() else None,
                     candidates=run_candidates(out))


def run_candidates(out: Path) -> list[RunCandidate]:
    """Every candidate in the run's store with its latest verification (empty without a store)."""
    from kernelwright.store import Store

    if not (out / "run.sqlite").is_file():
        return []
    found = []
    with Store.open(out / "run.sqlite") as store:
        for cand in store.candidates():
            checks = store.evaluations(cand.id, "verify")
            latest = checks[-1] if checks else None
            failed = sorted({str(f.get("check")) for f in (latest.result.get("failures") or [])}) if latest else []
            found.append(RunCandidate(name=cand.name, role=cand.role, source_path=cand.source_path,
                                      verify=latest.status if latest else None, failed_checks=failed))
    return found


# -- the server ----------------------------------------------------------------------------------------

INSTRUCTIONS = """kernelwright verifies and benchmarks GPU kernels (Triton or CUDA C++) for PyTorch operators.
A task is a KernelBench file (class Model, get_inputs, get_init_inputs) or a bundled name (list_tasks).
A candidate is a Python file defining class ModelNew with Model's constructor and forward signature.
verify is the only evidence a kernel is correct, bench the only evidence it is fast: it reports the
ratio to the fastest baseline (eager, native, torch.compile) and the % of roofline. Long tools also exist
as start_* returning a job id: poll job_status, then job_result."""


def build_server(roots: list[str | Path] | None = None, *, host: str = "127.0.0.1", port: int = 8000):
    """The FastMCP server with every tool registered. Raises UsageError when the `mcp` extra is missing."""
    try:
        from mcp.server.fastmcp import Context, FastMCP
    except ImportError:
        raise UsageError(MISSING_EXTRA) from None

    allowed = Roots(roots)
    jobs = Jobs()
    server = FastMCP("kernelwright", instructions=INSTRUCTIONS, host=host, port=port)

    def verify_job(task: str, candidate: str, device: str, shapes: int):
        from kernelwright.verify import verify as run_verify

        task_ref, path = allowed.task(task), allowed.check(candidate, "candidate")
        return jobs.start("verify", lambda say: verify_output(
            run_verify(task_ref, path, device=device, shapes=shapes, progress=say)))

    def bench_job(task: str, candidate: str, device: str, dtype: str | None, sweep: bool, baselines: str | None):
        from kernelwright.bench.bencher import bench as run_bench

        task_ref, path = allowed.task(task), allowed.check(candidate, "candidate")
        return jobs.start("bench", lambda say: bench_output(
            run_bench(task_ref, path, device=device, dtype=dtype, sweep=sweep, baseline_kinds=baselines,
                      progress=say)))

    def optimize_job(task: str, agent: str, device: str, max_minutes: float | None, budget: int | None,
                     out: str | None):
        from kernelwright.run import OptimizeLimit, optimize as run_optimize
        from kernelwright.run.entry import default_out
        from kernelwright.tasks import load_task

        task_ref = allowed.task(task)
        agent = check_agent(agent, allowed)
        out_dir = allowed.check(out or default_out(load_task(task_ref), agent), "run directory")

        def work(say):
            try:
                return optimize_output(run_optimize(task_ref, agent=agent, out=out_dir, device=device,
                                                    minutes=max_minutes, budget=budget, report=say))
            except OptimizeLimit as exc:  # the op is not covered by the offline generator
                raise UsageError(f"Not covered: {exc}") from None

        return jobs.start("optimize", work)

    def package_job(source: str, name: str, out: str, task: str | None, device: str, allow_slower: bool):
        from kernelwright.package import CandidateRejected, package as run_package

        src = allowed.check(source, "candidate or run directory")
        out_dir = allowed.check(out, "output directory")
        task_ref = allowed.task(task) if task else None

        def work(say):
            say(f"package: verifying {src.name} before writing {out_dir}")
            try:
                result = run_package(src, name=name, out=out_dir, task=task_ref, device=device,
                                     allow_slower=allow_slower)
            except CandidateRejected as exc:
                checks = sorted({f["check"] for f in exc.result.failures})
                raise UsageError(f"Not packaged: the candidate failed verification ({', '.join(checks)}); run "
                                 "verify for the details.") from None
            data = result.as_json()
            return PackageOutput(path=data["path"], name=data["name"], kind=data["kind"], function=data["function"],
                                 layer=data["layer"], layer_key=data["layer_key"], kernel_id=data["id"],
                                 verified_on=data["verified_on"], files=list(data["files"]), notes=list(data["notes"]))

        return jobs.start("package", work)

    @server.tool()
    def list_tasks() -> TaskList:
        """The bundled tasks: name, description, shape knobs with defaults, benchmark shapes, dtypes."""
        from kernelwright.tasks import bundled_names, load_task

        return TaskList(tasks=[task_summary(load_task(n)) for n in bundled_names()])

    @server.tool(name="describe_task")
    def describe_task_tool(task: str) -> TaskDescription:
        """Everything about one task: knobs, fixed constants, benchmark shapes, dtypes, tolerances, baselines,
        the roofline's minimal bytes per benchmark shape and dtype, and the task file's source."""
        return describe_task(allowed.task(task))

    @server.tool()
    async def verify(task: str, candidate: str, ctx: Context, device: str = "auto", shapes: int = 8) -> VerifyOutput:
        """Verify a candidate file (class ModelNew) against a task on many shapes, dtypes and input
        distributions, with anti-cheat checks, in a sandboxed process. device: auto, cpu (Triton
        interpreter, correctness only) or cuda[:N]; shapes: how many shapes to draw from the knobs."""
        return await wait_for(verify_job(task, candidate, device, shapes), ctx)

    @server.tool()
    async def bench(task: str, candidate: str, ctx: Context, device: str = "auto", dtype: Optional[str] = None,
                    sweep: bool = False, baselines: Optional[str] = None) -> BenchOutput:
        """Time a candidate against eager, native and torch.compile baselines with device events, L2 flush
        and fresh inputs; re-checks its outputs. baselines: a comma-separated subset of
        eager,native,compile,peers. On the CPU timings are not meaningful."""
        return await wait_for(bench_job(task, candidate, device, dtype, sweep, baselines), ctx)

    @server.tool()
    async def optimize(task: str, ctx: Context, agent: str = "offline", device: str = "auto",
                       max_minutes: Optional[float] = None, budget: Optional[int] = None,
                       out: Optional[str] = None) -> OptimizeOutput:
        """Search, verify and tune kernels for a task; the best verified one is OUT/best.py. agent: offline
        (no key, no network); an LLM agent only when its key is set where the server runs."""
        return await wait_for(optimize_job(task, agent, device, max_minutes, budget, out), ctx)

    @server.tool()
    async def package(source: str, name: str, out: str, ctx: Context, task: Optional[str] = None,
                      device: str = "auto", allow_slower: bool = False) -> PackageOutput:
        """Verify a candidate (or a run directory's best.py) and write a Hugging Face kernels repository to
        out (new or empty). name: lowercase letters, digits and dashes."""
        return await wait_for(package_job(source, name, out, task, device, allow_slower), ctx)

    @server.tool()
    def start_verify(task: str, candidate: str, device: str = "auto", shapes: int = 8) -> JobInfo:
        """verify as a background job: returns its id at once; poll job_status, then job_result."""
        return verify_job(task, candidate, device, shapes).info()

    @server.tool()
    def start_bench(task: str, candidate: str, device: str = "auto", dtype: Optional[str] = None,
                    sweep: bool = False, baselines: Optional[str] = None) -> JobInfo:
        """bench as a background job: returns its id at once; poll job_status, then job_result."""
        return bench_job(task, candidate, device, dtype, sweep, baselines).info()

    @server.tool()
    def start_optimize(task: str, agent: str = "offline", device: str = "auto", max_minutes: Optional[float] = None,
                       budget: Optional[int] = None, out: Optional[str] = None) -> JobInfo:
        """optimize as a background job: returns its id at once; poll job_status, then job_result."""
        return optimize_job(task, agent, device, max_minutes, budget, out).info()

    @server.tool()
    def start_package(source: str, name: str, out: str, task: Optional[str] = None, device: str = "auto",
                      allow_slower: bool = False) -> JobInfo:
        """package as a background job: returns its id at once; poll job_status, then job_result."""
        return package_job(source, name, out, task, device, allow_slower).info()

    @server.tool()
    def job_status(job_id: str) -> JobInfo:
        """A job's state (queued, running, done, failed), seconds and latest progress lines."""
        return jobs.get(job_id).info()

    @server.tool()
    def job_result(job_id: str) -> dict[str, Any]:
        """A finished job's result: the same object its tool (verify, bench, optimize, package) returns."""
        return result_of(jobs.get(job_id)).model_dump()

    @server.tool(name="read_run")
    def read_run_tool(out: str) -> RunOutput:
        """An optimize run directory: summary.json, the verdict against the fastest baseline, best.py's
        source, and every candidate with its latest verification."""
        return read_run(allowed.check(out, "run directory"))

    return server


def serve(transport: str = "stdio", *, port: int = 8000, roots: list[str | Path] | None = None) -> None:
    """Run the server until the client goes away (stdio) or the process is stopped (streamable-http)."""
    if transport not in ("stdio", "streamable-http"):
        raise UsageError(f"Unknown transport {transport}; use stdio or streamable-http.")
    server = build_server(roots, port=port)
    if transport == "streamable-http":
        server.run("streamable-http")
        return
    import anyio

    anyio.run(_serve_stdio, server)


async def _serve_stdio(server) -> None:
    """stdio with the protocol on a private copy of stdout: fd 1 becomes stderr, so a stray print (from a
    library, a compiler or a child process) lands in the log instead of corrupting the JSON-RPC stream."""
    from io import TextIOWrapper

    import anyio
    from mcp.server.stdio import stdio_server

    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = anyio.wrap_file(TextIOWrapper(protocol, encoding="utf-8", line_buffering=True))
    low = server._mcp_server  # FastMCP.run_stdio_async offers no stdout argument
    async with stdio_server(stdout=out) as (read_stream, write_stream):
        await low.run(read_stream, write_stream, low.create_initialization_options())
