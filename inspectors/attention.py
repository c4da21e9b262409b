"""One layer's attention probabilities for a finished turn, computed on demand and cached.

A record never holds layers x heads x T^2 attention (gemma-2-2b at 1,024 tokens: ~0.44 GB in bf16).
Instead one eager forward over the turn's token ids, stopped right after the requested layer, gives
that layer's (heads, T, T) probabilities; switching heads within the layer then costs nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from inspectors.errors import InvalidParameterError
from inspectors.loading import LoadedModel
from inspectors.record import TurnRecord

CACHE_ENTRIES = 6  # layers kept across all sessions; each is heads x T^2 float16


class _StopForward(Exception):
    """Raised from the hook: layers above the requested one are not needed."""


_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def layer_attention(lm: LoadedModel, record: TurnRecord | np.ndarray, layer: int) -> np.ndarray:
    """Attention probabilities of decoder layer `layer`: (heads, T, T) float32, rows = queries.

    Real softmax probabilities from eager attention (sdpa returns none). Row q sums to 1 over the
    keys it may attend to (causal, and within the sliding window on Gemma's local layers).
    """
    token_ids = record.token_ids if isinstance(record, TurnRecord) else np.asarray(record)
    if not 0 <= layer < lm.n_layers:
        raise InvalidParameterError("layer", f"must be in [0, {lm.n_layers - 1}] for {lm.model_id}", layer)
    key = (lm.model_id, id(lm.model), layer, hashlib.sha1(token_ids.astype(np.int64).tobytes()).hexdigest())
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key].astype(np.float32)
    attention = _compute(lm, token_ids, layer).astype(np.float16)  # same precision cached or not
    with _cache_lock:
        _cache[key] = attention
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return attention.astype(np.float32)


def _compute(lm: LoadedModel, token_ids: np.ndarray, layer: int) -> np.ndarray:
    captured: dict[str, torch.Tensor] = {}

    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        captured["weights"] = output[1]  # (1, heads, T, T) from eager attention
        raise _StopForward

    attention_module = lm.decoder_layers[layer].self_attn
    input_ids = torch.tensor(token_ids[None, :], dtype=torch.long, device=lm.device)
    with lm.lock:
        previous = lm.model.config._attn_implementation
        handle = attention_module.register_forward_hook(hook)
        try:
            lm.model.set_attn_implementation("eager")
            with torch.inference_mode():
                lm.model(input_ids=input_ids, use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
            lm.model.set_attn_implementation(previous)
    weights = captured.get("weights")
    if weights is None:
        raise RuntimeError(f"Layer {layer} of {lm.model_id} returned no attention weights in eager mode.")
    return weights[0].float().cpu().numpy()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
