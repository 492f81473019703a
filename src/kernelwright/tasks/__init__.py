"""Tasks: KernelBench-format operator files, their shape knobs and the bundled suite."""

from kernelwright.tasks.task import Task, bundled_names, instantiate, load_task, resolve

__all__ = ["Task", "bundled_names", "instantiate", "load_task", "resolve"]
