"""Several packaged layers swapped into one model at once."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any


def kernelize_all(net, repos: list[Path], *, device: str, say) -> dict[str, int]:
    """Every packaged layer swapped in at once. Each ``kernelize`` call hands modules under keys outside its own
    mapping back to their original forward, so each call's swaps are kept and put back after the last one.
    Returns, per repository, the modules still running its layer at the end."""
    from kernelwright.errors import UsageError
    from kernelwright.package.kernelize import kernelize_model, read_package

    kept: dict[str, dict[Any, Any]] = {}
    for repo in repos:
        if not read_package(repo).get("replaces"):
            raise UsageError(f"{repo} ships functions only (its task names no REPLACES): there is no layer to "
                             "kernelize a model with.")
        say(f"kernelizing with {repo.name}")
        with _quiet("kernels"):  # "no kernel mapping found for layer ...": the other layers, expected here
            kernelize_model(net, repo, device=device)
        kept[repo.name] = {m: m.__dict__["forward"] for m in net.modules() if _swapped(m)
                           and not any(m in earlier for earlier in kept.values())}
    for swaps in kept.values():
        for module, forward in swaps.items():
            module.forward = forward
    return {name: sum(1 for m in swaps if _swapped(m)) for name, swaps in kept.items()}


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _swapped(module) -> bool:
    forward = module.__dict__.get("forward")
    return forward is not None and getattr(forward, "__func__", None) is not type(module).forward
