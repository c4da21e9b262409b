"""Which device and dtype a model runs in, and why (the reason is shown beside the model's name).

- CPU: float32 for models under 1.5B parameters. This tool shows probabilities: on the embedded model
  bfloat16 moved them by up to 0.024, for a captured turn only 1.19x faster (bench/run.py, interleaved:
  prefill 2.4x, plain decoding 1.36x, but a captured step also does dtype-independent work). A larger model
  (gemma-2-2b-it: 2.6B) runs in bfloat16 on a CPU: float32 would need 10.5 GB and decode at a fraction of
  its 0.8 tokens a second, so a CPU Space could not hold or serve it.
- A GPU with native bfloat16 (Ampere and newer, and ZeroGPU's H200 slices): bfloat16, Gemma's own dtype.
- A GPU without it (a T4, a V100): `torch.cuda.is_bf16_supported()` says True there, through emulation,
  which is slow, so it is asked with `including_emulation=False`. Gemma's residual stream is large (norms
  in the thousands) and float16 overflows past 65,504 into inf/NaN (tests/engine/test_devices.py shows
  it on a tiny Gemma 2), so Gemma models get float32 there; other architectures float16.
"""

from __future__ import annotations

from typing import Any

import torch

from inspectors.errors import ModelLoadError
from inspectors.settings import Settings

# Architectures whose activations overflow float16 (config.model_type)
FP16_UNSAFE = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "gemma3n", "gemma3n_text"})


def resolve_device(settings: Settings) -> torch.device:
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device={settings.device!r} was asked for, but no CUDA GPU is available.")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether the GPU computes in bfloat16 natively (not through the slow emulation a T4 offers)."""
    if device.type != "cuda":
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument: ask for compute capability 8.0 (Ampere) or newer
        return torch.cuda.get_device_capability(device)[0] >= 8


CPU_FLOAT32_MAX_PARAMETERS = 1.5e9


def needs_config(settings: Settings, device: torch.device) -> bool:
    """Whether the automatic dtype depends on the model's config: its size on a CPU, its architecture on a
    GPU without native bfloat16."""
    return settings.dtype == "auto" and (device.type != "cuda" or not native_bf16(device))


def parameter_count(config: Any) -> float:
    """Parameters of a decoder-only model from its config (embeddings, attention, MLP; norms left out)."""
    config = getattr(config, "text_config", None) or config
    d, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    heads, kv = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    attention = 2 * d * heads * head_dim + 2 * d * kv * head_dim
    mlp = 3 * d * getattr(config, "intermediate_size", 4 * d)
    embeddings = vocab * d * (1 if getattr(config, "tie_word_embeddings", True) else 2)
    return float(embeddings + layers * (attention + mlp))


def resolve_dtype(settings: Settings, device: torch.device, config: Any = None) -> tuple[torch.dtype, str]:
    """(dtype, why) for a model with `config` on `device` (the config is needed only where it matters:
    see `needs_config`)."""
    if settings.dtype != "auto":
        return getattr(torch, settings.dtype), "as configured (GEMMA_INSPECTOR_DTYPE)"
    if device.type != "cuda":
        if config is not None and parameter_count(config) > CPU_FLOAT32_MAX_PARAMETERS:
            return torch.bfloat16, "the CPU default for models over 1.5B parameters: half the memory, faster"
        return torch.float32, "the CPU default: exact probabilities"
    if native_bf16(device):
        return torch.bfloat16, "native on this GPU"
    model_type = getattr(getattr(config, "text_config", None) or config, "model_type", None)
    if model_type in FP16_UNSAFE:
        return torch.float32, "this GPU has no native bfloat16, and Gemma overflows float16"
    return torch.float16, "this GPU has no native bfloat16"
