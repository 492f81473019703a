"""``kernelwright autopilot``: profile a model, emit its top targets as tasks, optimize each, package the
kernels that beat their fastest baseline, kernelize the model with all of them, and put the measured
end-to-end speedup beside Amdahl's prediction from the profile.

Every stage writes under ``out`` and is skipped when its output is already there (``autopilot.json``
holds the decisions), so a killed run resumes: ``optimize`` resumes its own run directories. A target
whose kernel loses to its fastest baseline is reported and left out. On the CPU nothing is timed
meaningfully: kernels that verify are shipped for correctness only and no speedup is claimed.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.run.artifacts import atomic_write
from kernelwright.errors import KernelwrightError, UsageError
from kernelwright.hardware import resolve_device

SCHEMA = "kernelwright.autopilot/1"


@dataclass
class AutopilotResult:
    model: str
    size: str
    phase: str
    device: str
    out: Path
    targets: list[dict[str, Any]] = field(default_factory=list)  # task, share, optimize verdict, decision
    e2e: dict[str, Any] = field(default_factory=dict)  # eager/kernelized ms, logits check, predicted, measured
    notes: list[str] = field(default_factory=list)
    report: str | None = None  # autopilot.md
    page: str | None = None  # autopilot.html

    def as_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **{k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}}


def autopilot(model: str = "qwen3", size: str = "small", *, top: int = 3, agent: str = "offline",
              minutes: float | None = None, device: str = "auto", out: Path = Path("runs/autopilot"),
              phase: str = "prefill", seq: int | None = None, layers: int | None = None, dtype: str | None = None,
              only: set[str] | None = None, executor: str = "local", gpus: str | None = None,
              workers: int | None = None, progress=None) -> AutopilotResult:
    """Run every stage into ``out`` (the same ``out`` resumes). ``minutes``: the whole optimize budget, split
    over the waves in which the targets run side by side on the executor's slots (one per GPU by default: with
    two slots and three targets each gets half the budget; default: optimize's own per target). ``only``: the
    module classes or modeling functions to target."""
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}.")
    if minutes is not None and minutes <= 0:
        raise UsageError(f"--max-minutes must be positive, got {minutes}.")
    from kernelwright.profile.models import check_model

    check_model(model, size)
    say = progress or (lambda _msg: None)
    device = resolve_device(device)
    if not device.startswith("cuda"):  # the kernelized model runs the packaged Triton kernels through the interpreter,
        from kernelwright.package.e2e import _interpret_triton  # which must be on before anything imports Triton

        _interpret_triton()
    out = Path(out)
    result = AutopilotResult(model=model, size=size, phase=phase, device=device, out=out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        profile = _profile(model, size, top=top, device=device, out=out, phase=phase, seq=seq, layers=layers,
                           dtype=dtype, only=only, say=say)
        if device.startswith("cuda"):  # the profiled model's cached memory, back to the optimize runs' workers
            import torch

            torch.cuda.empty_cache()
        state = _load_state(out)
        tasks = sorted((out / "tasks").glob("*.py"))
        if not tasks:
            result.notes.append("The profile found no memory- or launch-bound module that could be written as a task; "
                                "nothing to optimize.")
        for task in tasks:
            state.setdefault(task.stem, {"task": str(task)})
        unfinished = _optimize_all(state, tasks, agent=agent, minutes=minutes, device=device, out=out,
                                   executor=executor, gpus=gpus, workers=workers, say=say)
        result.notes += unfinished
        for task in tasks:
            _package(state[task.stem], task, device=device, out=out, say=say)
            _save_state(out, state)
        result.targets = [_with_share(state[t.stem], profile) for t in tasks]
        shipped = [Path(t["package"]) for t in result.targets if t.get("decision") == "shipped"]
        if shipped:
            result.e2e = _end_to_end(model, size, shipped, profile, result.targets, device=device, phase=phase,
                                     layers=layers, say=say)
            result.e2e["profile_diff"] = _diff(model, size, shipped, profile, device=device, phase=phase,
                                               layers=layers, out=out, say=say)
    if not device.startswith("cuda"):
        result.notes.append("CPU run: correctness only. Kernels ran through Triton's interpreter; no timing here means "
                            "anything, so no kernel was judged against its baselines and no speedup is claimed.")
    result.report = str(write_report(result, profile))
    result.page = str(out / "autopilot.html")
    (out / "autopilot.json").write_text(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    from kernelwright.profile.autopilot_page import write_page

    write_page(json.loads((out / "autopilot.json").read_text()), profile, Path(result.page))
    return result


def _profile(model, size, *, top, device, out, phase, seq, layers, dtype, only, say) -> dict[str, Any]:
    from kernelwright.profile.run import load, profile_model

    path = out / "profile" / "profile.json"
    if path.is_file() and (out / "tasks").is_dir():
        say(f"profile: reusing {path}")
        return load(path)
    say("profile: running")
    result, _ = profile_model(model, size, phase=phase, seq=seq, dtype=dtype, device=device, layers=layers,
                              out=out / "profile", emit_tasks=out / "tasks", top=top, only=only, progress=say)
    return result.as_json()


def _diff(model, size, repos: list[Path], profile: dict, *, device, phase, layers, out, say) -> list[dict]:
    """The kernelized model profiled like the eager one, per op against it: what kernelize changed."""
    from kernelwright.profile.run import profile_model
    from kernelwright.profile.table import compare

    say("profile: the kernelized model")
    after, _ = profile_model(model, size, phase=phase, batch=profile["batch"], seq=profile["seq"],
                             dtype=profile["dtype"], device=device, layers=layers, out=out / "profile-kernelized",
                             kernels=repos, progress=say)
    return compare(profile, after.as_json())


def _load_state(out: Path) -> dict[str, dict[str, Any]]:
    path = out / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    atomic_write(out / "state.json", json.dumps(state, indent=2, default=str) + "\n")


def _optimize_all(state: dict, tasks: list[Path], *, agent, minutes, device, out, executor, gpus, workers,
                  say) -> list[str]:
    """Optimize every target not yet optimized, side by side on the executor (each target one unit, stored
    in ``out/units`` as it finishes); a note for each unit that did not finish (a dead worker: no verdict,
    redone by the next run of the same ``out``)."""
    from kernelwright.executor import ERROR, UnitStore, Work, execute, make_executor

    pending = [t for t in tasks if "optimize" not in state[t.stem] and "decision" not in state[t.stem]]
    store = UnitStore(out / "units")
    finished = {}
    if pending:
        pool = make_executor(executor, device=device, gpus=gpus, workers=workers)
        waves = math.ceil(len(tasks) / pool.capacity())  # three targets on two slots run in two waves
        per_task = minutes / waves if minutes else None
        works = [Work(t.stem, "kernelwright.profile.autopilot:optimize_target",
                      {"task": str(t), "agent": agent, "minutes": per_task, "device": pool.unit_device(device)},
                      out / "runs" / t.stem, files=("task",), log=out / "logs" / f"{t.stem}.log") for t in pending]
        say(f"optimize {len(pending)} target(s) with {agent} on {pool.describe()}")
        try:
            finished = execute(pool, works, store, report=say)
        finally:
            pool.close()
    notes = []
    for task in pending:
        if store.has(task.stem):
            state[task.stem].update(store.load(task.stem))
        elif finished.get(task.stem) is not None and finished[task.stem].failure == ERROR:
            # kernelwright's own refusal or error (a task that cannot fit, a Model that raises): a rerun would
            # end the same way, so it is a decision, not a retry
            state[task.stem].update(decision="left out", why=f"optimize failed: {finished[task.stem].message}")
        else:
            done = finished.get(task.stem)
            why = f"{done.failure} failure: {done.message}" if done is not None else "never run"
            notes.append(f"optimize of {task.stem} did not finish ({why}); run the same command again to redo it.")
    return notes


def optimize_target(out: str, *, task: str, agent: str, minutes: float | None, device: str) -> dict[str, Any]:
    """One target's optimize run into ``out`` (an executor unit, in whatever process runs it): the state
    entry's fields it decides."""
    from kernelwright.run import OptimizeLimit, optimize

    try:
        run = optimize(Path(task), agent=agent, out=Path(out), device=device, minutes=minutes)
    except OptimizeLimit as exc:
        return {"optimize": {"accepted": False, "message": str(exc)}, "decision": "left out",
                "why": f"not covered by {agent}: {exc}"}
    verdict = run.verdict or {}
    return {"optimize": {"accepted": run.accepted, "run": str(run.out), "status": verdict.get("status"),
                         "sentence": verdict.get("sentence"), "ratio_vs_fastest": verdict.get("ratio_geomean"),
                         "speedup_vs_eager": _eager_speedup(run.final_rows)}}


def _eager_speedup(rows: list[dict[str, Any]]) -> float | None:
    """Geomean over the final benchmark's shapes of the kernel's speedup over eager (what Amdahl needs: the
    model runs the eager module)."""
    ratios = [r["speedup"]["eager"] for r in rows or [] if (r.get("speedup") or {}).get("eager")]
    return math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None


def _package(entry: dict, task: Path, *, device, out, say) -> None:
    from kernelwright.package import package

    if "decision" in entry or "optimize" not in entry:  # decided, or its optimize did not finish
        return
    run = entry["optimize"]
    if not run["accepted"]:
        entry.update(decision="left out", why="no verified kernel")
        return
    if run["status"] == "slower":
        entry.update(decision="left out", why=f"lost to its fastest baseline: {run['sentence']}")
        return
    name = re.sub(r"[^a-z0-9]+", "-", task.stem.lower()).strip("-") + "-kw"
    repo = out / "kernels" / name
    say(f"package {name}")
    try:
        packaged = package(Path(run["run"]), name=name, out=repo, task=str(task), device=device)
    except KernelwrightError as exc:
        entry.update(decision="left out", why=f"not packaged: {exc}")
        return
    if not packaged.layer:  # a modeling function's task: no layer, so nothing to kernelize the model with
        entry.update(decision="packaged, not kernelized", package=str(repo),
                     why="functions only (the task names no REPLACES): no layer to swap into the model")
        return
    entry.update(decision="shipped", package=str(repo))


def _with_share(entry: dict, profile: dict) -> dict:
    """The target's share of the profiled step, from the profile's targets."""
    from kernelwright.tasks.task import import_file

    module = import_file(Path(entry["task"]), prefix="kw_autopilot")
    replaces = getattr(module, "REPLACES", None)
    # a modeling function's task names no REPLACES; it is written as <function>.py
    cls = replaces.rpartition(".")[2] if replaces else f"{Path(entry['task']).stem}()"
    target = next((t for t in profile["targets"] if t["module_class"] == cls), None)
    return {**entry, "module_class": cls, "share": target["share"] if target else None}


def _end_to_end(model, size, repos: list[Path], profile: dict, targets: list[dict], *, device, phase, layers,
                say) -> dict[str, Any]:
    """The model eager and kernelized with every shipped layer: latency of the profiled phase, logits against
    eager, and Amdahl's prediction from the profile's shares and each kernel's speedup over eager."""
    import torch

    from kernelwright.package.e2e import LOGITS_TOL, PROMPT, _op_calls, _timer, _workloads
    from kernelwright.package.kernelize import read_package, unkernelize
    from kernelwright.profile.models import load_model
    from kernelwright.profile.swap import kernelize_all

    dtype = profile["dtype"]
    net, config = load_model(model, size, device=device, dtype=getattr(torch, dtype), layers=layers)
    batch, seq = profile["batch"], profile["seq"] or PROMPT.get(size, (1, 32))[1]
    ids = torch.randint(0, int(config.get("vocab_size") or 32000), (batch, seq),
                        generator=torch.Generator().manual_seed(0)).to(device)
    reps = 20 if device.startswith("cuda") else 2
    timer = _timer(device)
    prefill, decode = _workloads(net, ids)
    fn = prefill if phase == "prefill" else decode
    say("e2e: eager")
    expected = prefill()[:, -1].float()
    eager = timer(fn, reps, warmup=3 if reps > 3 else 1)
    swapped = kernelize_all(net, repos, device=device, say=say)
    got = _workloads(net, ids)[0]()[:, -1].float()
    calls = {repo.name: _op_calls(_workloads(net, ids)[0], read_package(repo)) for repo in repos}
    rel = float((got - expected).norm() / expected.norm().clamp_min(1e-30))
    prefill, decode = _workloads(net, ids)
    kernelized = timer(prefill if phase == "prefill" else decode, reps, warmup=3 if reps > 3 else 1)
    unkernelize(net)
    # eager once more after the kernelized timing: a drift (clocks, memory) shows as two eager numbers apart
    prefill, decode = _workloads(net, ids)
    again = timer(prefill if phase == "prefill" else decode, reps, warmup=3 if reps > 3 else 1)
    timed = device.startswith("cuda")
    return {"phase": phase, "eager_ms": eager["median_ms"], "kernelized_ms": kernelized["median_ms"],
            "eager_again_ms": again["median_ms"], "eager_host_ms": eager["host_ms"],
            "kernelized_host_ms": kernelized["host_ms"],
            "timings_meaningful": timed, "swapped": swapped, "kernel_calls": calls,
            "logits": {"rel_l2": rel, "tolerance": LOGITS_TOL[dtype],
                       "passed": rel <= LOGITS_TOL[dtype] and all(calls.values())},
            "measured_speedup": eager["median_ms"] / kernelized["median_ms"] if timed else None,
            "predicted_speedup": _amdahl(targets) if timed else None}


def _amdahl(targets: list[dict]) -> float | None:
    """1 / ((1 - sum p) + sum p / s) over the shipped targets (share p, speedup over eager s)."""
    shipped = [t for t in targets if t.get("decision") == "shipped"]
    if not shipped or any(t.get("share") is None or not (t["optimize"].get("speedup_vs_eager")) for t in shipped):
        return None
    rest = 1 - sum(t["share"] for t in shipped)
    return 1 / (rest + sum(t["share"] / t["optimize"]["speedup_vs_eager"] for t in shipped))


def write_report(result: AutopilotResult, profile: dict) -> Path:
    """autopilot.md: one page with the profile's top rows, each target's fate and the end-to-end numbers."""
    lines = [f"# autopilot: {result.model} {result.size}, {result.phase} on {profile['environment'].get('device_name')}",
             "", f"Profile: {profile['step_ms']:.3f} ms a step ({profile['dtype']}, batch {profile['batch']}, "
             f"seq {profile['seq']}); roofline {profile['ceilings']['copy_gbps']:.0f} GB/s "
             f"({profile['ceilings']['source']}).", "",
             "| # | module class | op | calls | ms | share | bound | model × at roofline |", "|---|---|---|---|---|---|---|---|"]
    for r in profile["rows"][:10]:
        lines.append(f"| {r['rank']} | {r['module_class']} | `{r['op']}` | {r['calls']} | {r['time_ms']:.3f} | "
                     f"{100 * r['share']:.1f}% | {r['bound']} | {r['speedup_if_roofline']:.3f} |")
    lines += ["", "## Targets", "", "| task | replaces | share | verdict | decision |", "|---|---|---|---|---|"]
    for t in result.targets:
        share = f"{100 * t['share']:.1f}%" if t.get("share") is not None else "–"
        verdict = (t.get("optimize") or {}).get("sentence") or (t.get("optimize") or {}).get("message") or "–"
        decision = t.get("decision", "–") + (f": {t['why']}" if t.get("why") else "")
        lines.append(f"| {Path(t['task']).name} | {t.get('module_class')} | {share} | {_cell(verdict)} | "
                     f"{_cell(decision)} |")
    e2e = result.e2e
    if e2e:
        lines += ["", "## End to end", "",
                  f"- {e2e['phase']}: eager {e2e['eager_ms']:.3f} ms, kernelized {e2e['kernelized_ms']:.3f} ms"
                  + (f" (eager again after it: {e2e['eager_again_ms']:.3f} ms; the host's enqueue time of a step: eager "
                     f"{e2e['eager_host_ms']:.3f} ms, kernelized {e2e['kernelized_host_ms']:.3f} ms)"
                     if e2e["timings_meaningful"] and e2e.get("eager_host_ms") is not None
                     else "" if e2e["timings_meaningful"] else " (CPU, Triton interpreter: not meaningful)"),
                  f"- layers swapped: {', '.join(f'{k} × {v}' for k, v in e2e['swapped'].items())}; kernel calls in one "
                  f"prefill: {', '.join(f'{k} {v}' for k, v in e2e['kernel_calls'].items())}",
                  f"- logits vs eager: rel L2 {e2e['logits']['rel_l2']:.2e} (tolerance {e2e['logits']['tolerance']:.0e})"
                  f": {'ok' if e2e['logits']['passed'] else 'FAILED'}",
                  f"- speedup: predicted (Amdahl) {_x(e2e['predicted_speedup'])}, measured {_x(e2e['measured_speedup'])}"]
    diff = (e2e or {}).get("profile_diff") or []
    if diff:
        lines += ["", "## What kernelize changed (per op, eager → kernelized profile)", "",
                  "| module class | op | ms before | ms after | Δ ms |", "|---|---|---|---|---|"]
        changed = [d for d in diff if d["before_ms"] is None or d["after_ms"] is None]
        for d in changed[:12]:
            lines.append(f"| {d['module_class']} | `{d['op']}` | {_ms(d['before_ms'])} | {_ms(d['after_ms'])} | "
                         f"{d['delta_ms']:+.3f} |")
    lines += ["", *[f"> {note}" for note in result.notes], ""]
    path = result.out / "autopilot.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")[:300]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}x"
