"""Roofline arithmetic: the fewest bytes a kernel must move, and how close a timing gets to the ceiling."""

from __future__ import annotations

from typing import Any, Iterable


def tensor_bytes(items: Iterable[Any]) -> int:
    """Bytes of every tensor in ``items`` (non-tensors count zero)."""
    import torch

    return sum(x.numel() * x.element_size() for x in items if isinstance(x, torch.Tensor))


def minimal_bytes(inputs: Iterable[Any], outputs: Iterable[Any], parameters: Iterable[Any] = ()) -> int:
    """Each input and parameter read once, each output written once."""
    return tensor_bytes(inputs) + tensor_bytes(parameters) + tensor_bytes(outputs)


def achieved_gbps(nbytes: int, ms: float) -> float:
    return nbytes / (ms * 1e-3) / 1e9 if ms > 0 else float("inf")


def fraction_of(achieved: float, ceiling: float | None) -> float | None:
    return achieved / ceiling if ceiling else None


def count_flops(model, inputs, device: str) -> int:
    """FLOPs PyTorch's flop counter attributes to one forward (matmul-like ops; it counts no pointwise
    or reduction work, so memory-bound ops report 0). Counted on the meta device (shapes only, no memory,
    no compute: a multi-GB input costs nothing); on ``device`` when the Model cannot run there."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def counted(where: str) -> int:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            copy.deepcopy(model).to(where)(*[x.to(where) if isinstance(x, torch.Tensor) else x for x in inputs])
        return int(counter.get_total_flops())

    try:
        return counted("meta")
    except Exception:  # noqa: BLE001 -- data-dependent code (``.item()``, ``nonzero``) needs real values
        return counted(device)


LAUNCH_BOUND_MS = 0.005  # below ~5 µs of ideal work, launch overhead dominates any kernel


def bound(nbytes: int, flops: int, *, gbps: float | None, tflops: float | None) -> str:
    """Which ceiling limits an ideal kernel: ``memory``, ``compute`` or ``launch`` (overhead); ``unknown``
    without measured ceilings (the CPU)."""
    if not gbps:
        return "unknown"
    memory_ms = nbytes / (gbps * 1e9) * 1e3 if gbps else 0.0
    compute_ms = flops / (tflops * 1e12) * 1e3 if tflops and flops else 0.0
    if max(memory_ms, compute_ms) < LAUNCH_BOUND_MS:
        return "launch"
    return "compute" if compute_ms > memory_ms else "memory"
