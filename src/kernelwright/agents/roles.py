"""The LLM roles: what each is asked (system prompt + context sections) and what its reply becomes.

Each builder returns ``(system, messages)``; each parser turns a reply into the role's artifact. The
conductor decides who acts when; the analyst and the tuner need no model (``analyst.py``, ``tuner.py``).

| role     | artifact              |
|----------|-----------------------|
| planner  | ``tuning_plan.json``  |
| writer   | ``kernel.py``         |
| debugger | ``kernel_fixed.py``   |
"""

from __future__ import annotations

import json
from typing import Any

from kernelwright.agents import context as C
from kernelwright.agents.extract import extract_candidate, extract_json

Messages = list[dict[str, str]]

# The rules and the kernel knowledge come from the bundled Agent Skills: outside coding agents and this
# team learn from the same texts (kernelwright/skills/bundled/*/SKILL.md).
_RULES = "Rules the verifier enforces (a kernel that breaks one is rejected, whatever its speed):\n" + \
    C.skill_section("kernelwright-harness", "What the verifier rejects") + "\n"

PLANNER = ("You are the kernelwright planner. You read the analysis of a PyTorch operator and the best kernels "
           "so far, and say where the remaining headroom is and what to try next.\n\nReply with one JSON object "
           "(in a ```json block): {\"bottleneck\": str, \"headroom\": str, \"language\": \"triton\" | \"cuda\", "
           "\"ideas\": [{\"title\": str, \"why\": str, \"how\": str}]} with 2 to 5 ideas, most promising first." + "\n\n" +
           C.skill_knowledge(("triton-kernels", "Tuning knobs"), ("triton-kernels", "How fast is fast")))
WRITER = ("You are the kernelwright writer. You write fast, correct GPU kernels for PyTorch operators, in Triton "
          "or CUDA C++.\n\n" + _RULES + "\nReply with exactly one complete Python file in a ```python block; "
          "a sentence of explanation before it is welcome, nothing after it." + "\n\n" +
          C.skill_knowledge(("triton-kernels", "Patterns"), ("triton-kernels", "Tail masks"),
                            ("triton-kernels", "Dtype handling"), ("cuda-kernels", "Warp-shuffle reductions")))
DEBUGGER = ("You are the kernelwright debugger. A kernel failed to compile, crashed or computed the wrong values; "
            "you find why from the failures and reproducers and fix it, changing as little as needed.\n\n" + _RULES +
            "\nReply with the whole fixed Python file in one ```python block." + "\n\n" +
            C.skill_knowledge(("kernelwright-harness", "Reading a verdict"), ("triton-kernels", "Tail masks"),
                              ("triton-kernels", "Dtype handling")))


def planner(ctx: C.Context, round_no: int) -> tuple[str, Messages]:
    body = "\n".join(filter(None, [
        C.render_task(ctx), C.render_gpu(ctx), C.render_analysis(ctx), C.render_best(ctx),
        C.render_recent_failures(ctx),
        f"Plan round {round_no}: where is the headroom, and which ideas should this round's writers try?"]))
    return PLANNER, [{"role": "user", "content": body}]


def parse_plan(reply: str) -> dict[str, Any]:
    value = extract_json(reply)
    if isinstance(value, dict):
        ideas = value.get("ideas")
        value["ideas"] = [i for i in ideas if isinstance(i, dict)] if isinstance(ideas, list) else []
        return value
    return {"ideas": [], "notes": reply.strip()[:4000]}  # prose plans are kept and shown to writers as is


def _idea_text(plan: dict[str, Any], slot: int) -> str:
    ideas = plan.get("ideas") or []
    if not ideas:
        notes = plan.get("notes")
        return f"The planner's notes:\n{notes}" if notes else "Choose the most promising approach yourself."
    idea = ideas[slot % len(ideas)]
    return ("Follow this idea from the plan:\n" + json.dumps(idea, indent=1) +
            f"\n(overall bottleneck per the planner: {plan.get('bottleneck', 'unknown')})")


def writer(ctx: C.Context, plan: dict[str, Any], slot: int, parent: C.Scored | None,
           profile: dict[str, Any] | None = None) -> tuple[str, Messages]:
    """A fresh kernel (``parent`` None) or a refinement of ``parent`` guided by its profile report."""
    if parent is None:
        ask = "Write a new `ModelNew` for this task."
        parent_part = C.render_references(ctx)
    else:
        score = f"{parent.score:.3f}×" if parent.score is not None else "untimed"
        ask = (f"Make `{parent.name}` ({score} the fastest baseline) faster while keeping it correct. Return the "
               "whole improved file.")
        parent_part = C.section(f"Kernel to improve: `{parent.name}`", C.code(parent.source) + "\n\nNumbers:\n" +
                                "\n".join(f"- {s}" for s in parent.summary.get("shapes", [])))
        if profile:
            parent_part += C.section("Its profile report", C.code(json.dumps(profile, indent=1, default=str), "json"))
    body = "\n".join(filter(None, [
        C.render_task(ctx), C.render_gpu(ctx), C.render_analysis(ctx), parent_part,
        C.render_best(ctx, with_source=0) if parent is not None else C.render_best(ctx),
        C.render_recent_failures(ctx), C.section("This sample's direction", _idea_text(plan, slot)), ask]))
    return WRITER, [{"role": "user", "content": body}]


def debugger(ctx: C.Context, source: str, failures: list[dict[str, Any]], log_tail: str = "",
             attempt: int = 1) -> tuple[str, Messages]:
    log = C.section("Candidate process log (tail)", C.code(log_tail[-C.LOG_CHARS:], "text")) if log_tail else ""
    body = "\n".join(filter(None, [
        C.render_task(ctx), C.render_gpu(ctx), C.section("The failing kernel", C.code(source)),
        C.render_failures(failures, title="Why the verifier rejected it (each with a minimal reproducer)"), log,
        f"Repair attempt {attempt}: fix the kernel so that it passes every check above, keeping its approach."]))
    return DEBUGGER, [{"role": "user", "content": body}]


def parse_kernel(reply: str) -> str:
    """The candidate file in a writer's or debugger's reply (raises ``ExtractionError``)."""
    return extract_candidate(reply)
