"""A suite is the bundled tasks, a directory of task files (a KernelBench level directory included), or an
Agent Skills eval file (``evals/evals.json``).

The eval file is the format of the Agent Skills evaluation guide (skill-creator's)::

    {"skill_name": "triton-kernels",
     "evals": [{"id": 1, "prompt": "Make this GELU fast on an H100.", "files": ["files/gelu.py"],
                "expected_output": "...", "assertions": ["..."]}]}

Each case names its task: the one ``.py`` file among ``files`` (paths relative to the eval file's folder; a
leading ``evals/`` is also read from the skill folder above it), or kernelwright's optional ``"task"`` key
(a bundled task name or a path) when a case lists several. The case's prompt is what a ``cmd:`` agent is
told, followed by where to leave its candidate; its other files are copied into the agent's workspace.
``expected_output`` and ``assertions`` are kept in the results for the record: the verdict is kernelwright's
verifier and bench, never a string assertion.

``--kinds memory-bound`` (or ``compute-bound``) keeps the tasks of that kind: one whose FLOPs per byte at
its first benchmark shape and dtype (counted on PyTorch's meta device: no memory, no compute) fall below
``RIDGE_FLOP_PER_BYTE`` is memory-bound; a task whose Model cannot run on the meta device is ``unknown``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelwright.errors import UsageError
from kernelwright.tasks import bundled_names, resolve

EVAL_FILE = Path("evals") / "evals.json"
KINDS = ("memory-bound", "compute-bound", "unknown")
# an H100's FP32 peak over its memory bandwidth (~67 TFLOP/s / 3.35 TB/s; an H200's is lower): an op under
# it cannot be compute-bound in FP32, KernelBench's dtype. PyTorch's counter counts matmul-like FLOPs only,
# so pointwise ops, norms and reductions count 0 and land here too.
RIDGE_FLOP_PER_BYTE = 20.0


@dataclass(frozen=True)
class Case:
    """One task of a suite: its name in the results, its task file, and what an eval file adds."""

    name: str
    path: Path
    prompt: str | None = None
    files: tuple[Path, ...] = ()
    assertions: tuple[str, ...] = ()
    expected_output: str | None = None


def _number(stem: str) -> str | None:
    # KernelBench names its files "19_ReLU.py": the number before the first underscore names the problem
    match = re.match(r"(\d+)_", stem)
    return match.group(1) if match else None


def suite_tasks(suite: str, only: list[str] | None = None) -> list[Path]:
    """The task files of ``suite``, filtered by ``only`` (file names without .py, or KernelBench numbers)."""
    return [case.path for case in suite_cases(suite, only)]


def suite_cases(suite: str, only: list[str] | None = None, kinds: list[str] | None = None) -> list[Case]:
    """The cases of ``suite``, filtered by ``only`` (names, file names without .py, or KernelBench numbers)
    and by ``kinds`` (memory-bound, compute-bound, unknown)."""
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise UsageError(f"--kinds {', '.join(unknown)} is not a kind; choose from {', '.join(KINDS)}.")
    path = Path(suite)
    if suite == "bundled":
        cases = [Case(name, resolve(name)) for name in bundled_names()]
    elif path.is_file() and path.suffix == ".json":
        cases = load_eval_file(path)
    elif path.is_dir() and (path / EVAL_FILE).is_file() and not _task_files(path):
        cases = load_eval_file(path / EVAL_FILE)  # a skill folder with its evals
    elif path.is_dir():
        cases = [Case(p.stem, p) for p in _task_files(path)]
    else:
        raise UsageError(f"suite {suite!r} is neither `bundled`, a directory of task files nor an evals.json file; "
                         "pass one of them.")
    if only:
        wanted = set(only)
        cases = [c for c in cases if c.name in wanted or c.path.stem in wanted or _number(c.name) in wanted]
    if kinds:
        cases = [c for c in cases if task_kind(c.path) in kinds]
    if not cases:
        filters = " and ".join(f for f, on in (("--only", only), ("--kinds", kinds)) if on)
        raise UsageError(f"suite {suite!r} has no task files{f' matching {filters}' if filters else ''}; check the "
                         "path and the filter.")
    return cases


def task_kind(path: Path) -> str:
    """memory-bound or compute-bound by FLOPs per byte at the task's first benchmark shape and dtype."""
    intensity = flops_per_byte(path)
    if intensity is None:
        return "unknown"
    return "memory-bound" if intensity < RIDGE_FLOP_PER_BYTE else "compute-bound"


def flops_per_byte(path: Path) -> float | None:
    import torch

    from kernelwright.bench import roofline
    from kernelwright.tasks.task import instantiate, load_task

    task = load_task(path)
    dtype = getattr(torch, task.dtype_names[0])
    try:
        with torch.device("meta"):
            inputs, init = instantiate(task.load(), {**task.knobs, **task.bench_shapes[0]})
            model = task.load().Model(*init).to(dtype)
            inputs = [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
            outputs = model(*inputs)
        outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        nbytes = roofline.minimal_bytes(inputs, outputs, model.parameters())
        flops = roofline.count_flops(model, inputs, "meta")
    except Exception:  # noqa: BLE001 -- a Model that cannot run on meta is of unknown kind, not an error
        return None
    return flops / nbytes if nbytes else None


def _task_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("*.py") if not p.stem.startswith("_")),
                  key=lambda p: (int(_number(p.stem) or 10**9), p.stem))


def load_eval_file(path: Path) -> list[Case]:
    """The cases of an Agent Skills ``evals.json``; a malformed file is a one-sentence UsageError."""
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); fix the file.") from None
    if not isinstance(data, dict) or not isinstance(data.get("evals"), list) or not data["evals"]:
        raise UsageError(f'{path} has no "evals" list of cases; an eval file is {{"skill_name": ..., "evals": '
                         '[{"id": 1, "prompt": "...", "files": ["task.py"]}]}.')
    cases, seen = [], set()
    for i, raw in enumerate(data["evals"]):
        case = _case(path, i, raw)
        if case.name in seen:
            raise UsageError(f"{path}: two cases have the id {case.name!r}; give each case its own id.")
        seen.add(case.name)
        cases.append(case)
    return cases


def _case(path: Path, index: int, raw: Any) -> Case:
    where = f"{path}: case {index + 1}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where} is not an object; each case is {{\"id\": ..., \"prompt\": ..., \"files\": [...]}}.")
    case_id = raw.get("id")
    if not isinstance(case_id, (int, str)) or isinstance(case_id, bool) or str(case_id).strip() == "":
        raise UsageError(f"{where} has no id; give it a number or a short name.")
    where = f"{path}: case {case_id}"
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(f"{where} has no prompt; give it the request an agent is to be sent.")
    files = _strings(raw.get("files", []), f"{where}: files")
    assertions = _strings(raw.get("assertions", raw.get("expectations", [])), f"{where}: assertions")
    expected = raw.get("expected_output")
    if expected is not None and not isinstance(expected, str):
        raise UsageError(f"{where}: expected_output must be a string.")
    paths = [_fixture(path, f, where) for f in files]
    task = _task_of(path, raw.get("task"), paths, where)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{case_id}_{task.stem}")
    return Case(name, task, prompt=prompt, files=tuple(p for p in paths if p != task), assertions=tuple(assertions),
                expected_output=expected)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what} must be a list of strings.")
    return value


def _fixture(eval_file: Path, name: str, where: str) -> Path:
    here = eval_file.parent
    tried = [here / name]
    if Path(name).parts[:1] == ("evals",):  # the guide writes fixtures relative to the skill folder
        tried.append(here.parent / name)
    for candidate in tried:
        if candidate.is_file():
            return candidate.resolve()
    raise UsageError(f"{where}: file {name!r} does not exist next to {eval_file.name}; fix the path.")


def _task_of(eval_file: Path, task: Any, paths: list[Path], where: str) -> Path:
    if task is not None:
        if not isinstance(task, str):
            raise UsageError(f"{where}: task must be a bundled task name or a path.")
        local = eval_file.parent / task
        return local.resolve() if local.is_file() else resolve(task)
    scripts = [p for p in paths if p.suffix == ".py"]
    if len(scripts) != 1:
        found = "no .py file" if not scripts else f"{len(scripts)} .py files"
        raise UsageError(f"{where} lists {found} in files; name its task file with \"task\": \"file.py\" (or a "
                         "bundled task name).")
    return scripts[0]
