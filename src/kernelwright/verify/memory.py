"""GPU memory of a verification: what a case of the task needs, whether the task fits before anything
runs, and the peaks the verifier reached (parent here, worker from its report).

The verifier aims at a peak of at most VERIFY_FACTOR times the task's own inputs + outputs at its
largest case (on a GPU, the benchmark shape): the worker holds the inputs, their clones, the outputs
and a NaN-filled pool; the parent judges a benchmark-size case from the host, slice by slice.
"""

from __future__ import annotations

import copy

from kernelwright.bench.roofline import tensor_bytes  # noqa: F401 -- memory.tensor_bytes, as callers know it
from kernelwright.errors import UsageError

VERIFY_FACTOR = 4
GB = 1e9


def largest(cases: list):
    """The case with the most input bytes (on a GPU, the benchmark shape)."""
    return max(cases, key=lambda c: tensor_bytes(c.inputs))


def output_bytes(case) -> int | None:
    """The bytes of the task Model's outputs on the case's inputs, worked out on the meta device (no
    memory, no compute); None when the Model cannot run there (data-dependent code, ``.item()``)."""
    import torch

    try:
        model = copy.deepcopy(case.model).to("meta")
        with torch.no_grad():
            out = model(*[x.to("meta") if isinstance(x, torch.Tensor) else x for x in case.inputs])
    except Exception:  # noqa: BLE001 -- an estimate: the caller falls back to the inputs' size
        return None
    return tensor_bytes(list(out) if isinstance(out, (tuple, list)) else [out])


def case_bytes(case) -> int:
    """Inputs + outputs of one case in its dtype (outputs taken as large as the inputs when unknown)."""
    inputs = tensor_bytes(case.inputs)
    outputs = output_bytes(case)
    return inputs + (inputs if outputs is None else outputs)


def free_device_bytes(device: str) -> int:
    import torch

    torch.cuda.empty_cache()  # what this process only caches is free to the worker too
    return torch.cuda.mem_get_info(torch.device(device))[0]


def does_not_fit(task: str, task_bytes: int, free: int) -> str:
    return (f"Task {task} needs {VERIFY_FACTOR * task_bytes / GB:.1f} GB of GPU memory at its own shape (inputs + "
            f"outputs {task_bytes / GB:.1f} GB, verification about {VERIFY_FACTOR}x); this GPU has {free / GB:.1f} GB "
            "free: run it with smaller knobs or on a larger GPU.")


class DoesNotFit(UsageError):
    """The task's largest case needs more GPU memory than is free."""


def check_fits(task: str, task_bytes: int, device: str) -> None:
    """Refuse, with one sentence, a task whose largest case cannot be verified in the device's free memory."""
    if not device.startswith("cuda"):
        return
    free = free_device_bytes(device)
    if VERIFY_FACTOR * task_bytes > free:
        raise DoesNotFit(does_not_fit(task, task_bytes, free))


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def peak_bytes(device: str) -> int | None:
    """This process's peak of allocated GPU memory since ``reset_peak``; None on the CPU (not measured)."""
    import torch

    return int(torch.cuda.max_memory_allocated(torch.device(device))) if device.startswith("cuda") else None
