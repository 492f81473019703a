"""A suite is the bundled tasks, or a directory of task files (a KernelBench level directory included)."""

from __future__ import annotations

import re
from pathlib import Path

from kernelwright.errors import UsageError
from kernelwright.tasks import bundled_names, resolve


def _number(stem: str) -> str | None:
    # KernelBench names its files "19_ReLU.py": the number before the first underscore names the problem
    match = re.match(r"(\d+)_", stem)
    return match.group(1) if match else None


def suite_tasks(suite: str, only: list[str] | None = None) -> list[Path]:
    """The task files of ``suite``, filtered by ``only`` (file names without .py, or KernelBench numbers)."""
    if suite == "bundled":
        paths = [resolve(name) for name in bundled_names()]
    else:
        folder = Path(suite)
        if not folder.is_dir():
            raise UsageError(f"suite {suite!r} is neither `bundled` nor a directory of task files; pass one of them.")
        paths = sorted((p for p in folder.glob("*.py") if not p.stem.startswith("_")),
                       key=lambda p: (int(_number(p.stem) or 10**9), p.stem))
    if only:
        wanted = set(only)
        paths = [p for p in paths if p.stem in wanted or _number(p.stem) in wanted]
    if not paths:
        raise UsageError(f"suite {suite!r} has no task files{' matching --only' if only else ''}; check the path "
                         "and the filter.")
    return paths
