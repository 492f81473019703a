"""End-to-end numbers: a packaged layer inside a ``transformers`` model built from a config (random
weights, nothing downloaded).

Checks the kernelized model's logits against eager, then times prefill (one forward over the prompt)
and decode (one token against a KV cache of the prompt's length, the cache cropped back after each step)
for eager, ``torch.compile``, kernelized and kernelized + ``torch.compile``. The profiler measures the
share of time the replaced modules take, so the end-to-end gain can be checked against Amdahl's law:
a layer taking share p of the time, made s times faster, gives 1 / ((1 - p) + p / s) at most.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.errors import UsageError
from kernelwright.hardware import describe, resolve_device

MODELS = ("llama", "qwen3")
SIZES = ("small", "8b-shape")
# Published shapes of Llama-3-8B and Qwen3-8B; "small" keeps CPU runs (Triton interpreter) short.
CONFIGS: dict[tuple[str, str], dict[str, Any]] = {
    ("llama", "small"): dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
    ("qwen3", "small"): dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=1024),
    ("llama", "8b-shape"): dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                                max_position_embeddings=8192),
    ("qwen3", "8b-shape"): dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                                num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                                max_position_embeddings=8192),
}
PROMPT = {"small": (1, 32), "8b-shape": (1, 2048)}  # (batch, prompt tokens)
LOGITS_TOL = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 1e-2}  # relative L2 of kernelized vs eager logits
REPLACED_LABEL = "kernelwright::replaced"
FORWARD_LABEL = "kernelwright::forward"


@dataclass
class E2EResult:
    model: str
    size: str
    device: str
    dtype: str
    timings_meaningful: bool
    environment: dict[str, Any]
    config: dict[str, Any]
    prompt: tuple[int, int]
    kernel: str | None = None
    kernelize: dict[str, Any] | None = None
    logits_check: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # variant, phase, median_ms, q25_ms, q75_ms, n
    shares: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> phase -> share
    amdahl: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"schema": "kernelwright.e2e/1", **{k: v for k, v in self.__dict__.items()}}


def _transformers():
    try:
        import transformers
    except ImportError:
        raise UsageError("`kernelwright e2e` needs `transformers`; install `pip install 'kernelwright[package]'`.") from None
    return transformers


def build_model(model: str, size: str, *, device: str, dtype, layers: int | None = None):
    import torch

    tf = _transformers()
    if (model, size) not in CONFIGS:
        raise UsageError(f"Unknown model/size {model}/{size}; models: {', '.join(MODELS)}; sizes: {', '.join(SIZES)}.")
    values = dict(CONFIGS[(model, size)])
    if layers:
        values["num_hidden_layers"] = layers
    config_cls = tf.LlamaConfig if model == "llama" else tf.Qwen3Config
    config = config_cls(**values)
    config._attn_implementation = "sdpa"
    # transformers' own random initialisation of an 8B-shaped model took over five minutes on an H200;
    # shapes are all this needs, so the model is built on the meta device and filled on the target device.
    with torch.device("meta"):
        net = tf.AutoModelForCausalLM.from_config(config, dtype=dtype)
    net.to_empty(device=device)
    _fill_random(net, config, device)
    return net.eval(), values


def _fill_random(net, config, device: str) -> None:
    """Seeded random weights (normal(0, initializer_range) for matrices, normal(1, 0.1) for norm scales, so a
    kernel that ignores its weight is seen in the logits) and the rotary buffers recomputed for real."""
    import torch

    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif param.dim() >= 2:
                param.normal_(0.0, config.initializer_range, generator=gen)
            else:
                param.normal_(1.0, 0.1, generator=gen)
        for parent in list(net.modules()):
            for child_name, child in parent.named_children():
                if type(child).__name__.endswith("RotaryEmbedding"):
                    with torch.device(device):
                        setattr(parent, child_name, type(child)(config=config))
    if getattr(config, "tie_word_embeddings", False):
        net.tie_weights()


def _timer(device: str):
    import torch

    def run(fn, reps: int, warmup: int) -> dict[str, float]:
        for _ in range(warmup):
            fn()
        samples, host = [], []
        for _ in range(reps):
            if device.startswith("cuda"):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                t0 = time.perf_counter()
                fn()
                # the host's time to enqueue the step: above the GPU's, the step is host-bound
                host.append((time.perf_counter() - t0) * 1e3)
                end.record()
                torch.cuda.synchronize()
                samples.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t0) * 1e3)
        qs = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else [samples[0]] * 3
        return {"median_ms": statistics.median(samples), "q25_ms": qs[0], "q75_ms": qs[2], "n": len(samples),
                "host_ms": statistics.median(host) if host else None}

    return run


def _workloads(net, prompt_ids):
    """(prefill, decode) callables on ``net`` (a model or its compiled wrapper)."""
    import torch
    from transformers import DynamicCache

    batch, length = prompt_ids.shape
    next_ids = prompt_ids[:, -1:]
    with torch.no_grad():
        cache = DynamicCache()
        net(input_ids=prompt_ids, past_key_values=cache, use_cache=True)

    def prefill():
        with torch.no_grad():
            return net(input_ids=prompt_ids, use_cache=False).logits

    def decode():
        with torch.no_grad():
            out = net(input_ids=next_ids, past_key_values=cache, use_cache=True)
        extra = cache.get_seq_length() - length
        if extra > 0:
            cache.crop(-extra)  # back to the prompt's length: every step sees the same cache size
        return out.logits

    return prefill, decode


def _hook_replaced(modules):
    """Profiler ranges around each replaced module's call."""
    import torch

    handles, open_ranges = [], []

    def pre(_module, _args):
        rf = torch.autograd.profiler.record_function(REPLACED_LABEL)
        rf.__enter__()
        open_ranges.append(rf)

    def post(_module, _args, _out):
        open_ranges.pop().__exit__(None, None, None)

    for m in modules:
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    return handles


def _share(fn, modules, device: str) -> float:
    """Share of the forward's time spent inside the replaced modules: device (kernel) time on a GPU,
    host time on CPU."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    fn()
    handles = _hook_replaced(modules)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    try:
        with _quiet_profiler(profile(activities=activities)) as prof:
            with record_function(FORWARD_LABEL):
                fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
    finally:
        for h in handles:
            h.remove()
    events = prof.events()
    if device.startswith("cuda"):
        def kernel_us(e) -> float:
            return sum(k.duration for k in e.kernels) + sum(kernel_us(c) for c in e.cpu_children)

        total = sum(sum(k.duration for k in e.kernels) for e in events)
        inside = sum(kernel_us(e) for e in events if e.name == REPLACED_LABEL)
        if total > 0:
            return inside / total
    total = sum(e.cpu_time_total for e in events if e.name == FORWARD_LABEL)
    inside = sum(e.cpu_time_total for e in events if e.name == REPLACED_LABEL)
    return inside / total if total else float("nan")


@contextlib.contextmanager
def _silenced_fds():
    """stdout and stderr closed at the file-descriptor level: the profiler's C++ side prints raw
    ``USDT: ... profiler_start`` lines there, which Python's own redirection never sees."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


@contextlib.contextmanager
def _quiet_profiler(prof):
    """The profiler started and stopped silenced, and only then: what the profiled code prints still shows."""
    with _silenced_fds():
        prof.start()
    try:
        yield prof
    finally:
        with _silenced_fds():
            prof.stop()


def run_e2e(model: str = "qwen3", size: str = "small", *, kernel: Path | None = None, device: str = "auto",
            dtype: str | None = None, out: Path | None = None, compile: bool = True, layers: int | None = None,
            prompt: tuple[int, int] | None = None, reps: int | None = None, progress=None) -> E2EResult:
    # transformers' deprecation FutureWarnings (``past_key_values``) are about its API, nothing a user can act on
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _run_e2e(model, size, kernel=kernel, device=device, dtype=dtype, out=out, compile=compile,
                        layers=layers, prompt=prompt, reps=reps, progress=progress)


def _run_e2e(model: str, size: str, *, kernel: Path | None, device: str, dtype: str | None, out: Path | None,
             compile: bool, layers: int | None, prompt: tuple[int, int] | None, reps: int | None,
             progress) -> E2EResult:
    import torch

    from kernelwright.package.kernelize import kernelize_model, read_package, unkernelize

    started = time.perf_counter()

    def step(message: str) -> None:  # a long model run shows where it is, and a timeout shows where it stopped
        if progress:
            progress(f"[e2e {time.perf_counter() - started:6.1f} s] {message}")

    device = resolve_device(device)
    if kernel and not device.startswith("cuda"):
        _interpret_triton()
    if size == "8b-shape" and not device.startswith("cuda"):
        raise UsageError("--size 8b-shape needs a GPU; on CPU run --size small (timings are not meaningful there).")
    if model not in MODELS or size not in SIZES:
        raise UsageError(f"Unknown model/size {model}/{size}; models: {', '.join(MODELS)}; sizes: {', '.join(SIZES)}.")
    dtype = dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    if dtype not in LOGITS_TOL:
        raise UsageError(f"--dtype must be one of {', '.join(LOGITS_TOL)}.")
    info = read_package(kernel) if kernel else None
    if info and dtype not in info["dtypes"]:
        raise UsageError(f"The kernel in {kernel} was verified for {', '.join(info['dtypes'])}, not {dtype}.")
    torch_dtype = getattr(torch, dtype)
    step(f"building {model} {size} ({layers or 'all'} layers, {dtype}) on {device}")
    net, config = build_model(model, size, device=device, dtype=torch_dtype, layers=layers)
    batch, length = prompt or PROMPT[size]
    result = E2EResult(model=model, size=size, device=device, dtype=dtype,
                       timings_meaningful=device.startswith("cuda"), environment=describe(device), config=config,
                       prompt=(batch, length), kernel=str(kernel) if kernel else None)
    if not result.timings_meaningful:
        result.notes.append(_cpu_note(kernel))
        if not kernel:  # the device's name says "Triton interpreter", which no call here goes through
            name = result.environment.get("device_name", "")
            result.environment["device_name"] = name.replace(", Triton interpreter", "")
    gen = torch.Generator(device="cpu").manual_seed(0)
    prompt_ids = torch.randint(0, config["vocab_size"], (batch, length), generator=gen).to(device)
    timer = _timer(device)
    n = reps or (20 if device.startswith("cuda") else 3)
    names = _sibling_names(net, info) if info else set()
    replaced = [m for m in net.modules() if type(m).__name__ in names]

    def measure(variant: str, target, profile_modules=None) -> None:
        step(f"measuring {variant}")
        prefill, decode = _workloads(target, prompt_ids)
        for phase, fn in (("prefill", prefill), ("decode", decode)):
            step(f"{variant}: timing {phase}")
            row = {"variant": variant, "phase": phase, **timer(fn, n, warmup=3 if n > 3 else 1)}
            result.rows.append(row)
            if profile_modules:
                step(f"{variant}: profiling {phase}")
                result.shares.setdefault(variant, {})[phase] = _share(fn, profile_modules, device)
        _write(result, out)  # partial results survive a timeout

    eager_logits = _workloads(net, prompt_ids)[0]()[:, -1].float()
    measure("eager", net, replaced or _modules_by_key(net, "RMSNorm"))
    if kernel:  # before the compiled variants: their compile time is the part most likely to run out of time
        step("kernelizing")
        report = kernelize_model(net, kernel, device=device, compile_mode=False)
        result.kernelize = report.__dict__
        if report.swapped == 0:
            raise UsageError(f"The kernel in {kernel} replaced no module of the {model} model "
                             f"(layer {report.layer}, key {report.layer_key}).")
        kern_logits = _workloads(net, prompt_ids)[0]()[:, -1].float()
        rel = float((kern_logits - eager_logits).norm() / eager_logits.norm().clamp_min(1e-30))
        agree = float((kern_logits.argmax(-1) == eager_logits.argmax(-1)).float().mean())
        calls = _op_calls(_workloads(net, prompt_ids)[0], info)
        result.logits_check = {"rel_l2": rel, "tolerance": LOGITS_TOL[dtype], "kernel_calls": calls,
                               "passed": rel <= LOGITS_TOL[dtype] and calls > 0, "argmax_agreement": agree}
        if calls == 0:
            result.notes.append("The packaged kernel never ran in the kernelized model: every call went back to "
                                "the original forward (the log says why).")
        measure("kernelized", net, replaced)
        unkernelize(net)
        result.amdahl = _amdahl(result)
        _write(result, out)
    else:
        variants = "eager and torch.compile" if compile else "eager"
        result.notes.append(f"No --kernel given: nothing was kernelized ({variants} only); the eager share of RMSNorm "
                            "bounds any gain a kernel for it could give. Pass --kernel DIR (a `kernelwright package` "
                            "output) to measure one.")
    if compile:
        torch._dynamo.reset()
        measure("torch.compile", torch.compile(net, dynamic=False))
        if kernel:
            kernelize_model(net, kernel, device=device, compile_mode=True)
            torch._dynamo.reset()
            measure("kernelized+torch.compile", torch.compile(net, dynamic=False))
            unkernelize(net)
        torch._dynamo.reset()
    step("done")
    _write(result, out)
    return result


def _cpu_note(kernel: Path | None) -> str:
    """What a CPU run's timings are: the interpreter's when a Triton kernel ran, else PyTorch's on the host."""
    if kernel:
        return "CPU run: timings are NOT meaningful (the kernel runs through Triton's interpreter)."
    return "CPU run: these are PyTorch's own ops timed on the host; no Triton kernel ran, and no GPU was measured."


def _interpret_triton() -> None:
    """On CPU the packaged Triton kernel runs through Triton's interpreter, which must be switched on before
    Triton is first imported (its own language functions are defined at import)."""
    import os
    import sys

    if os.environ.get("TRITON_INTERPRET") == "1":
        return
    if "triton.language" in sys.modules:
        raise UsageError("On CPU the kernel runs through Triton's interpreter, which must be on before Triton is "
                         "imported; run `TRITON_INTERPRET=1 kernelwright e2e ...`.")
    os.environ["TRITON_INTERPRET"] = "1"


def _op_calls(fn, info) -> int:
    """How many times the packaged op ran during ``fn`` (profiler events named <namespace>::<function>)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_profiler(profile(activities=[ProfilerActivity.CPU])) as prof:
        fn()
    prefix = "_" + info["name"].replace("-", "_") + "_"
    return sum(1 for e in prof.events() if e.name.startswith(prefix) and e.name.endswith("::" + info["function"]))


def _sibling_names(net, info) -> set[str]:
    """Classes in the model under the kernel's mapping key (kernelize_model decides which it swaps)."""
    from kernelwright.package.replaced import declared_layer_name

    key = info["layer_key"]
    return {type(m).__name__ for m in net.modules()
            if (getattr(type(m), "kernel_layer_name", None) or declared_layer_name(type(m))) == key}


def _modules_by_key(net, key: str):
    from kernelwright.package.replaced import declared_layer_name

    return [m for m in net.modules() if (getattr(type(m), "kernel_layer_name", None) or declared_layer_name(type(m))) == key]


def _amdahl(result: E2EResult) -> dict[str, dict[str, float]]:
    """Per phase: the eager share p, the replaced modules' own speedup s (from the shares and totals), the
    Amdahl prediction 1/((1-p)+p/s), the measured end-to-end speedup and the ceiling 1/(1-p)."""
    times = {(r["variant"], r["phase"]): r["median_ms"] for r in result.rows}
    out = {}
    for phase in ("prefill", "decode"):
        p = result.shares.get("eager", {}).get(phase)
        pk = result.shares.get("kernelized", {}).get(phase)
        te, tk = times.get(("eager", phase)), times.get(("kernelized", phase))
        if None in (p, pk, te, tk) or not pk or not tk:
            continue
        s = (p * te) / (pk * tk)
        out[phase] = {"share_eager": p, "share_kernelized": pk, "op_speedup": s,
                      "predicted_speedup": 1 / ((1 - p) + p / s), "measured_speedup": te / tk,
                      "ceiling": 1 / (1 - p) if p < 1 else float("inf")}
    return out


def _write(result: E2EResult, out: Path | None) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.json").write_text(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    eager = {r["phase"]: r["median_ms"] for r in result.rows if r["variant"] == "eager"}
    with open(out / "e2e.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "size", "device", "dtype", "variant", "phase", "median_ms", "q25_ms", "q75_ms", "n",
                    "speedup_vs_eager", "replaced_share", "timings_meaningful"])
        for r in result.rows:
            w.writerow([result.model, result.size, result.environment.get("device_name"), result.dtype, r["variant"],
                        r["phase"], f"{r['median_ms']:.4f}", f"{r['q25_ms']:.4f}", f"{r['q75_ms']:.4f}", r["n"],
                        f"{eager[r['phase']] / r['median_ms']:.3f}" if r["phase"] in eager else "",
                        f"{result.shares.get(r['variant'], {}).get(r['phase'], float('nan')):.4f}",
                        result.timings_meaningful])
    plot(result, out / "e2e.png")


def plot(result: E2EResult, path: Path) -> bool:
    """Bars of median latency per variant, prefill and decode side by side; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        result.notes.append("matplotlib is not installed: no PNG (pip install 'kernelwright[plot]').")
        return False
    variants = list(dict.fromkeys(r["variant"] for r in result.rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, phase in zip(axes, ("prefill", "decode")):
        values = [next((r["median_ms"] for r in result.rows if r["variant"] == v and r["phase"] == phase), 0)
                  for v in variants]
        ax.bar(range(len(variants)), values, color=["#888", "#58a", "#d62", "#a42"][:len(variants)])
        ax.set_xticks(range(len(variants)), variants, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("median ms")
        ax.set_title(f"{phase} (batch {result.prompt[0]}, {result.prompt[1]} tokens)")
    note = ("" if result.timings_meaningful else
            " — CPU: NOT meaningful (Triton interpreter)" if result.kernel else " — CPU timings, not a GPU's")
    fig.suptitle(f"{result.model} {result.size}, {result.dtype}, {result.environment.get('device_name')}{note}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
