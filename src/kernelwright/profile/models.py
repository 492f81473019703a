"""The model a profile runs: a named one (``llama``/``qwen3`` at a ``--size``, as ``kernelwright e2e``
builds it) or a local ``transformers`` config file or model directory (random weights unless the directory
holds weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelwright.errors import UsageError
from kernelwright.package.e2e import CONFIGS, MODELS, SIZES, _fill_random, _transformers, build_model

WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


def check_model(model: str, size: str) -> None:
    """A named model at a known size, or a path that exists; anything else is a usage error, before any work."""
    if model in MODELS:
        if (model, size) not in CONFIGS:
            raise UsageError(f"Unknown size '{size}' for {model}; sizes: {', '.join(SIZES)}.")
    elif not Path(model).exists():
        raise UsageError(f"Unknown model '{model}': pass {' or '.join(MODELS)} (with --size), or a transformers "
                         "config file or model directory.")


def load_model(model: str, size: str, *, device: str, dtype, layers: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, the config values it was built from)."""
    check_model(model, size)
    if model in MODELS:
        return build_model(model, size, device=device, dtype=dtype, layers=layers)
    return _from_config(Path(model), device=device, dtype=dtype, layers=layers)


def _from_config(path: Path, *, device: str, dtype, layers: int | None):
    import torch

    tf = _transformers()
    try:
        config = tf.AutoConfig.from_pretrained(str(path))
    except Exception as exc:  # transformers raises many kinds for a bad or unknown config
        raise UsageError(f"transformers cannot read a config from {path} ({type(exc).__name__}: "
                         f"{_first_line(exc)}); pass a config.json or a model directory.") from None
    if layers:
        config.num_hidden_layers = layers
    config._attn_implementation = "sdpa"
    try:
        if path.is_dir() and any(next(path.glob(p), None) for p in WEIGHT_FILES):
            net = tf.AutoModelForCausalLM.from_pretrained(str(path), config=config, dtype=dtype).to(device)
        else:
            with torch.device("meta"):  # shapes only; filled with seeded random values on the device
                net = tf.AutoModelForCausalLM.from_config(config, dtype=dtype)
            net.to_empty(device=device)
            _fill_random(net, config, device)
    except Exception as exc:
        raise UsageError(f"transformers cannot build a causal LM from {path} ({type(exc).__name__}: "
                         f"{_first_line(exc)}); check the config's model_type and sizes.") from None
    return net.eval(), config.to_dict()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
