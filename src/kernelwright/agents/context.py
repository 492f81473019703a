"""What every prompt carries, rendered as plain Markdown sections.

The task source, the analysis (baselines, roofline, bound), the target GPU's facts, verification
failures as minimal reproducers, the best kernels so far with their numbers, and reference kernels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_FAILURES = 6
TRACEBACK_LINES = 12
LOG_CHARS = 1500
REFERENCE_CHARS = 6000


@dataclass
class Scored:
    """A kernel with its numbers, as prompts show it."""

    name: str
    source: str
    score: float | None          # geometric-mean speedup over the fastest baseline (higher is better)
    summary: dict[str, Any] = field(default_factory=dict)  # per-shape ms, speedups, % of roofline


@dataclass
class Context:
    task_name: str
    task_source: str
    device: str
    gpu: dict[str, Any]
    analysis: dict[str, Any] = field(default_factory=dict)
    references: list[tuple[str, str]] = field(default_factory=list)  # (label, source)
    best: list[Scored] = field(default_factory=list)
    recent_failures: list[dict[str, Any]] = field(default_factory=list)  # {candidate, check, message}


def section(title: str, body: str) -> str:
    return f"## {title}\n\n{body.strip()}\n"


def code(text: str, lang: str = "python") -> str:
    return f"```{lang}\n{text.rstrip()}\n```"


def render_task(ctx: Context) -> str:
    return section(f"Task `{ctx.task_name}` (the reference `Model`; your `ModelNew` must match it)",
                   code(ctx.task_source))


def render_gpu(ctx: Context) -> str:
    keys = ("device_name", "compute_capability", "sm_count", "memory_gb", "copy_gbps", "read_gbps",
            "matmul_tflops", "datasheet", "cuda", "torch", "triton", "interpreter")
    lines = [f"- {k}: {ctx.gpu[k]}" for k in keys if ctx.gpu.get(k) not in (None, "", {})]
    if ctx.gpu.get("interpreter"):
        lines.append("- note: kernels run under the Triton interpreter on this machine (correctness only); "
                     "load in fp32 (`.to(tl.float32)`) because bf16 arithmetic is broken there")
    return section(f"Target device ({ctx.device})", "\n".join(lines))


def render_analysis(ctx: Context) -> str:
    if not ctx.analysis:
        return section("Analysis", "No baseline has been measured yet.")
    return section("Analysis (baselines, roofline, bound)", code(json.dumps(ctx.analysis, indent=1, default=str), "json"))


def render_best(ctx: Context, *, with_source: int = 1) -> str:
    if not ctx.best:
        return section("Best kernels so far", "None accepted yet.")
    parts = []
    for i, k in enumerate(ctx.best):
        score = f"{k.score:.3f}× the fastest baseline (geometric mean)" if k.score is not None else "not timed"
        parts.append(f"{i + 1}. `{k.name}`: {score}\n" + "\n".join(f"   - {s}" for s in k.summary.get("shapes", [])))
    text = "\n".join(parts)
    for k in ctx.best[:with_source]:
        text += f"\n\nSource of `{k.name}`:\n" + code(k.source)
    return section("Best kernels so far (verified, benchmarked)", text)


def render_failures(failures: list[dict[str, Any]], *, title: str = "Verification failures") -> str:
    """Failures as minimal reproducers: the check, its sentence, and the exact case that shows it."""
    if not failures:
        return ""
    lines = []
    seen: set[tuple[str, str]] = set()
    for f in failures:
        tag = (f.get("check", ""), f.get("message", ""))
        if tag in seen:
            continue
        seen.add(tag)
        line = f"- **{f.get('check')}**: {f.get('message')}"
        case = f.get("case") or {}
        repro = ", ".join(f"{k}={case[k]}" for k in ("knobs", "dtype", "distribution", "seed") if k in case)
        if repro:
            line += f"\n  reproducer: {repro}"
        details = {k: v for k, v in f.items() if k in ("worst_index", "got", "expected", "rel_err", "max_abs_err")}
        if details:
            line += f"\n  details: {json.dumps(details, default=str)}"
        tb = (f.get("traceback") or "").strip().splitlines()[-TRACEBACK_LINES:]
        if tb:
            line += "\n  traceback (tail):\n" + code("\n".join(tb), "text")
        lines.append(line)
        if len(lines) >= MAX_FAILURES:
            break
    more = len(failures) - len(lines)
    if more > 0:
        lines.append(f"- … and {more} more failure(s) of the same kinds")
    return section(title, "\n".join(lines))


def render_recent_failures(ctx: Context) -> str:
    if not ctx.recent_failures:
        return ""
    lines = [f"- `{f['candidate']}` rejected by **{f['check']}**: {f['message']}" for f in ctx.recent_failures]
    return section("Rejected earlier in this run (do not repeat these mistakes)", "\n".join(lines))


def render_references(ctx: Context) -> str:
    if not ctx.references:
        return ""
    parts = [f"`{label}`:\n" + code(src[:REFERENCE_CHARS]) for label, src in ctx.references]
    return section("Reference kernels (verified kernels for this or related ops)", "\n\n".join(parts))


def skill_section(skill: str, heading: str) -> str:
    """One section of a bundled skill's SKILL.md: the prompts' kernel knowledge lives in the skills."""
    from kernelwright.skills import section as read

    return read(skill, heading)


def skill_knowledge(*parts: tuple[str, str]) -> str:
    """Sections of the bundled skills as one Markdown block, each titled and attributed to its skill.

    References to a skill's own files (``references/x.py``) are left as they are: the writer sees the
    related example kernels through ``render_references``."""
    return "\n".join(section(f"{heading} (from the {skill} skill)", skill_section(skill, heading))
                     for skill, heading in parts)


def examples_dir() -> Path | None:
    """The checkout's hand-written, verified kernels (``examples/``), when this is a checkout."""
    path = Path(__file__).resolve().parents[3] / "examples"
    return path if path.is_dir() else None


def related_examples(task_name: str, *, limit: int = 2) -> list[tuple[str, str]]:
    """Kernels for the same op first, then ops sharing a word of the name (norm, gelu, softmax)."""
    root = examples_dir()
    if root is None:
        return []
    words = set(task_name.replace("-", "_").split("_")) | {task_name}
    files = sorted(root.glob("*.py"))
    same = [p for p in files if p.stem == task_name]
    near = [p for p in files if p.stem != task_name and any(w and (w in p.stem or p.stem in w) for w in words)]
    chosen = (same + near)[:limit]
    return [(f"examples/{p.name}", p.read_text()) for p in chosen]
