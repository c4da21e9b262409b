"""The logit lens: what the model's own head reads from each layer's residual stream.

At layer L and position t the lens applies exactly what the model applies to its last residual stream:
the final norm, the unembedding (tied or not) and Gemma 2's final logit soft-capping, then a softmax. At the
last layer that is the model's own next-token distribution. One forward pass over the turn; each layer's
residual is read in a hook and reduced at once to the top-k and the probability of the token that came
next, in chunks of positions, so no layers x T x vocabulary tensor ever exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inspectors.engine.forward import block_output
from inspectors.engine.loading import LoadedModel

LENS_TOP_K = 10
CHUNK_POSITIONS = 32  # positions whose (chunk, vocabulary) logits exist at once


@dataclass
class LensGrid:
    """L = layers, P = positions read. Row l is the output of decoder layer l (blocks.l.hook_resid_post);
    column p is the prediction made at `positions[p]` of the token at `positions[p] + 1`."""

    positions: np.ndarray  # (P,) int32
    target_ids: np.ndarray  # (P,) int32: the token that followed (the generated one, for a reply)
    top_ids: np.ndarray  # (L, P, k) int32, most probable first
    top_probs: np.ndarray  # (L, P, k) float32
    target_probs: np.ndarray  # (L, P) float32: the probability the lens gives the token that followed

    @property
    def n_layers(self) -> int:
        return int(self.top_ids.shape[0])

    def window(self, columns: slice) -> LensGrid:
        """The same grid for some of its positions."""
        return LensGrid(
            self.positions[columns], self.target_ids[columns], self.top_ids[:, columns], self.top_probs[:, columns],
            self.target_probs[:, columns],
        )  # fmt: skip

    def commitment(self) -> np.ndarray:
        """(P,) the first layer from which the lens's top-1 stays the token that followed, at every later
        layer; -1 where the last layer's top-1 is another token (a sampled reply can pick one)."""
        hits = self.top_ids[:, :, 0] == self.target_ids[None, :]  # (L, P)
        committed = np.full(hits.shape[1], -1, dtype=np.int32)
        for p in range(hits.shape[1]):
            layer = self.n_layers
            while layer > 0 and hits[layer - 1, p]:
                layer -= 1
            committed[p] = layer if layer < self.n_layers else -1
        return committed


def lens_head(lm: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
    """(n, d) residual stream -> (n, V) float32 logits, through the model's own final norm, unembedding and
    soft-capping."""
    parts = lm.parts
    logits = parts.unembedding(parts.final_norm(resid)).float()
    if parts.final_logit_softcap:
        cap = parts.final_logit_softcap
        logits = torch.tanh(logits / cap) * cap
    return logits


def logit_lens(lm: LoadedModel, token_ids: np.ndarray, positions: np.ndarray, k: int = LENS_TOP_K) -> LensGrid:
    """The lens at every layer for the predictions made at `positions` (each < len(token_ids) - 1)."""
    token_ids = np.asarray(token_ids)
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= len(token_ids) - 1):
        raise ValueError(f"positions must be in [0, {len(token_ids) - 2}]")
    targets = torch.from_numpy(token_ids[positions + 1].astype(np.int64))
    n_layers, n = lm.n_layers, len(positions)
    top_ids = np.zeros((n_layers, n, k), dtype=np.int32)
    top_probs = np.zeros((n_layers, n, k), dtype=np.float32)
    target_probs = np.zeros((n_layers, n), dtype=np.float32)
    index = torch.from_numpy(positions)

    def read(layer: int):
        def hook(module: Any, args: Any, output: Any) -> None:
            resid = block_output(output)[0].index_select(0, index.to(block_output(output).device))  # (P, d)
            for start in range(0, n, CHUNK_POSITIONS):
                chunk = slice(start, start + CHUNK_POSITIONS)
                probs = torch.softmax(lens_head(lm, resid[chunk]), dim=-1)  # (c, V)
                top = torch.topk(probs, k, dim=-1)
                top_ids[layer, chunk] = top.indices.cpu().numpy()
                top_probs[layer, chunk] = top.values.cpu().numpy()
                wanted = targets[chunk].to(probs.device)[:, None]
                target_probs[layer, chunk] = probs.gather(1, wanted)[:, 0].cpu().numpy()

        return hook

    input_ids = torch.tensor(token_ids[None, :], dtype=torch.long, device=lm.device)
    with lm.lock:
        handles = [block.register_forward_hook(read(i)) for i, block in enumerate(lm.decoder_layers)]
        try:
            with torch.inference_mode():
                lm.model.get_decoder()(input_ids=input_ids, use_cache=False)  # the head runs in the hooks only
        finally:
            for handle in handles:
                handle.remove()
    return LensGrid(
        positions.astype(np.int32), token_ids[positions + 1].astype(np.int32), top_ids, top_probs, target_probs
    )
