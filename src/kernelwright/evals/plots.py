"""The eval's PNGs beside results.json, when matplotlib is installed: ``fast_p.png`` (fast_p against p, vs
eager and vs compile, one line per (agent, skill)) and ``cost_quality.png`` (verified rate against total
dollars, or wall time when some dollars are unknown). The HTML report draws the same charts as inline
SVG and needs neither; without matplotlib no PNG is written and nothing fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelwright.evals.metrics import BASELINES, FAST_P
from kernelwright.evals.report import group_label


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_pngs(results: dict[str, Any], out: Path) -> list[Path]:
    """The PNGs written (none without matplotlib, and no fast_p curves when nothing was timed)."""
    plt = _pyplot()
    groups = results.get("aggregates") or []
    if plt is None or not groups:
        return []
    written = [cost_quality(plt, groups, out / "cost_quality.png")]
    timed = [g for g in groups if g.get("timings_meaningful")]
    if timed:
        written.insert(0, fast_p_curves(plt, timed, out / "fast_p.png"))
    return written


def fast_p_curves(plt, groups: list[dict[str, Any]], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(BASELINES), figsize=(10, 4), dpi=110, sharey=True)
    for ax, baseline in zip(axes, BASELINES):
        for g in groups:
            ax.plot(FAST_P, [g[f"fast_p_{baseline}"][str(p)] or 0.0 for p in FAST_P], marker="o",
                    label=_literal(group_label(g["agent"], g["skill"])))
        ax.set_title(f"fast_p vs {baseline}")
        ax.set_xlabel("p (speedup threshold)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of all units correct and faster than p")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def cost_quality(plt, groups: list[dict[str, Any]], path: Path) -> Path:
    by_dollars = all((g.get("totals") or {}).get("dollars") is not None for g in groups)
    key, label = ("dollars", "dollars (total)") if by_dollars else ("wall_s", "wall time, s (total)")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for g in groups:
        x, y = (g.get("totals") or {}).get(key), g.get("correct_rate")
        if x is None or y is None:
            continue
        ax.scatter([x], [y], s=40, alpha=0.8, label=_literal(group_label(g["agent"], g["skill"])))
    ax.set_xlabel(label)
    ax.set_ylabel("verified rate")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _literal(text: str) -> str:
    """``text`` as matplotlib prints it verbatim: a ``$`` would start mathtext (an agent command with ``$$``
    made the plot raise)."""
    return text.replace("$", r"\$")
