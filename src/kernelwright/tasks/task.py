"""The Task model: a KernelBench-format file plus kernelwright's optional extensions.

A task file defines ``class Model(nn.Module)``, ``get_inputs()`` and ``get_init_inputs()``. Its
module-level integer constants are shape knobs that the verifier rebinds to draw other shapes.
Optional extensions: ``DTYPES``, ``SHAPES``, ``ATOL``/``RTOL``, ``REPLACES``, ``NATIVE``,
``KNOB_MULTIPLE_OF``, ``FIXED``, ``DESCRIPTION``, ``INIT_VALUES`` (other values of constructor arguments
to verify with, by position in ``get_init_inputs()``: see ``verify/constructor.py``).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from kernelwright.errors import UsageError

SUITE_DIR = Path(__file__).parent / "suite"

# Integer constants at or below this value are taken as fixed parameters (a reduction dim, a kernel
# size), not shape knobs: KernelBench files write `dim = 1` beside `batch_size = 16`.
SMALLEST_KNOB = 8

_EXTENSIONS = {"DTYPES", "SHAPES", "ATOL", "RTOL", "REPLACES", "NATIVE", "PEERS", "KNOB_MULTIPLE_OF", "FIXED",
               "DESCRIPTION", "INIT_VALUES"}
_module_counter = itertools.count()


@dataclass(frozen=True)
class Task:
    """What kernelwright knows about a task file without running its model."""

    name: str
    path: Path
    knobs: dict[str, int]
    fixed: dict[str, int] = field(default_factory=dict)
    dtype_names: tuple[str, ...] = ("float32",)
    shapes: tuple[dict[str, int], ...] = ()
    atol: float | None = None
    rtol: float | None = None
    replaces: str | None = None
    has_native: bool = False
    knob_multiple_of: dict[str, int] = field(default_factory=dict)
    description: str = ""

    @property
    def source(self) -> str:
        return self.path.read_text()

    @property
    def dtypes(self) -> list:
        import torch

        return [getattr(torch, n) for n in self.dtype_names]

    @property
    def bench_shapes(self) -> list[dict[str, int]]:
        """The shapes to benchmark: ``SHAPES`` when given, else the file's own knob values."""
        return [dict(s) for s in self.shapes] or [dict(self.knobs)]

    def load(self) -> ModuleType:
        """Import a fresh copy of the task module (knob rebinding never leaks between copies)."""
        return import_file(self.path, prefix="kw_task")


def import_file(path: Path, *, prefix: str) -> ModuleType:
    """Import a Python file as a new, uniquely named module."""
    name = f"{prefix}_{path.stem}_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} is not a Python file that can be imported.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def bundled_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.py") if not p.stem.startswith("_"))


def resolve(task: str | Path) -> Path:
    """A task argument is a path to a file or the short name of a bundled task."""
    path = Path(task)
    if path.is_file():
        return path.resolve()
    bundled = SUITE_DIR / f"{task}.py"
    if bundled.is_file() and str(task) in bundled_names():
        return bundled
    raise UsageError(
        f"Task '{task}' is neither a file nor a bundled task; bundled tasks are: "
        f"{', '.join(bundled_names())} (see `kernelwright tasks`)."
    )


def candidate_file(candidate: str | Path) -> Path:
    """A candidate argument must be an existing file; the absolute path is what workers are given."""
    path = Path(candidate)
    if not path.is_file():
        raise UsageError(f"Candidate file {candidate} does not exist; pass a Python file that defines `ModelNew`.")
    return path.resolve()


def load_task(task: str | Path) -> Task:
    """Load and check a task: it must import, define Model and the input functions, and build inputs."""
    path = resolve(task)
    try:
        module = import_file(path, prefix="kw_task")
    except UsageError:
        raise
    except BaseException as exc:  # a task file may raise anything at import, SystemExit included
        raise UsageError(f"Task file {path} failed to import ({type(exc).__name__}: {exc}); fix the file.") from None
    for required in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, required):
            raise UsageError(f"Task file {path} does not define `{required}`; a KernelBench-format task needs "
                             "`class Model(nn.Module)`, `get_inputs()` and `get_init_inputs()`.")
    task_obj = _describe(path, module)
    _check_builds(task_obj)
    return task_obj


def _describe(path: Path, module: ModuleType) -> Task:
    import torch

    fixed_names = set(getattr(module, "FIXED", ()))
    knobs, fixed = {}, {}
    for key, value in vars(module).items():
        if key.startswith("_") or key in _EXTENSIONS or type(value) is not int:
            continue
        if key in fixed_names or value <= SMALLEST_KNOB and key not in getattr(module, "KNOB_MULTIPLE_OF", {}):
            fixed[key] = value
        else:
            knobs[key] = value
    dtypes = getattr(module, "DTYPES", [torch.float32])
    bad = [d for d in dtypes if not isinstance(d, torch.dtype) or not d.is_floating_point]
    if bad or not dtypes:
        raise UsageError(f"Task file {path}: DTYPES must be a non-empty list of torch floating dtypes, got {dtypes!r}.")
    shapes = tuple(dict(s) for s in getattr(module, "SHAPES", ()))
    for shape in shapes:
        unknown = set(shape) - set(knobs)
        if unknown:
            raise UsageError(f"Task file {path}: SHAPES names {sorted(unknown)}, which are not shape knobs "
                             f"(knobs: {sorted(knobs)}).")
    return Task(
        name=path.stem,
        path=path,
        knobs=knobs,
        fixed=fixed,
        dtype_names=tuple(str(d).removeprefix("torch.") for d in dtypes),
        shapes=shapes,
        atol=_optional_float(module, "ATOL", path),
        rtol=_optional_float(module, "RTOL", path),
        replaces=getattr(module, "REPLACES", None),
        has_native=callable(getattr(module, "NATIVE", None)),
        knob_multiple_of=dict(getattr(module, "KNOB_MULTIPLE_OF", {})),
        description=getattr(module, "DESCRIPTION", "") or (module.__doc__ or "").strip().split("\n")[0],
    )


def _optional_float(module: ModuleType, name: str, path: Path) -> float | None:
    value = getattr(module, name, None)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or value < 0:
        raise UsageError(f"Task file {path}: {name} must be a non-negative number, got {value!r}.")
    return float(value)


def instantiate(module: ModuleType, knobs: dict[str, int]) -> tuple[list[Any], list[Any]]:
    """Rebind the shape knobs on a task module and call its input functions: (inputs, init_inputs)."""
    for key, value in knobs.items():
        setattr(module, key, value)
    return list(module.get_inputs()), list(module.get_init_inputs())


def _check_builds(task: Task) -> None:
    """Call the task's functions at the smallest legal shape so a broken file fails here, clearly."""
    from kernelwright.tasks.knobs import tiny_shape

    module = task.load()
    try:
        instantiate(module, tiny_shape(task))
    except BaseException as exc:
        raise UsageError(f"Task file {task.path}: get_inputs()/get_init_inputs() failed at a small shape "
                         f"({type(exc).__name__}: {exc}); inputs must be built from the module's knobs.") from None
