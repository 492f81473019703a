"""The launch fast path every generated module carries (issue #13): its key separates what Triton compiles
apart, it stays out of the way under the interpreter, and a launcher that fails on its first fast use turns
it off for the process, the launch going the normal way.

No GPU here: the fast path is driven with a stand-in kernel (a JITFunction whose launch is recorded), a
stand-in compiled kernel and a stand-in driver, and tensors that report themselves on the GPU.
"""

import importlib.util
import logging
import os
import subprocess
import sys

import pytest
import torch
import triton
from triton.runtime import JITFunction

from kernelwright.search import variants
from kernelwright.search.capture import capture
from kernelwright.search.codegen import generate
from kernelwright.tasks.task import load_task

CONFIG = variants.config(one_pass=True, rows=4, warps=4)


@pytest.fixture(scope="module")
def source():
    return generate(capture(load_task("rmsnorm")), [((1, 1), CONFIG)])


@pytest.fixture
def module(source, tmp_path):
    path = tmp_path / "candidate.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("candidate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class OnGpu(torch.Tensor):
    """A CPU tensor that says it is on the GPU: the key reads only its dtype and address."""

    @property
    def is_cuda(self):
        return True


def gpu(t):
    return t.as_subclass(OnGpu)


class Driver:
    """The active driver as the fast path reads it: a device index and that device's stream."""

    def get_current_device(self):
        return 0

    def get_current_stream(self, device):
        return 1000 + device


@pytest.fixture
def driver():
    before = triton.runtime.driver._active
    triton.runtime.driver.set_active(Driver())
    yield
    triton.runtime.driver._active = before


class Compiled:
    """A CompiledKernel's launch surface; its launcher records each call, or raises ``error``."""

    def __init__(self, error=None):
        self.function, self.packed_metadata, self.calls, self.error = "function", "metadata", [], error

    def run(self, *args):
        if self.error is not None:
            raise self.error
        self.calls.append(args)


class Kernel(JITFunction):
    """A JITFunction of (x_ptr, n, eps, BLOCK: constexpr) whose kernel[grid](...) records the call and
    returns ``compiled``, as JITFunction.run returns its CompiledKernel."""

    def __init__(self, compiled):
        self.arg_names = ["x_ptr", "n", "eps", "BLOCK"]
        self.params = [type("Param", (), {"is_constexpr": name == "BLOCK"})() for name in self.arg_names]
        self.pre_run_hooks, self.compiled, self.slow = [], compiled, []

    def run(self, *args, grid, warmup, **kwargs):
        self.slow.append((grid, args, kwargs))
        return self.compiled

    __hash__ = object.__hash__


def key(mod, *args, warps=4, stages=2, **constexprs):
    return mod._launch_key(mod._launch, args, constexprs or {"BLOCK": 16}, warps, stages)


def test_the_key_separates_what_triton_compiles_apart(module, driver):
    x = gpu(torch.zeros(64))
    same = key(module, x, 32, 1e-6)
    assert same == key(module, gpu(torch.zeros(64)), 32, 0.5)        # another aligned tensor, another float
    assert same != key(module, x, 33, 1e-6)                            # another int value
    assert same != key(module, x, 1, 1e-6)                             # 1 is a constant to Triton
    assert same != key(module, gpu(torch.zeros(64, dtype=torch.float16)), 32, 1e-6)
    assert x[4:].data_ptr() % 16 == 0 and x[1:].data_ptr() % 16 != 0
    assert same == key(module, x[4:], 32, 1e-6)
    assert same != key(module, x[1:], 32, 1e-6)                        # not 16-byte aligned
    assert same != key(module, x, 32, 1e-6, BLOCK=32)                  # another constexpr
    assert same != key(module, x, 32, 1e-6, BLOCK=True)                # True and 1 compile apart
    assert same != key(module, x, 32, 1e-6, warps=8)
    assert same != key(module, x, 32, 1e-6, stages=3)
    assert key(module, torch.zeros(64), 32, 1e-6) is None              # a CPU tensor: the normal launch
    assert key(module, x, "32", 1e-6) is None                          # an argument it does not know


def test_later_launches_call_the_compiled_kernel_as_jitfunction_run_does(module, driver):
    compiled = Compiled()
    kernel = Kernel(compiled)
    x = gpu(torch.zeros(64))
    for n in (32, 32, 32, 48):
        module._launch(kernel, (5,), x, n, 0.5, BLOCK=16, num_warps=4, num_stages=2)
    assert [call[1][1] for call in kernel.slow] == [32, 48]            # each new int value compiles its way
    assert kernel.slow[0][2] == {"BLOCK": 16, "num_warps": 4, "num_stages": 2}
    hooks = triton.knobs.runtime
    want = (5, 1, 1, 1000, "function", "metadata", None, hooks.launch_enter_hook, hooks.launch_exit_hook,
            x, 32, 0.5, 16)
    assert compiled.calls == [want, want]


def test_the_fast_path_turns_itself_off_when_the_launcher_fails(module, driver, caplog):
    kernel = Kernel(Compiled(error=TypeError("launcher of another Triton")))
    x = gpu(torch.zeros(64))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            module._launch(kernel, (5,), x, 32, 0.5, BLOCK=16, num_warps=4, num_stages=2)
    assert len(kernel.slow) == 3                                       # the failed fast launch went the normal way
    assert module.FAST_LAUNCH is False
    assert [r.getMessage() for r in caplog.records if "fast path" in r.getMessage()] == [
        "launch fast path off for this process (TypeError: launcher of another Triton); launches go through "
        "kernel[grid](...)"]


def test_a_failure_after_the_fast_path_worked_is_raised(module, driver):
    compiled = Compiled()
    kernel = Kernel(compiled)
    x = gpu(torch.zeros(64))
    for _ in range(2):
        module._launch(kernel, (5,), x, 32, 0.5, BLOCK=16, num_warps=4, num_stages=2)
    compiled.error = RuntimeError("a real launch error")
    with pytest.raises(RuntimeError, match="a real launch error"):
        module._launch(kernel, (5,), x, 32, 0.5, BLOCK=16, num_warps=4, num_stages=2)
    assert module.FAST_LAUNCH is True


def test_watched_launches_and_the_switch_go_the_normal_way(module, driver, monkeypatch):
    compiled = Compiled()
    kernel = Kernel(compiled)
    x = gpu(torch.zeros(64))

    def launch_twice():
        for _ in range(2):
            module._launch(kernel, (5,), x, 32, 0.5, BLOCK=16, num_warps=4, num_stages=2)

    monkeypatch.setattr(module, "FAST_LAUNCH", False)
    launch_twice()
    monkeypatch.setattr(module, "FAST_LAUNCH", True)
    counted = Kernel.run

    def counting(*args, **kwargs):  # the verifier's guard counts launches through a wrapped run
        return counted(*args, **kwargs)
    counting.__wrapped__ = counted
    monkeypatch.setattr(Kernel, "run", counting)
    launch_twice()
    monkeypatch.setattr(Kernel, "run", counted)
    monkeypatch.setattr(kernel, "pre_run_hooks", [lambda *a, **k: None])
    launch_twice()
    assert len(kernel.slow) == 6 and compiled.calls == []


INTERPRETED = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("candidate", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
model = mod.ModelNew(64, 1e-6)
x = torch.randn(3, 64)
want = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * model.weight
for _ in range(3):
    torch.testing.assert_close(model(x), want)
print("interpreted", type(mod._rows_kernel).__name__, mod._unwatched(mod._rows_kernel), len(mod._LAUNCHES),
      mod.FAST_LAUNCH)
"""


def test_under_the_interpreter_every_launch_goes_the_normal_way(source, tmp_path):
    path = tmp_path / "candidate.py"
    path.write_text(source)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", INTERPRETED, str(path)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "interpreted InterpretedFunction False 0 True" in done.stdout, done.stdout
