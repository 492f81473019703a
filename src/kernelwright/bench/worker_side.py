"""The bench job, run inside the sandboxed worker: time the candidate and the baselines, then run the
candidate once more on a fresh input set whose output the parent checks against the reference."""

from __future__ import annotations

import math
import os
from pathlib import Path

from kernelwright.bench.timing import time_calls
from kernelwright.tasks.task import import_file
from kernelwright.verify.inputs import build_case

ROTATION_BYTES = 128 << 20  # input sets together span more than twice a Hopper L2
MAX_SETS = 8


def run_bench(job: dict, model_new_cls, build_model, device: str, scratch: str) -> dict:
    import torch

    module = import_file(Path(job["task"]), prefix="kw_task")
    saved, rows = {}, []
    for shape in job["shapes"]:
        def make(seed: int, label: str):
            return build_case(module, case_id=shape["id"], label=label, knobs=shape["knobs"], dtype=shape["dtype"],
                              distribution="task", seed=seed, model_seed=shape["seeds"][0])

        first = make(shape["seeds"][0], "bench")
        set_bytes = sum(x.numel() * x.element_size() for x in first.inputs if isinstance(x, torch.Tensor))
        n_sets = max(1, min(MAX_SETS, math.ceil(ROTATION_BYTES / max(set_bytes, 1))))
        cases = [first] + [make(s, "bench") for s in shape["seeds"][1:n_sets]]
        to_device = lambda xs: [x.to(device) if isinstance(x, torch.Tensor) else x for x in xs]  # noqa: E731
        input_sets = [to_device(c.inputs) for c in cases]
        candidate, _ = build_model(model_new_cls, first.job(repeat=1), device)
        eager = first.model.to(device)
        timed = {"candidate": candidate, "eager": eager}
        budget = dict(device=device, warmup_ms=job.get("warmup_ms", 25), rep_ms=job.get("rep_ms", 100))
        timings = {}
        with torch.no_grad():
            for name in ("candidate", "eager"):
                model = timed[name]
                timings[name] = time_calls(lambda xs, m=model: m(*xs), input_sets, **budget).as_dict()
            # the same kernel again, later in the same process: the spread between the two is the noise floor
            timings["candidate_repeat"] = time_calls(lambda xs: candidate(*xs), input_sets, **budget).as_dict()
            check = make(shape["check_seed"], "recheck")
            out = candidate(*to_device(check.inputs))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        items = list(out) if isinstance(out, (tuple, list)) else [out]
        saved[shape["id"]] = [o.detach().to("cpu", copy=True) for o in items if isinstance(o, torch.Tensor)]
        rows.append({"id": shape["id"], "timings": timings, "input_sets": len(input_sets)})
        del input_sets, candidate, eager, timed
    torch.save(saved, os.path.join(scratch, "result.pt"))
    return {"status": "ok", "rows": rows}
