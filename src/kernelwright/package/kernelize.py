"""Swap a packaged layer into a ``transformers`` model through ``kernels``' own mapping, offline.

The mapping key is the replaced class's ``kernel_layer_name`` (``"RMSNorm"`` for Llama/Qwen3 RMSNorm).
transformers marks its classes with ``@use_kernel_forward_from_hub`` only when the installed ``kernels``
version is one it supports; otherwise the class is marked here with ``replace_kernel_forward_from_hub``.
Sibling classes (``Qwen3RMSNorm`` beside ``LlamaRMSNorm``) are kernelized only when their forward is the
same code as the class the kernel was verified against; any other class under the same key is left alone.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.errors import UsageError

logger = logging.getLogger(__name__)


@dataclass
class KernelizeReport:
    layer: str
    layer_key: str
    device: str
    swapped: int = 0
    classes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # class -> why it was left alone


def read_package(repo: Path) -> dict[str, Any]:
    path = Path(repo) / "kernelwright.json"
    if not path.is_file():
        raise UsageError(f"{repo} is not a repository written by `kernelwright package` (no kernelwright.json).")
    return json.loads(path.read_text())


def variant_path(repo: Path, device: str) -> Path:
    """What to hand ``kernels``: the repository (it picks build/torch-cuda by its variant rules) on a CUDA
    build of torch; the CUDA variant itself when running Triton's interpreter on a CPU build."""
    import torch

    return Path(repo) if torch.version.cuda or device.startswith("cuda") else Path(repo) / "build" / "torch-cuda"


@functools.lru_cache(maxsize=None)  # asked for every module of a model: hundreds in an 8B-shaped one
def _forward_code(cls: type) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(cls.forward))
    except (OSError, TypeError):
        return None


def kernelize_model(model, repo: Path, *, device: str, compile_mode: bool = False) -> KernelizeReport:
    """Replace the forward of every module the packaged layer stands for; returns what was swapped."""
    try:
        from kernels import (LocalLayerRepository, Mode, kernelize, replace_kernel_forward_from_hub,
                             use_kernel_mapping)
    except ImportError:
        raise UsageError("Kernelizing needs the `kernels` package; install `pip install 'kernelwright[package]'`.") from None
    from kernelwright.package.replaced import import_class

    info = read_package(repo)
    if info.get("kind") == "cuda" and not (Path(repo) / "build").is_dir():
        raise UsageError(f"{repo} is a CUDA C++ source repository that has not been built; run "
                         "`kernel-builder build-and-copy -L` in it first (see its CARD.md).")
    verified_cls = import_class(info["replaces"])
    key, layer = info["layer_key"], info["layer"]
    reference = _forward_code(verified_cls)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    report = KernelizeReport(layer=layer, layer_key=key, device=device_type)
    targets = []
    for module in model.modules():
        cls = type(module)
        if getattr(cls, "kernel_layer_name", key) != key or cls.__name__ in report.skipped:
            continue
        same = cls is verified_cls or (reference is not None and _forward_code(cls) == reference)
        if not same:
            if getattr(cls, "kernel_layer_name", None) == key:
                report.skipped[cls.__name__] = "its forward differs from the verified class's"
            continue
        if not hasattr(cls, "kernel_layer_name"):
            replace_kernel_forward_from_hub(cls, key)
        targets.append(module)
    for name, why in report.skipped.items():
        logger.warning("%s: not kernelized (%s)", name, why)
    if not targets:
        return report
    repository = LocalLayerRepository(repo_path=variant_path(repo, device), layer_name=layer)
    mode = Mode.INFERENCE | Mode.TORCH_COMPILE if compile_mode else Mode.INFERENCE
    with use_kernel_mapping({key: {device_type: repository}}, inherit_mapping=False):
        # kernelize walks named_modules and skips classes under other keys; the skipped sibling classes
        # under this key are restored right after.
        kernelize(model, mode=mode, device=device_type)
    for module in model.modules():
        if type(module).__name__ in report.skipped:
            module.__dict__.pop("forward", None)
    layer_cls_forward = None
    for module in targets:
        fn = getattr(module.forward, "__func__", None)
        if fn is not None and fn is not type(module).forward:
            report.swapped += 1
            layer_cls_forward = fn
            if type(module).__name__ not in report.classes:
                report.classes.append(type(module).__name__)
    del layer_cls_forward
    return report


def unkernelize(model) -> None:
    """Give every module its class's forward back (kernelize sets an instance attribute)."""
    for module in model.modules():
        module.__dict__.pop("forward", None)
