"""Evals: the same suite of tasks through several agents (and skills), scored by our verifier and bench.

``kernelwright eval --suite SUITE --agent A [--agent B ...] [--skill NAME|none ...] [--runs N] --out DIR
[--only ...] [--kinds memory-bound] [--max-dollars X]``; ``kernelwright report EVAL_DIR|RUN_DIR``.

Suites (``suites.py``): ``bundled``, a directory of task files (a KernelBench level), or an Agent Skills
``evals.json`` (cases with prompt, files, assertions; a cmd: agent is told the case's prompt).

A unit is one (agent, skill, task, run). Each finished unit is stored as ``OUT/units/<key>.json``
(written atomically); a rerun with the same ``--out`` skips stored units, so a killed eval resumes.
Agents: ``offline`` and every LLM agent of ``optimize`` (their skill column reads ``builtin``: they
take no installed skill), and ``cmd:TEMPLATE`` (``evals/external.py``), run once per ``--skill``.

``OUT/results.csv``: one row per unit (``runner.COLUMNS``). ``OUT/report.html``: the page of ``report.py``
(and ``fast_p.png``, ``cost_quality.png`` with matplotlib). ``OUT/results.json``, schema
``kernelwright.eval/1``::

    schema       "kernelwright.eval/1"
    suite, agents, skills, runs, max_dollars (null: no budget)
    cases[]      an evals.json suite's cases: name, task_path, prompt, files, expected_output, assertions
    environment  device, kernelwright, torch, triton, python, platform, timings_meaningful
    units[]      agent, skill, task, task_path, run, out, resumed (read from OUT/units this time),
                 status         "done"; "skipped-for-budget" (never started: the recorded dollars had reached
                                --max-dollars) or "<kind>-failure" (did not finish): no verdict, not in aggregates
                 correct        verified by kernelwright (an agent's own claims count for nothing)
                 timings_meaningful  false on a CPU: the speedups and roofline are then null
                 speedup_eager, speedup_compile  geomean over the final bench's shapes of the
                                baseline's median time over the kernel's (> 1: faster); null if not timed
                 roofline_pct   mean over shapes of the kernel's fraction of its bound ceiling, in %
                 tokens_in, tokens_out, tokens, dollars, llm_calls, repairs, tool_calls, wall_s
                                null: unknown (an external agent that printed no JSON usage; dollars of
                                a model the price table lacks). An LLM agent's come from its run store
                                (the usage its server reported); repairs are its debugger calls
                 note           the verdict or the rejection, in one sentence
                 ran_on         the executor slot (``cpu0``, ``gpu1``, ``gpu0.1``) or Ray node it ran on
    aggregates[] per (agent, skill): units, tasks, correct, correct_rate, timings_meaningful,
                 fast_p_eager / fast_p_compile  {"0.0", "1.0", "1.2", "1.5", "2.0"}: share of ALL units
                                correct and faster than the baseline by strictly more than p (KernelBench's
                                fast_p); null when no unit was timed
                 geomean_speedup_*, median_speedup_*  over correct, timed units
                 mean_roofline_pct, totals {tokens_in, ..., wall_s} (null when any unit's is unknown)
    lifts[]      per agent and skill with a no-skill counterpart: agent, skill, without ("none"), tasks, runs,
                 correct_rate / fast_1_eager {n, min, median, max, mean, ci95}: with minus without on the
                 same tasks, one sample per run index; ci95 [low, high]: a seeded bootstrap 95 % interval of
                 the mean over runs, null below two runs (fast_1_eager null when untimed)
"""

from kernelwright.evals.metrics import aggregate, aggregates, fast_p, geomean
from kernelwright.evals.runner import SCHEMA, run_eval

__all__ = ["SCHEMA", "aggregate", "aggregates", "fast_p", "geomean", "run_eval"]
