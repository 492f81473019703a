"""Attribution on a GPU's event tree (built by hand: this machine has no GPU): each kernel counted once, on
the outermost op above it, and kernels launched straight from Python under their module."""

from types import SimpleNamespace

from kernelwright.profile.attribute import MODULE, STEP, samples, step_time_us


def _event(name, parent=None, kernels=(), device="CPU"):
    event = SimpleNamespace(name=name, cpu_parent=parent, cpu_children=[], device_type=SimpleNamespace(name=device),
                            kernels=[SimpleNamespace(name=k, duration=us) for k, us in kernels], input_shapes=[],
                            input_dtypes=[], concrete_inputs=[], flops=0, cpu_time_total=0.0)
    if parent is not None:
        parent.cpu_children.append(event)
    return event


def _tree():
    step = _event(STEP)
    norm = _event(f"{MODULE}Qwen3RMSNorm::model.norm", step)
    triton = _event(f"{MODULE}Qwen3RMSNorm::model.layers.0.input_layernorm", step, kernels=[("_rmsnorm_kernel", 5.0)])
    linear = _event("aten::linear", _event(f"{MODULE}Linear::lm_head", step))
    mm = _event("aten::mm", linear, kernels=[("sm90_gemm", 10.0)])
    launch = _event("cudaLaunchKernel", mm)  # runtime event under the op: no kernels of its own
    pow_ = _event("aten::pow", norm, kernels=[("pow_kernel", 2.0)])
    sync = _event("aten::item", norm)  # host-only op: no device time
    return [step, norm, triton, linear, mm, launch, pow_, sync]


def test_each_kernel_is_counted_once_on_its_outermost_op():
    found = {(s.owner_class, s.op): s.time_us for s in samples(_tree(), on_gpu=True)}
    assert found == {("Linear", "aten::linear"): 10.0, ("Qwen3RMSNorm", "aten::pow"): 2.0,
                     ("Qwen3RMSNorm", "kernel:_rmsnorm_kernel"): 5.0}
    assert step_time_us(_tree(), on_gpu=True) == 17.0
