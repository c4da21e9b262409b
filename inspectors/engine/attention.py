"""One layer's attention probabilities for a finished turn, computed on demand and cached.

A record never holds layers x heads x T^2 attention (gemma-2-2b at 1,024 tokens: ~0.44 GB in bf16).
Instead one eager forward over the turn's token ids, stopped right after the requested layer, gives
that layer's (heads, T, T) probabilities; switching heads within the layer then costs nothing.
"""

from __future__ import annotations

import numpy as np
import torch

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


def segment_attention(
    lm: LoadedModel, token_ids: np.ndarray, segment_of_token: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """(layers, heads, Q, S) float32: the share of each query's attention that goes to each of the S chat
    segments, at every layer and head, from one eager forward pass. Each layer's (heads, T, T) probabilities
    are reduced to segments inside a hook and dropped, so a 2,048-token turn never holds them all."""
    segments = torch.as_tensor(np.asarray(segment_of_token), dtype=torch.long)
    n_segments = int(segments.max()) + 1
    one_hot = torch.nn.functional.one_hot(segments, n_segments).float()  # (T, S)
    rows = torch.as_tensor(np.asarray(queries), dtype=torch.long)
    shares = np.zeros((lm.n_layers, lm.n_heads, len(rows), n_segments), dtype=np.float32)

    def reduce(layer: int):
        def hook(module, args, output) -> None:
            weights = output[1]
            if weights is None:
                raise RuntimeError(f"Layer {layer} of {lm.model_id} returned no attention weights in eager mode.")
            picked = weights[0].float().index_select(1, rows.to(weights.device))  # (H, Q, T)
            shares[layer] = (picked @ one_hot.to(weights.device)).cpu().numpy()

        return hook

    input_ids = torch.tensor(np.asarray(token_ids)[None, :], dtype=torch.long, device=lm.device)
    with lm.lock:
        previous = lm.model.config._attn_implementation
        handles = [lm.parts.attention(layer).register_forward_hook(reduce(layer)) for layer in range(lm.n_layers)]
        try:
            lm.model.set_attn_implementation("eager")
            with torch.inference_mode():
                lm.model.get_decoder()(input_ids=input_ids, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
            lm.model.set_attn_implementation(previous)
    return shares
