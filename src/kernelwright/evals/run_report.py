"""One optimize run as HTML: its trajectory (best speedup so far per round), the candidate lineage tree, and
every rejection with its reason, read from the run's ``run.sqlite`` (opened read-only) and ``summary.json``.

``kernelwright report RUN_DIR`` writes it as a page; the eval report embeds one such section per unit
that ran optimize. Numbers are each candidate's own bench: the geomean over the shapes it was timed on of
eager's time over its time (> 1: faster). A run on a CPU times nothing: the trajectory then says so.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

from kernelwright.errors import UsageError
from kernelwright.evals.metrics import bench_speedups

STORE = "run.sqlite"


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / STORE).is_file()


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """The run's candidates (id order) with their verdicts and speedups, its run rows and summary."""
    run_dir = Path(run_dir)
    try:
        con = sqlite3.connect(f"file:{run_dir / STORE}?mode=ro", uri=True)
        try:
            runs = [dict(zip(("id", "task", "agent", "device", "status"), r))
                    for r in con.execute("SELECT id, task, agent, device, status FROM runs ORDER BY id")]
            rows = con.execute("SELECT id, parent_id, role, name, meta FROM candidates ORDER BY id").fetchall()
            evals = con.execute("SELECT candidate_id, kind, status, result FROM evaluations ORDER BY id").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise UsageError(f"{run_dir / STORE} cannot be read as a run store ({exc}); pass a run directory.") from None
    candidates = {cid: {"id": cid, "parent_id": parent, "role": role, "name": name, "meta": _json(meta),
                        "verify": None, "reason": None, "speedup_eager": None, "timed": False}
                  for cid, parent, role, name, meta in rows}
    for cid, kind, status, result in evals:
        if cid in candidates:
            _note_evaluation(candidates[cid], kind, status, _json(result))
    summary = _json((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    return {"dir": str(run_dir), "runs": runs, "candidates": list(candidates.values()), "summary": summary}


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _note_evaluation(cand: dict[str, Any], kind: str, status: str, result: dict[str, Any]) -> None:
    failures = result.get("failures") or []
    if kind == "verify":
        cand["verify"] = status
        if status != "accepted" and failures:
            cand["reason"] = f"{failures[0].get('check', '?')}: {failures[0].get('message', '')}"
        return
    if status != "ok":
        cand["reason"] = cand["reason"] or (f"bench: {failures[0].get('check', '?')}: {failures[0].get('message', '')}"
                                            if failures else "bench failed")
        return
    if result.get("timings_meaningful"):
        speed = bench_speedups(result.get("rows") or [])["eager"]
        if speed is not None:
            cand["speedup_eager"], cand["timed"] = speed, True


def trajectory(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round (a tuner's round from its meta, else each timed candidate in turn), the best speedup so far."""
    points, best = [], None
    for i, cand in enumerate(c for c in candidates if c["timed"]):
        best = cand["speedup_eager"] if best is None else max(best, cand["speedup_eager"])
        points.append({"step": i + 1, "round": cand["meta"].get("round"), "candidate": cand["name"],
                       "speedup_eager": cand["speedup_eager"], "best_so_far": best})
    return points


def render_run_section(run: dict[str, Any], title: str) -> str:
    from kernelwright.evals.report import esc, fmt, line_chart, nice_max, num, table, text

    anchor = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")  # ids of this section's tables and chart
    summary = run["summary"]
    verdict = (summary.get("verdict") or {}).get("sentence") or summary.get("message") or "no summary.json"
    parts = [f"<h3>{esc(title)}</h3>", f'<p class="note">{esc(run["dir"])} · {esc(verdict)}</p>']
    points = trajectory(run["candidates"])
    if points:
        top = max(p["best_so_far"] for p in points)
        every = max(1, math.ceil(len(points) / 8))  # whole-number ticks: a step is one timed candidate
        parts.append(line_chart("best speedup vs eager so far", "timed candidate", "speedup (x)",
                                [("this candidate", [(p["step"], p["speedup_eager"]) for p in points]),
                                 ("best so far", [(p["step"], p["best_so_far"]) for p in points])],
                                x_max=float(len(points)), y_max=nice_max(top), chart_id=f"trajectory-{anchor}",
                                x_ticks=list(range(0, len(points) + 1, every))))
        rows = ["".join([num(p["step"], "int"), text("" if p["round"] is None else p["round"]), text(p["candidate"]),
                         num(p["speedup_eager"], "x"), num(p["best_so_far"], "x")]) for p in points]
        parts.append(table(f"trajectory-table-{anchor}", ("step", "round", "candidate", "vs eager", "best so far"),
                           rows))
    else:
        parts.append('<p class="note">No candidate of this run was timed (a CPU run, or none passed): no '
                     "trajectory.</p>")
    parts.append("<h4>Candidates (lineage)</h4>" + lineage_tree(run["candidates"], esc, fmt))
    rejected = [c for c in run["candidates"] if c["reason"]]
    if rejected:
        rows = ["".join([text(c["name"]), text(c["role"]), text(c["reason"])]) for c in rejected]
        parts.append("<h4>Rejections</h4>" + table(f"rejections-{anchor}", ("candidate", "role", "reason"), rows))
    else:
        parts.append('<p class="note">No candidate was rejected.</p>')
    return "".join(parts)


def lineage_tree(candidates: list[dict[str, Any]], esc, fmt) -> str:
    children: dict[int | None, list[dict[str, Any]]] = {}
    ids = {c["id"] for c in candidates}
    for cand in candidates:  # a parent outside this store (another run's) roots its own subtree
        children.setdefault(cand["parent_id"] if cand["parent_id"] in ids else None, []).append(cand)

    def branch(parent: int | None, depth: int) -> str:
        items = []
        for cand in children.get(parent, []):
            state = cand["verify"] or "not verified"
            speed = f" · {fmt(cand['speedup_eager'], 'x')} vs eager" if cand["timed"] else ""
            label = f"#{cand['id']} {cand['name']} ({cand['role']}) · {state}{speed}"
            below = branch(cand["id"], depth + 1) if depth < 200 else ""
            items.append(f'<li data-candidate="{cand["id"]}">{esc(label)}{below}</li>')
        return f"<ul>{''.join(items)}</ul>" if items else ""

    return f'<div class="lineage">{branch(None, 0)}</div>'


def render_run_page(run_dir: str | Path) -> str:
    from kernelwright.evals.report import CSS, esc

    run = load_run(run_dir)
    first = run["runs"][0] if run["runs"] else {}
    title = f"kernelwright run: {first.get('task', '?')} by {first.get('agent', '?')} on {first.get('device', '?')}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{render_run_section(run, 'run')}</body></html>\n")
