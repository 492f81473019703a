"""The command line: parse, call one library function, render with rich. No logic lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

try:  # the click that typer raises: vendored as typer.core._click in recent typer, the package before
    from typer.core import _click as click
except ImportError:  # typer < 0.2x imports the `click` package itself
    import click

from kernelwright.errors import KernelwrightError
from kernelwright.sandbox.runner import Limits


# click's Abort (Ctrl-C at a prompt); typer's vendored click has none: an empty tuple catches nothing
_ABORT = getattr(click.exceptions, "Abort", ())


class _Commands(TyperGroup):
    """A usage error (a missing argument, an unknown option) prints as every other error does, `error: ...`
    with exit 2, not in typer's `Error` box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `kernelwright`: the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "kernelwright"
            errors.print(f"[bold red]error:[/] {escape(exc.format_message())} (see `{escape(command)} --help`)",
                         highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except click.exceptions.ClickException as exc:
            errors.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except _ABORT:
            errors.print("aborted", markup=False, highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(help="kernelwright: verify, benchmark and search GPU kernels for PyTorch operators.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=_Commands)
console = Console()
errors = Console(stderr=True)


@app.callback()
def _main(ctx: typer.Context) -> None:
    # Every command may start candidate processes: on SIGINT/SIGTERM/SIGHUP they die before we exit.
    from kernelwright.sandbox.reaper import install_signal_handlers, restore_signal_handlers

    previous = install_signal_handlers()
    ctx.call_on_close(lambda: restore_signal_handlers(previous))  # a caller's own handlers come back


def _heartbeat(line: str) -> None:
    errors.print(line, markup=False, highlight=False)


DEVICE_HELP = "auto (a GPU if visible), cpu (Triton interpreter: correctness only) or cuda[:N]"


def _fail_usage(exc: KernelwrightError) -> None:
    # soft_wrap: a command inside the sentence is never broken across lines
    errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


# the executor's options, for every command whose units it runs (eval's units, autopilot's targets)
EXECUTOR_HELP = ("where units run: local (slots on this host) or ray[:ADDRESS] (a Ray cluster; "
                 "pip install 'kernelwright\\[ray]')")
GPUS_HELP = "local executor: the GPUs to use, e.g. 0,1 (default every visible GPU); each unit is pinned to one"
OPTIMIZE_GPUS_HELP = ("the GPUs to use, e.g. 0,1 (default one: --device's); the first times every benchmark, the "
                      "others verify the offline agent's later probes beside it (LLM agents: one GPU)")
WORKERS_HELP = ("local executor: units at once (default one per GPU, 1 on the CPU); extra workers share GPUs, their "
                "benchmarks take turns")
WIDE_HELP = "the full table even when it is wider than the terminal (default: one block per row when narrow)"


@app.command()
def tasks(wide: bool = typer.Option(False, "--wide", help=WIDE_HELP)) -> None:
    """List the bundled tasks with their knobs, benchmark shapes and dtypes."""
    from kernelwright.tables import render
    from kernelwright.tasks import bundled_names, load_task

    rows = []
    try:
        for name in bundled_names():
            t = load_task(name)
            shapes = "; ".join("×".join(str(v) for v in s.values()) for s in t.shapes) or "default"
            rows.append([escape(cell) for cell in (name, t.description, ", ".join(f"{k}={v}" for k, v in t.knobs.items()),
                                                   shapes, ", ".join(t.dtype_names))])
    except KernelwrightError as exc:
        _fail_usage(exc)
    render(console, "bundled tasks", ["name", "description", "knobs (default)", "benchmark shapes", "dtypes"], rows,
           wide=wide)


@app.command()
def verify(
    task: str = typer.Argument(..., help="a task file or a bundled task name (see `kernelwright tasks`)"),
    candidate: Path = typer.Argument(..., help="a Python file defining `class ModelNew(nn.Module)`"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON (schema kernelwright.verify/1)"),
    timeout: float = typer.Option(Limits.timeout_s, help="seconds the candidate process may run"),
    memory_mb: int = typer.Option(Limits.memory_mb, help="host memory (RSS, MB) the candidate process may use"),
    shapes: int = typer.Option(8, min=1, help="how many shapes to draw from the task's knobs"),
    sanitize: bool = typer.Option(False, "--sanitize", help="also run one case under compute-sanitizer "
                                                            "(memcheck, racecheck); needs a GPU"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
) -> None:
    """Check a candidate on many shapes, dtypes and inputs. Exit 0 accepted, 1 rejected, 2 usage error."""
    from kernelwright.verify import verify as run_verify

    try:
        result = run_verify(task, candidate, device=device, limits=Limits(timeout, memory_mb), shapes=shapes,
                            sanitize=sanitize, progress=_heartbeat)
    except KernelwrightError as exc:
        _fail_usage(exc)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        _render_verify(result, wide)
    raise typer.Exit(0 if result.accepted else 1)


def _render_verify(result, wide: bool = False) -> None:
    from kernelwright.tables import render

    rows = [[escape(name), str(tally["passed"]), f"[red]{tally['failed']}[/]" if tally["failed"] else "0"]
            for name, tally in result.checks.items()]
    render(console, f"verify {result.task} ← {Path(result.candidate).name} on {result.device}",
           ["check", "passed", "failed"], rows, wide=wide, right=("passed", "failed"))
    shown = {}
    for f in result.failures:
        shown.setdefault(f["check"], []).append(f)
    for check, items in shown.items():
        first = items[0]
        case = first.get("case") or {}
        repro = ", ".join(f"{k}={case[k]}" for k in ("knobs", "dtype", "distribution", "seed") if k in case)
        more = f" (and {len(items) - 1} more case(s))" if len(items) > 1 else ""
        console.print(f"[red]✗ {escape(check)}[/]: {escape(str(first['message']))}{more}", highlight=False)
        if repro:
            console.print(f"    reproducer: {repro}", markup=False, highlight=False)
    if result.log_tail and not result.accepted:
        console.print("[dim]candidate process log (tail):[/]")
        console.print(result.log_tail[-1500:], markup=False, highlight=False)
    if not result.environment.get("network_isolated", True):
        console.print(f"[yellow]note:[/] {escape(str(result.environment.get('isolation_note')))}", highlight=False)
    skipped = [c for c in result.cases if c.get("skipped")]
    if skipped:
        console.print(f"[yellow]note:[/] {len(skipped)} case(s) skipped, outside the task's own domain: "
                      + escape(f"{skipped[0]['skipped']} (knobs {skipped[0]['knobs']})"), highlight=False)
    verdict = "[bold green]ACCEPTED[/]" if result.accepted else "[bold red]REJECTED[/]"
    console.print(f"{verdict} after {len(result.cases) - len(skipped)} cases in {result.seconds:.1f} s")


@app.command()
def bench(
    task: str = typer.Argument(..., help="a task file or a bundled task name"),
    candidate: Path = typer.Argument(..., help="a Python file defining `class ModelNew(nn.Module)`"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    dtype: Optional[str] = typer.Option(None, help="dtype to time (default: the task's first DTYPES entry)"),
    sweep: bool = typer.Option(False, "--sweep", help="every shape in the task's SHAPES (or a size ladder); "
                                                      "writes CSV, JSON and a PNG to --out"),
    out: Optional[Path] = typer.Option(None, help="directory for CSV/JSON/PNG (default with --sweep: bench-TASK)"),
    baselines: Optional[str] = typer.Option(None, help="comma-separated subset of eager,native,compile,peers "
                                                       "(default: all on a GPU, eager,native on the CPU)"),
    plot: bool = typer.Option(True, help="draw the GB/s-against-size PNG when writing files"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON (schema kernelwright.bench/1)"),
    timeout: float = typer.Option(Limits.timeout_s, help="seconds the candidate process may run"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
) -> None:
    """Time a candidate against the baselines with device events; exit 1 if it fails the re-check."""
    from kernelwright.bench.bencher import bench as run_bench
    from kernelwright.bench.report import write

    try:
        result = run_bench(task, candidate, device=device, dtype=dtype, limits=Limits(timeout_s=timeout),
                           baseline_kinds=baselines, sweep=sweep, progress=_heartbeat)
        out = out or (Path(f"bench-{result.task}") if sweep else None)
        written = write(result, out, plot=plot) if out else []
    except KernelwrightError as exc:
        _fail_usage(exc)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        _render_bench(result, wide)
        for path in written:
            console.print(f"wrote {path}", markup=False, highlight=False)
    raise typer.Exit(0 if result.ok else 1)


# why a CPU bench has no compile column (the default baselines there are eager and native)
NO_COMPILE_ON_CPU = ("no compile column: torch.compile is not a default baseline on the CPU, where Triton runs "
                     "through its interpreter and no timing is meaningful, so compiling would cost time for nothing; "
                     "add it with --baselines eager,native,compile")


def _render_bench(result, wide: bool = False) -> None:
    from kernelwright.tables import render

    rows = result.rows
    names = [n for n in (rows[0]["timings"] if rows else {}) if n not in ("candidate", "candidate_repeat")]
    columns = ["shape", "dtype", "candidate ms (IQR)", "again ms", *[f"{n} ms" for n in names], "best baseline ×",
               "GB/s", "% copy", "bound", "re-check"]
    cells = []
    for row in rows:
        t = row["timings"]
        frac = row["fraction_of_copy"]
        best = row["fastest_baseline"]
        cells.append([
            escape("×".join(str(v) for v in row["knobs"].values())), escape(row["dtype"]),
            f"{t['candidate']['median_ms']:.4f} ({t['candidate']['iqr_ms']:.4f})", f"{t['candidate_repeat']['median_ms']:.4f}",
            *[f"{t[n]['median_ms']:.4f}" if n in t else "–" for n in names],
            escape(f"{row['speedup'][best]:.2f} vs {best}") if best else "–", f"{row['gbps']:.1f}",
            f"{100 * frac:.1f}" if frac else "–", escape(row["bound"]),
            "[green]ok[/]" if row["recheck"]["passed"] else "[red]FAILED[/]"])
    render(console, f"bench {result.task} ← {Path(result.candidate).name} on {result.environment.get('device_name')}",
           columns, cells, key=2, wide=wide, right=tuple(columns[2:]))
    if rows and result.device == "cpu" and "compile" not in names:
        console.print(NO_COMPILE_ON_CPU, style="dim", markup=False, highlight=False)
    for row in rows:
        for name, note in row["notes"].items():
            console.print(escape(f"{name}: {note}"), style="dim", highlight=False)
    if result.ceilings:
        c = result.ceilings
        console.print(f"measured ceilings: copy {c['copy_gbps']:.0f} GB/s (read + write), read {c['read_gbps']:.0f} GB/s",
                      markup=False, highlight=False)
    if not result.timings_meaningful:
        console.print("[yellow]timings are NOT meaningful:[/] the CPU runs Triton through its interpreter; "
                      "run on a GPU for numbers.")
    for f in result.failures:
        console.print(f"[red]✗ {escape(str(f['check']))}[/]: {escape(str(f['message']))}", highlight=False)
    if result.log_tail and not result.ok:
        console.print(result.log_tail[-1500:], markup=False, highlight=False)


@app.command()
def device(
    device_name: str = typer.Option("cuda", "--device", help="the GPU to measure (cuda or cuda:N)"),
    refresh: bool = typer.Option(False, help="measure again even if this GPU, driver and torch are cached"),
    as_json: bool = typer.Option(False, "--json", help="print the profile as JSON"),
) -> None:
    """Measure (once, then cached) the GPU's copy and read bandwidth and matmul rates, beside its datasheet."""
    from kernelwright.bench.device import cache_dir, datasheet, profile

    try:
        measured = profile(device_name, refresh=refresh)
    except KernelwrightError as exc:
        _fail_usage(exc)
    sheet = datasheet(measured.device_name) or {}
    if as_json:
        print(json.dumps({**measured.as_dict(), "datasheet": sheet}, indent=2))
        return
    table = Table(title=escape(f"{measured.device_name} (driver {measured.driver}, torch {measured.torch})"))
    for column in ("ceiling", "measured", "datasheet", "measured / datasheet"):
        table.add_column(column, justify="right")
    rows = [("copy GB/s (read + write)", measured.copy_gbps, sheet.get("memory_gbps")),
            ("read GB/s", measured.read_gbps, sheet.get("memory_gbps")),
            *[(f"{k} matmul TFLOP/s", v, sheet.get(k)) for k, v in measured.matmul_tflops.items()]]
    for name, value, spec in rows:
        table.add_row(name, f"{value:.1f}", f"{spec:.1f}" if spec else "–", f"{value / spec:.0%}" if spec else "–")
    console.print(table)
    console.print(f"cached in {cache_dir()}", markup=False, highlight=False)


@app.command()
def optimize(
    task: str = typer.Argument(..., help="a task file or a bundled task name"),
    agent: str = typer.Option("offline", help="offline (no key, no network) or anthropic:MODEL, openai:MODEL, "
                                              "openai-compatible:URL:MODEL, replay:RUN_DIR"),
    budget: Optional[int] = typer.Option(None, help="offline: tuning rounds on a GPU at most (default 10; the CPU "
                                                    "tunes nothing); LLM agents: candidates (default 24)"),
    out: Optional[Path] = typer.Option(None, help="run directory (default kernelwright-runs/TASK); the same "
                                                  "directory resumes a killed run"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    gpus: Optional[str] = typer.Option(None, help=OPTIMIZE_GPUS_HELP),
    max_tokens: Optional[int] = typer.Option(None, help="LLM agents: stop after this many tokens in all"),
    max_dollars: Optional[float] = typer.Option(None, help="LLM agents: stop after this many dollars"),
    max_minutes: Optional[float] = typer.Option(None, help="time budget: offline, the run ends within it plus a tenth "
                                                           "(default 3; 0: no limit); LLM agents stop after it "
                                                           "(default no limit)"),
    samples: int = typer.Option(4, min=1, help="LLM agents: writer samples per round"),
    rounds: int = typer.Option(6, min=1, help="LLM agents: rounds of refinement at most"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON (schema kernelwright.optimize/1); "
                                                       "progress goes to stderr"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
) -> None:
    """Search, verify and tune kernels for a task; keep the best as OUT/best.py. Exit 0 a verified kernel (one
    slower than its fastest baseline is reported in the verdict, not an error), 1 op not covered or nothing
    verified, 2 usage error."""
    from kernelwright.run import OptimizeLimit, optimize as run_optimize
    from kernelwright.search.report import render_optimize

    log = errors if as_json else console
    try:
        with log.status("starting") as status:
            result = run_optimize(task, agent=agent, budget=budget, out=out, device=device, minutes=max_minutes,
                                  tokens=max_tokens, dollars=max_dollars, samples=samples, rounds=rounds, gpus=gpus,
                                  report=lambda msg: (status.update(escape(msg)),
                                                      log.log(msg, highlight=False, markup=False)))
    except OptimizeLimit as exc:
        errors.print(f"[bold red]not covered:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    except KernelwrightError as exc:
        _fail_usage(exc)
    if as_json:
        print(json.dumps(result.as_json(), indent=2, default=str))
    else:
        render_optimize(console, result, wide)
    raise typer.Exit(0 if result.accepted else 1)


@app.command()
def package(
    source: Path = typer.Argument(..., help="a candidate file, or an optimize run directory holding best.py"),
    name: str = typer.Option(..., help="kernel name: lowercase letters, digits and dashes (e.g. rmsnorm-triton)"),
    out: Path = typer.Option(..., help="directory to create (must not exist, or be empty)"),
    task: Optional[str] = typer.Option(None, help="task file or bundled name (default: from the run's results or "
                                                  "the candidate's file name)"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    allow_slower: bool = typer.Option(False, "--allow-slower", help="package a run whose best kernel is slower "
                                                                    "than its fastest baseline"),
) -> None:
    """Verify a candidate and write a Hugging Face `kernels` repository. Exit 0 written, 1 candidate rejected
    or slower than its fastest baseline (nothing written), 2 usage error (nothing written)."""
    from kernelwright.package import CandidateRejected, SlowerThanBaseline, package as run_package

    try:
        result = run_package(source, name=name, out=out, task=task, device=device, allow_slower=allow_slower)
    except SlowerThanBaseline as exc:
        errors.print(f"[bold red]not packaged:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    except CandidateRejected as exc:
        errors.print(f"[bold red]rejected:[/] {escape(str(exc))}", highlight=False)
        for failure in exc.result.failures[:5]:
            errors.print(f"  ✗ {failure['check']}: {failure['message']}", markup=False, highlight=False)
        raise typer.Exit(1)
    except KernelwrightError as exc:
        _fail_usage(exc)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
        return
    layer = (f"layer `{result.layer}` for key `{result.layer_key}`" if result.layer else
             "functions only: the task names no REPLACES, so no layer to kernelize")
    console.print("[bold green]packaged[/] " + escape(f"{result.name} → {result.path}  (id {result.kernel_id or 'set at build'}, "
                  f"function `{result.function}`, {layer})"), highlight=False)
    console.print(f"  verified on {result.verification['environment'].get('device_name')}; see "
                  f"{result.path / 'CARD.md'}", markup=False, highlight=False)
    for note in result.notes:
        console.print(f"  [yellow]note:[/] {escape(str(note))}", highlight=False)


@app.command()
def mcp(
    transport: str = typer.Option("stdio", help="stdio (a client starts the server) or streamable-http"),
    port: int = typer.Option(8000, help="streamable-http: the port on 127.0.0.1"),
    root: Optional[list[Path]] = typer.Option(None, "--root", help="a directory the tools may read and write "
                                                                   "under (repeatable; default: the working directory)"),
) -> None:
    """Serve kernelwright's tools (verify, bench, optimize, package, ...) to coding agents over the Model
    Context Protocol. Needs the extra: pip install 'kernelwright\\[mcp]'."""
    from kernelwright.mcp_server import serve

    try:
        if transport == "streamable-http":
            errors.print(escape(f"kernelwright MCP server on http://127.0.0.1:{port}/mcp, roots "
                                f"{', '.join(map(str, root or [Path.cwd()]))}"), highlight=False)
        serve(transport, port=port, roots=root)
    except KernelwrightError as exc:
        _fail_usage(exc)


@app.command()
def e2e(
    model: str = typer.Option("qwen3", help="llama or qwen3 (built from a config, random weights)"),
    size: str = typer.Option("small", help="small (CPU-friendly) or 8b-shape (Llama-3-8B / Qwen3-8B shapes)"),
    kernel: Optional[Path] = typer.Option(None, help="a repository written by `kernelwright package`"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    dtype: Optional[str] = typer.Option(None, help="bfloat16 (GPU default), float16 or float32 (CPU default)"),
    out: Path = typer.Option(Path("runs/e2e"), help="directory for e2e.json, e2e.csv and e2e.png"),
    compile: bool = typer.Option(True, "--compile/--no-compile", help="also time torch.compile variants"),
    layers: Optional[int] = typer.Option(None, help="override the number of decoder layers"),
    reps: Optional[int] = typer.Option(None, help="timed repetitions per measurement"),
    tokens: Optional[int] = typer.Option(None, help="prompt length (default: 32 small, 2048 8b-shape)"),
) -> None:
    """Kernelize a transformers model with a packaged layer: logits check, prefill/decode latency, share of
    time in the replaced ops. Exit 1 if the logits check fails."""
    from kernelwright.package.e2e import run_e2e

    try:
        result = run_e2e(model, size, kernel=kernel, device=device, dtype=dtype, out=out, compile=compile,
                         layers=layers, reps=reps, prompt=(1, tokens) if tokens else None,
                         progress=lambda line: console.print(line, style="dim", markup=False, highlight=False))
    except KernelwrightError as exc:
        _fail_usage(exc)
    table = Table(title=escape(f"e2e {model} {size} {result.dtype} on {result.environment.get('device_name')}"))
    for column in ("variant", "phase", "median ms", "× eager", "replaced share"):
        table.add_column(column, justify="right")
    eager = {r["phase"]: r["median_ms"] for r in result.rows if r["variant"] == "eager"}
    for r in result.rows:
        share = result.shares.get(r["variant"], {}).get(r["phase"])
        table.add_row(escape(r["variant"]), escape(r["phase"]), f"{r['median_ms']:.3f}", f"{eager[r['phase']] / r['median_ms']:.2f}",
                      f"{100 * share:.1f}%" if share is not None else "–")
    console.print(table)
    for phase, a in result.amdahl.items():
        console.print(f"{phase}: replaced ops took {100 * a['share_eager']:.1f}% of eager time; op speedup "
                      f"{a['op_speedup']:.2f}× → Amdahl predicts {a['predicted_speedup']:.3f}×, measured "
                      f"{a['measured_speedup']:.3f}× (ceiling {a['ceiling']:.3f}×)", markup=False, highlight=False)
    check = result.logits_check
    if check:
        verdict = "[green]ok[/]" if check["passed"] else "[red]FAILED[/]"
        console.print(f"logits vs eager: rel L2 {check['rel_l2']:.2e} (tolerance {check['tolerance']:.0e}), "
                      f"{check['kernel_calls']} kernel call(s) in one prefill: {verdict}", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(str(note))}", highlight=False)
    console.print(f"wrote {out / 'e2e.json'}, {out / 'e2e.csv'}, {out / 'e2e.png'}", markup=False, highlight=False)
    raise typer.Exit(1 if check and not check["passed"] else 0)


@app.command("profile")
def profile_(
    model: str = typer.Option("qwen3", help="llama or qwen3 (random weights, with --size), or a transformers config "
                                            "file or model directory"),
    size: str = typer.Option("small", help="small (CPU-friendly) or 8b-shape (Llama-3-8B / Qwen3-8B shapes)"),
    phase: str = typer.Option("prefill", help="prefill (one forward over the prompt) or decode (one token "
                                              "against a KV cache of --seq tokens)"),
    batch: int = typer.Option(1, help="sequences per step"),
    seq: Optional[int] = typer.Option(None, help="prompt tokens (default: 32 small, 2048 8b-shape)"),
    dtype: Optional[str] = typer.Option(None, help="bfloat16 (GPU default), float16 or float32 (CPU default)"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    layers: Optional[int] = typer.Option(None, help="override the number of decoder layers"),
    steps: Optional[int] = typer.Option(None, help="profiled warm steps (default 10 on a GPU, 3 on the CPU)"),
    top: int = typer.Option(15, help="rows shown (the JSON has all) and tasks emitted at most"),
    out: Path = typer.Option(Path("runs/profile"), help="directory for profile.json and trace.json (Chrome trace)"),
    emit_tasks: Optional[Path] = typer.Option(None, "--emit-tasks", help="write a task file per top memory-bound "
                                                                         "module here"),
    compare: Optional[tuple[Path, Path]] = typer.Option(None, "--compare", help="A.json B.json: per op, time "
                                                                                 "before and after (runs nothing)"),
    kernel: Optional[list[Path]] = typer.Option(None, "--kernel", help="profile the model kernelized with this "
                                                                       "`kernelwright package` repository "
                                                                       "(repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON (schema kernelwright.profile/1)"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
) -> None:
    """Profile a model's prefill or decode: every op attributed to the module that issued it, ranked by what the
    model would gain if it ran at the measured roofline. Exit 0, 2 usage error."""
    from kernelwright.profile.report import render_compare, render_profile
    from kernelwright.profile.run import compare_files, profile_model

    try:
        if compare:
            diff = compare_files(*compare)
            if as_json:
                print(json.dumps(diff["rows"], indent=2))
            else:
                render_compare(console, diff["rows"], diff["before"], diff["after"], top=max(top, 1), wide=wide)
            return
        result, _ = profile_model(model, size, phase=phase, batch=batch, seq=seq, dtype=dtype, device=device,
                                  layers=layers, steps=steps, out=out, emit_tasks=emit_tasks, top=top,
                                  kernels=kernel, progress=lambda line: errors.print(line, style="dim", markup=False, highlight=False))
    except KernelwrightError as exc:
        _fail_usage(exc)
    if as_json:
        print(json.dumps(result.as_json(), indent=2, default=str))
    else:
        render_profile(console, result.as_json(), top=top, wide=wide)


@app.command()
def autopilot(
    model: str = typer.Argument("qwen3", help="llama or qwen3 (random weights, with --size), or a transformers config "
                                              "file or model directory"),
    size: str = typer.Option("small", help="small (CPU-friendly) or 8b-shape"),
    top: int = typer.Option(3, help="targets to optimize at most (the top memory- or launch-bound modules)"),
    only: Optional[str] = typer.Option(None, help="comma-separated module classes or modeling functions to target "
                                                  "(e.g. Qwen3RMSNorm,apply_rotary_pos_emb), no others"),
    agent: str = typer.Option("offline", help="the agent optimize uses (see `kernelwright optimize --help`)"),
    max_minutes: Optional[float] = typer.Option(None, help="the whole optimize budget, split over the targets "
                                                           "(default: optimize's own for each)"),
    out: Path = typer.Option(Path("runs/autopilot"), help="run directory; the same directory resumes"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    phase: str = typer.Option("prefill", help="prefill or decode: the phase profiled and measured"),
    seq: Optional[int] = typer.Option(None, help="prompt tokens (default: 32 small, 2048 8b-shape)"),
    layers: Optional[int] = typer.Option(None, help="override the number of decoder layers"),
    dtype: Optional[str] = typer.Option(None, help="bfloat16 (GPU default), float16 or float32 (CPU default)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON (schema kernelwright.autopilot/1)"),
    executor: str = typer.Option("local", help=EXECUTOR_HELP),
    gpus: Optional[str] = typer.Option(None, help=GPUS_HELP),
    workers: Optional[int] = typer.Option(None, help=WORKERS_HELP),
) -> None:
    """Profile a model, turn its top memory-bound modules and modeling functions into tasks, optimize them, package the kernels that beat
    their fastest baseline, kernelize the model with all of them and compare the end-to-end speedup with Amdahl's
    prediction; writes OUT/autopilot.md. Exit 0, 1 logits mismatch, 2 usage error."""
    from kernelwright.profile.autopilot import autopilot as run_autopilot

    try:
        result = run_autopilot(model, size, top=top, agent=agent, minutes=max_minutes, device=device, out=out,
                               phase=phase, seq=seq, layers=layers, dtype=dtype,
                               only=set(only.split(",")) if only else None, executor=executor, gpus=gpus,
                               workers=workers,
                               progress=lambda line: errors.print(line, style="dim", markup=False, highlight=False))
    except KernelwrightError as exc:
        _fail_usage(exc)
    if as_json:
        print(json.dumps(result.as_json(), indent=2, default=str))
    else:
        console.print(Path(result.report).read_text(), markup=False, highlight=False, soft_wrap=True)
        console.print(f"wrote {result.report} and {result.page}", markup=False, highlight=False)
    check = result.e2e.get("logits") if result.e2e else None
    raise typer.Exit(1 if check and not check["passed"] else 0)


@app.command("eval")
def eval_(
    suite: str = typer.Option(..., help="bundled, a directory of task files, a KernelBench level directory, or an "
                                        "Agent Skills evals.json (or a skill folder holding evals/evals.json)"),
    agent: list[str] = typer.Option(..., help="offline, an LLM agent of optimize, or 'cmd:TEMPLATE' (an external "
                                             "coding agent; {prompt}, {task}, {workspace} are filled in); repeatable"),
    skill: Optional[list[str]] = typer.Option(None, help="cmd agents: a bundled skill installed in the workspace, or "
                                                         "none (repeatable; default none)"),
    runs: int = typer.Option(1, help="runs of every (agent, skill, task)"),
    out: Path = typer.Option(Path("kernelwright-evals"), help="eval directory; the same directory resumes"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    max_minutes: Optional[float] = typer.Option(None, help="per unit: optimize's time budget; cmd agents' timeout "
                                                           "(default 30)"),
    only: Optional[list[str]] = typer.Option(None, help="only these tasks: file names without .py or KernelBench "
                                                        "numbers (repeatable)"),
    kinds: Optional[list[str]] = typer.Option(None, help="only tasks of this kind: memory-bound, compute-bound or "
                                                         "unknown, by FLOPs per byte (repeatable)"),
    max_dollars: Optional[float] = typer.Option(None, help="start no unit once the recorded cost reaches this many "
                                                           "dollars (the rest are listed as skipped-for-budget)"),
    executor: str = typer.Option("local", help=EXECUTOR_HELP),
    gpus: Optional[str] = typer.Option(None, help=GPUS_HELP),
    workers: Optional[int] = typer.Option(None, help=WORKERS_HELP),
    as_json: bool = typer.Option(False, "--json", help="print results.json (schema kernelwright.eval/1)"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
) -> None:
    """Run a suite (bundled, a folder of task files, or an evals.json) through agents (and skills), verified and
    benchmarked by kernelwright; write OUT/results.csv, OUT/results.json and OUT/report.html. Exit 0 when it ran
    (whatever the scores), 2 usage error."""
    from kernelwright.evals import run_eval

    log = errors if as_json else console
    try:
        results = run_eval(suite, agent, skills=skill, runs=runs, out=out, device=device, minutes=max_minutes,
                           only=only, kinds=kinds, max_dollars=max_dollars, executor=executor, gpus=gpus, workers=workers,
                           report=lambda msg: log.log(msg, highlight=False, markup=False))
    except KernelwrightError as exc:
        _fail_usage(exc)
    if as_json:
        print(json.dumps(results, indent=2, default=str))
        return
    _render_eval(results, wide)
    unfinished = [u for u in results["units"] if str(u.get("status", "")).endswith("-failure")]
    if unfinished:  # a dead worker or node: no verdict, and not in the table; a rerun redoes exactly these
        console.print(f"{len(unfinished)} unit(s) not finished (worker, GPU or node failure, or a kernelwright error; "
                      "see their notes): run the same command again to redo only them", markup=False, highlight=False)
    console.print(f"wrote {out / 'results.csv'}, {out / 'results.json'} and {out / 'report.html'}", markup=False,
                  highlight=False)


@app.command("report")
def report_(
    eval_dir: Path = typer.Argument(..., metavar="EVAL_DIR|RUN_DIR", help="an eval's --out folder (results.json) "
                                                                         "or an optimize run's (run.sqlite)"),
    out: Optional[Path] = typer.Option(None, "--out", help="the HTML file to write (default DIR/report.html)"),
) -> None:
    """Write the HTML report of an eval (leaderboard, fast_p, cost, tasks, skill lift, each run) or of one optimize
    run (trajectory, lineage, rejections): one self-contained file, inline CSS and SVG, nothing fetched. Exit 2
    when the folder holds neither."""
    from kernelwright.evals.report import write_report

    try:
        path = write_report(eval_dir, out)
    except KernelwrightError as exc:
        _fail_usage(exc)
    console.print(f"wrote {path}", markup=False, highlight=False)


def _num(value, fmt: str = "{:.2f}") -> str:
    return "?" if value is None else fmt.format(value)


def _render_eval(results: dict, wide: bool) -> None:
    from kernelwright.tables import render

    columns = ["agent", "skill", "correct", "fast_1 eager", "fast_1 compile", "geomean vs eager",
               "geomean vs compile", "tokens", "dollars", "wall s"]
    rows = []
    for group in results["aggregates"]:
        totals = group["totals"]
        rows.append([escape(str(v)) for v in (
            group["agent"], group["skill"], f"{group['correct']}/{group['units']}",
            _num(group["fast_p_eager"]["1.0"]), _num(group["fast_p_compile"]["1.0"]),
            _num(group["geomean_speedup_eager"]), _num(group["geomean_speedup_compile"]),
            _num(totals["tokens"], "{}"), _num(totals["dollars"], "{:.4f}"), _num(totals["wall_s"], "{:.0f}"))])
    render(console, f"eval of {results['suite']}", columns, rows, key=2, wide=wide,
           right=tuple(columns[2:]))
    if not results["environment"]["timings_meaningful"]:
        console.print("timings not meaningful on a CPU: only correctness is scored (? = unknown)", markup=False,
                      highlight=False)
    skipped = sum(1 for u in results["units"] if u.get("status") == "skipped-for-budget")
    if skipped:
        console.print(f"{skipped} units not started: the --max-dollars budget was reached (a rerun with a larger "
                      "one runs them)", markup=False, highlight=False)


skills_app = typer.Typer(help="Agent Skills for Claude Code, Codex and OpenCode: install the bundled ones.",
                         no_args_is_help=True)
app.add_typer(skills_app, name="skills")


@skills_app.command("add")
def skills_add(
    claude: bool = typer.Option(False, "--claude", help="Claude Code: .claude/skills (--global: ~/.claude/skills, "
                                                        "or $CLAUDE_CONFIG_DIR/skills)"),
    codex: bool = typer.Option(False, "--codex", help="Codex: .agents/skills (--global: ~/.agents/skills)"),
    opencode: bool = typer.Option(False, "--opencode", help="OpenCode: .opencode/skills (--global: "
                                                            "~/.config/opencode/skills)"),
    dest: Optional[Path] = typer.Option(None, "--dest", help="any other directory to install the skill folders into"),
    global_: bool = typer.Option(False, "--global", help="the user's skills folder instead of this project's"),
    skill: Optional[list[str]] = typer.Option(None, "--skill", help="only this bundled skill (repeatable; default all)"),
    force: bool = typer.Option(False, "--force", help="replace skills that are already installed"),
) -> None:
    """Copy the bundled skills (no network) into each agent's skills folder. Exit 2 with nothing written when
    no target is given or a skill is already there without --force."""
    from kernelwright import skills

    agents = [a for a, on in (("claude", claude), ("codex", codex), ("opencode", opencode)) if on]
    try:
        installed = skills.add(agents, dest, global_=global_, skills=skill, force=force)
    except KernelwrightError as exc:
        _fail_usage(exc)
    for item in installed:
        console.print(f"installed {item.skill} → {item.path} ({item.files} files)", markup=False, highlight=False)


@skills_app.command("list")
def skills_list() -> None:
    """Show the bundled skills and where each agent looks for skills."""
    from kernelwright import skills

    table = Table(title="bundled skills")
    for column in ("skill", "description"):
        table.add_column(column, overflow="fold")
    for name in skills.bundled_names():
        table.add_row(escape(name), escape(skills.description(name)))
    console.print(table)
    # plain lines, not a table: a folded path cannot be copied
    console.print("where each agent looks (project folder; with --global):", markup=False, highlight=False)
    for agent in skills.AGENTS:
        console.print(f"  --{agent}: {skills.agent_dir(agent, global_=False)}; {skills.agent_dir(agent, global_=True)}",
                      markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    app()
