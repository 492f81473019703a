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
