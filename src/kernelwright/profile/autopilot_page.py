"""autopilot.html: the autopilot's one page — the profile's top rows, each target's fate with its optimize run
(trajectory, lineage, rejections), the end-to-end numbers with Amdahl's prediction, and what kernelize changed.
One self-contained file: the eval report's CSS and inline SVG, nothing fetched. Written beside autopilot.md
(which stays, for terminals and pull requests) from the same ``autopilot.json`` and profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelwright.evals.report import CSS, esc, num, table, text
from kernelwright.run.artifacts import atomic_write

TOP_ROWS = 15


def write_page(result: dict[str, Any], profile: dict[str, Any], path: Path) -> Path:
    """``result``: the autopilot's JSON (``AutopilotResult.as_json()``); ``profile``: the eager profile's JSON."""
    title = f"kernelwright autopilot: {result['model']} {result['size']}, {result['phase']}"
    body = "".join([f"<h1>{esc(title)}</h1>", _profile_section(profile), _targets_section(result),
                    _e2e_section(result.get("e2e") or {}), _diff_section((result.get("e2e") or {}).get("profile_diff")),
                    _notes(result.get("notes") or []), _runs_section(result)])
    atomic_write(path, f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
                       f"<style>{CSS}</style></head><body>{body}</body></html>\n")
    return path


def _profile_section(profile: dict[str, Any]) -> str:
    env = profile.get("environment") or {}
    ceilings = profile.get("ceilings") or {}
    note = (f"{esc(env.get('device_name'))} · {profile['step_ms']:.3f} ms a step · {esc(profile['dtype'])}, batch "
            f"{esc(profile['batch'])}, seq {esc(profile['seq'])} · roofline {ceilings.get('copy_gbps', 0):.0f} GB/s "
            f"({esc(ceilings.get('source', ''))})")
    headers = ("#", "module class", "op", "calls a step", "ms", "share", "bound", "% of roofline", "model × at roofline")
    rows = ["".join([num(r["rank"], "int"), text(r["module_class"]), text(r["op"]), text(r["calls"]),
                     num(r["time_ms"]), num(r["share"], "pct"), text(r["bound"]),
                     num(r.get("fraction_of_roofline"), "pct"), num(r.get("speedup_if_roofline"), "x")])
            for r in profile["rows"][:TOP_ROWS]]
    return f'<h2>Profile</h2><p class="note">{note}</p>' + table("profile", headers, rows)


def _targets_section(result: dict[str, Any]) -> str:
    headers = ("task", "replaces", "share", "verdict", "vs eager", "decision")
    rows = []
    for t in result.get("targets") or []:
        run = t.get("optimize") or {}
        decision = t.get("decision", "not finished") + (f": {t['why']}" if t.get("why") else "")
        css = ("ok" if t.get("decision") in ("shipped", "packaged, not kernelized")
               else "bad" if t.get("decision") else "skip")
        rows.append("".join([text(Path(t["task"]).name), text(t.get("module_class")), num(t.get("share"), "pct"),
                             text(run.get("sentence") or run.get("message") or "–"),
                             num(run.get("speedup_vs_eager"), "x"), text(decision, css)]))
    return "<h2>Targets</h2>" + table("targets", headers, rows)


def _e2e_section(e2e: dict[str, Any]) -> str:
    if not e2e:
        return '<h2>End to end</h2><p class="note">No kernel was shipped: the model was not kernelized.</p>'
    logits = e2e["logits"]
    rows = ["".join([text(e2e["phase"]), num(e2e["eager_ms"], "float"), num(e2e["kernelized_ms"], "float"),
                     num(e2e.get("predicted_speedup"), "x"), num(e2e.get("measured_speedup"), "x"),
                     text(f"rel L2 {logits['rel_l2']:.2e} (tolerance {logits['tolerance']:.0e})",
                          "ok" if logits["passed"] else "bad")])]
    swapped = ", ".join(f"{k} × {v}" for k, v in e2e.get("swapped", {}).items())
    note = "" if e2e.get("timings_meaningful") else " · CPU, Triton interpreter: the times mean nothing"
    return ("<h2>End to end</h2>"
            + table("e2e", ("phase", "eager ms", "kernelized ms", "predicted (Amdahl)", "measured", "logits vs eager"),
                    rows)
            + f'<p class="note">layers swapped: {esc(swapped)}{esc(note)}</p>')


def _diff_section(diff: list[dict[str, Any]] | None) -> str:
    changed = [d for d in diff or [] if d["before_ms"] is None or d["after_ms"] is None]
    if not changed:
        return ""
    rows = ["".join([text(d["module_class"]), text(d["op"]), num(d["before_ms"]), num(d["after_ms"]),
                     num(d["delta_ms"])]) for d in changed]
    return ("<h2>What kernelize changed</h2>"
            + table("diff", ("module class", "op", "ms before", "ms after", "Δ ms"), rows))


def _notes(notes: list[str]) -> str:
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def _runs_section(result: dict[str, Any]) -> str:
    """Each target's optimize run as the run report shows it (a run without a store is named, not drawn)."""
    from kernelwright.evals.run_report import is_run_dir, load_run, render_run_section

    parts = []
    for t in result.get("targets") or []:
        folder = (t.get("optimize") or {}).get("run")
        if folder and is_run_dir(folder):
            parts.append(f"<details><summary>{esc(Path(t['task']).stem)}</summary>"
                         f"{render_run_section(load_run(folder), Path(t['task']).stem)}</details>")
    return "<h2>Optimize runs</h2>" + "".join(parts) if parts else ""
