"""The "naive" harness, for comparison only (``benchmarks/harness_strength.py``): what most published
kernel evaluations do, written by us and run inside the sandboxed worker like everything else.

Five trials at one shape: ``torch.manual_seed(trial)``, ``get_inputs()`` in float32, the reference Model
run first in the same process, its output copied to the host and freed, then ModelNew on the same
inputs, judged by ``torch.allclose(out, ref, atol=1e-2, rtol=1e-2)``. None of verify's guards run.
"""

from __future__ import annotations

import os
from pathlib import Path

TRIALS = 5
ATOL = RTOL = 1e-2


def run_naive(job: dict, model_new_cls, device: str, scratch: str) -> dict:
    import torch

    from kernelwright.tasks.task import import_file, instantiate

    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = False  # a naive harness does not poison memory
    module = import_file(Path(job["task"]), prefix="kw_task")
    trials = []
    for trial in range(TRIALS):
        torch.manual_seed(trial)
        inputs, init_inputs = instantiate(module, job["knobs"])
        inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]
        torch.manual_seed(trial)
        model = module.Model(*init_inputs).to(device)
        torch.manual_seed(trial)
        model_new = model_new_cls(*init_inputs).to(device)
        model_new.load_state_dict(model.state_dict(), strict=False)
        with torch.no_grad():
            ref = model(*inputs)
            refs = [r.detach().cpu().clone() for r in (ref if isinstance(ref, (tuple, list)) else [ref])]
            del ref
            out = model_new(*inputs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        outs = [o.detach().cpu() for o in (out if isinstance(out, (tuple, list)) else [out])]
        ok = len(outs) == len(refs) and all(o.shape == r.shape and torch.allclose(o.float(), r.float(), atol=ATOL, rtol=RTOL)
                                            for o, r in zip(outs, refs))
        trials.append(bool(ok))
    torch.save({}, os.path.join(scratch, "result.pt"))
    return {"status": "ok", "trials": trials, "passed": all(trials)}
