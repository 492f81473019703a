"""The bench job, run inside the sandboxed worker: time the candidate and the baselines, interleaved,
then run the candidate once more on a fresh input set whose output the parent checks against the
reference."""

from __future__ import annotations

import math
import os
from pathlib import Path

from kernelwright.bench import baselines
from kernelwright.bench.timing import time_interleaved
from kernelwright.tasks.task import import_file
from kernelwright.verify.inputs import build_case

ROTATION_BYTES = 128 << 20  # input sets together span more than twice a Hopper L2
MAX_SETS = 8
GRAPH_BELOW_MS = 0.1  # launch-bound sizes are also timed as CUDA-graph replays


def rotation_sets(set_bytes: int) -> int:
    """How many input sets of ``set_bytes`` rotate through the timing: together past ROTATION_BYTES."""
    return max(1, min(MAX_SETS, math.ceil(ROTATION_BYTES / max(set_bytes, 1))))


def run_bench(job: dict, model_new_cls, build_model, device: str, scratch: str, event=None) -> dict:
    """``event(kind, shape_id, call)`` tells the parent when a candidate call starts and returns, so a
    hanging candidate meets the per-call deadline instead of the whole-process timeout."""
    import torch

    event = event or (lambda *args: None)

    module = import_file(Path(job["task"]), prefix="kw_task")
    saved, rows = {}, []
    for shape in job["shapes"]:
        def make(seed: int, label: str):
            return build_case(module, case_id=shape["id"], label=label, knobs=shape["knobs"], dtype=shape["dtype"],
                              distribution="task", seed=seed, model_seed=shape["seeds"][0], device=device)

        first = make(shape["seeds"][0], "bench")
        set_bytes = sum(x.numel() * x.element_size() for x in first.inputs if isinstance(x, torch.Tensor))
        cases = [first] + [make(s, "bench") for s in shape["seeds"][1:rotation_sets(set_bytes)]]
        to_device = lambda xs: [x.to(device) if isinstance(x, torch.Tensor) else x for x in xs]  # noqa: E731
        input_sets = [to_device(c.inputs) for c in cases]
        event("build", shape["id"])
        candidate, _ = build_model(model_new_cls, first.job(repeat=1), device)
        event("done", shape["id"])
        with torch.no_grad():  # the first call, alone and watched: it compiles, and it may hang
            event("call", shape["id"], 0)
            candidate(*input_sets[0])
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            event("done", shape["id"], 0)
        eager = first.model.to(device)
        with torch.no_grad():
            calls, notes = baselines.build(module, eager, input_sets, job["baselines"], device)
            # the candidate twice, as two entries of the rotation: their spread is the noise floor
            fns = {"candidate": lambda xs: candidate(*xs), **calls, "candidate_repeat": lambda xs: candidate(*xs)}
            timed = time_interleaved(fns, input_sets, device=device, warmup_ms=job["warmup_ms"], rep_ms=job["rep_ms"])
            if device.startswith("cuda") and timed["candidate"]["events"]["median_ms"] < GRAPH_BELOW_MS:
                graphed = time_interleaved(fns, input_sets, device=device, warmup_ms=job["warmup_ms"],
                                           rep_ms=job["rep_ms"], rounds=1, graphs=True)
                for name in timed:
                    timed[name]["graph"] = graphed[name]["graph"]
            check = make(shape["check_seed"], "recheck")
            event("call", shape["id"], 1)
            out = candidate(*to_device(check.inputs))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            event("done", shape["id"], 1)
        items = list(out) if isinstance(out, (tuple, list)) else [out]
        saved[shape["id"]] = [o.detach().to("cpu", copy=True) for o in items if isinstance(o, torch.Tensor)]
        rows.append({"id": shape["id"], "timed": timed, "notes": notes, "input_sets": len(input_sets)})
        del input_sets, candidate, eager, calls, fns
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    torch.save(saved, os.path.join(scratch, "result.pt"))
    return {"status": "ok", "rows": rows}
