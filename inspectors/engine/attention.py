"""One layer's attention probabilities for a finished turn, computed on demand and cached.

A record never holds layers x heads x T^2 attention (gemma-2-2b at 1,024 tokens: ~0.44 GB in bf16).
Instead one eager forward over the turn's token ids, stopped right after the requested layer, gives
that layer's (heads, T, T) probabilities; switching heads within the layer then costs nothing.
"""

from __future__ import annotations

import numpy as np

from inspectors.engine.cache import LRUCache, turn_key
from inspectors.engine.forward import module_output
from inspectors.engine.loading import LoadedModel
from inspectors.engine.record import TurnRecord
from inspectors.errors import InvalidParameterError

CACHE_ENTRIES = 6  # layers kept across all sessions; each is heads x T^2 float16


_cache = LRUCache(CACHE_ENTRIES)


def layer_attention(lm: LoadedModel, record: TurnRecord | np.ndarray, layer: int, cached: bool = True) -> np.ndarray:
    """Attention probabilities of decoder layer `layer`: (heads, T, T) float32, rows = queries.

    Real softmax probabilities from eager attention (sdpa returns none). Row q sums to 1 over the
    keys it may attend to (causal, and within the sliding window on Gemma's local layers). Kept as
    float16 either way; `cached=False` when the caller keeps its own cache (the app's sessions do).
    """
    token_ids = record.token_ids if isinstance(record, TurnRecord) else np.asarray(record)
    if not 0 <= layer < lm.n_layers:
        raise InvalidParameterError("layer", f"must be in [0, {lm.n_layers - 1}] for {lm.model_id}", layer)
    key = turn_key(lm.model_id, lm.model, token_ids, "attention", layer)
    attention = _cache.get(key) if cached else None
    if attention is None:
        attention = _compute(lm, token_ids, layer).astype(np.float16)  # same precision cached or not
        if cached:
            _cache.put(key, attention)
    return attention.astype(np.float32)


def _compute(lm: LoadedModel, token_ids: np.ndarray, layer: int) -> np.ndarray:
    _, weights = module_output(lm, token_ids, lm.parts.attention(layer), eager=True)
    if weights is None:
        raise RuntimeError(f"Layer {layer} of {lm.model_id} returned no attention weights in eager mode.")
    return weights[0].float().cpu().numpy()  # (heads, T, T)


def clear_cache() -> None:
    _cache.clear()
