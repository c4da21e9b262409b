"""Which device and dtype a model runs in, and why (the reason is shown beside the model's name).

- CPU: float32. This tool shows probabilities; bf16 moved them by up to 0.024 on the embedded model
  (bench/run.py), so it is opt-in (GEMMA_INSPECTOR_DTYPE=bfloat16).
- A GPU with native bfloat16 (Ampere and newer, and ZeroGPU's H200 slices): bfloat16, Gemma's own dtype.
- A GPU without it (a T4, a V100): `torch.cuda.is_bf16_supported()` says True there, through emulation,
  which is slow, so it is asked with `including_emulation=False`. Gemma's residual stream is large (norms
  in the thousands) and float16 overflows past 65,504 into inf/NaN (tests/engine/test_devices.py shows
  it on a tiny Gemma 2), so Gemma models get float32 there; other architectures float16.
"""

from __future__ import annotations

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


def needs_model_type(settings: Settings, device: torch.device) -> bool:
    """Whether the dtype depends on the architecture: automatic dtype on a GPU without native bfloat16."""
    return settings.dtype == "auto" and device.type == "cuda" and not native_bf16(device)


def resolve_dtype(settings: Settings, device: torch.device, model_type: str | None = None) -> tuple[torch.dtype, str]:
    """(dtype, why) for a model of `model_type` on `device`."""
    if settings.dtype != "auto":
        return getattr(torch, settings.dtype), "as configured (GEMMA_INSPECTOR_DTYPE)"
    if device.type != "cuda":
        return torch.float32, "the CPU default: exact probabilities"
    if native_bf16(device):
        return torch.bfloat16, "native on this GPU"
    if model_type in FP16_UNSAFE:
        return torch.float32, "this GPU has no native bfloat16, and Gemma overflows float16"
    return torch.float16, "this GPU has no native bfloat16"
