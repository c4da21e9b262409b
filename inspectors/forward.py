"""One forward pass over a finished turn, stopped as soon as the module of interest has run."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from inspectors.loading import LoadedModel


class _StopForward(Exception):
    """Raised from the hook: the layers above the one asked for are not needed."""


def module_output(lm: LoadedModel, token_ids: np.ndarray, module: torch.nn.Module, *, eager: bool = False) -> Any:
    """What `module` returns when the model reads `token_ids` (no cache, batch of one).

    eager=True switches to eager attention for the pass (sdpa computes no attention probabilities)
    and restores the model's implementation afterwards; the model lock keeps other sessions out.
    """
    captured: dict[str, Any] = {}

    def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
        captured["output"] = output
        raise _StopForward

    input_ids = torch.tensor(np.asarray(token_ids)[None, :], dtype=torch.long, device=lm.device)
    with lm.lock:
        previous = lm.model.config._attn_implementation
        handle = module.register_forward_hook(hook)
        try:
            if eager:
                lm.model.set_attn_implementation("eager")
            with torch.inference_mode():
                lm.model(input_ids=input_ids, use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
            if eager:
                lm.model.set_attn_implementation(previous)
    if "output" not in captured:
        raise RuntimeError(f"{type(module).__name__} did not run in the forward pass of {lm.model_id}")
    return captured["output"]
