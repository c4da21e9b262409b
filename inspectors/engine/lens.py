"""The logit lens: what the model's own head reads from each layer's residual stream.

At layer L and position t the lens applies exactly what the model applies to its last residual stream:
the final norm, the unembedding (tied or not, with its bias if it has one) and Gemma 2's final logit
soft-capping, then a softmax. At the last layer that is the model's own next-token distribution. One forward
pass over the turn collects each layer's residual at the positions asked for; the head is then applied in
(rows x vocabulary) tiles reduced at once to the top-k, the log-normaliser and the probability of the token
that came next, so no layers x T x vocabulary tensor ever exists.

Cost. The head over a 262k-token vocabulary at every layer is most of the work (Gemma 3 270M: 18 layers x
168M multiply-adds per position, against 270M for a whole forward step). Where the device multiplies
bfloat16 natively and the model computes in float32 (a CPU with AVX512-BF16 or AMX), the layers before the
last scan the vocabulary in bfloat16 and then re-score exactly, in float32, the tokens the grid shows (the
top candidates and the token that came), swapping their share of the normaliser for its exact value. What
remains is the bfloat16 rounding of the rest of the vocabulary inside the normaliser, which leans one way
(exp is convex) where logits are large: on the embedded model, whose early layers give logits in the hundreds,
shown probabilities are within 0.0025 (absolute) of the all-float32 lens, with the same top-1 token at every
cell (the integration test bounds it at 0.01). Measured on a 2-core AVX512-BF16 CPU (`bench/explain.py`):
2.5 prefills of a 51-token turn instead of 10.0. The last layer is always computed in the
model's own precision, or taken from the distributions the turn already recorded, which are the model's
output for those steps.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from inspectors.engine.forward import block_output
from inspectors.engine.loading import LoadedModel

LENS_TOP_K = 10
EXACT_ROWS = 32  # float32 rows whose (rows, vocabulary) logits exist at once on the exact path
SCAN_ROWS = 1024  # bfloat16 rows per tile of the scan
SCAN_VOCAB = 8192  # vocabulary columns per tile of the scan
CANDIDATES = 16  # tokens per row the scan hands on to be re-scored exactly (the k shown and a margin)
PRECISIONS = ("auto", "float32", "bfloat16")  # auto: a bfloat16 scan where it is faster (see `scan_dtype`)

_REDUCED_HEADS: dict[int, torch.Tensor] = {}  # id(unembedding weight) -> its reduced copy, while it lives


@dataclass
class LensGrid:
    """L = layers, P = positions read. Row l is the output of decoder layer l (blocks.l.hook_resid_post);
    column p is the prediction made at `positions[p]` of the token at `positions[p] + 1`."""

    positions: np.ndarray  # (P,) int32
    target_ids: np.ndarray  # (P,) int32: the token that followed (the generated one, for a reply)
    top_ids: np.ndarray  # (L, P, k) int32, most probable first
    top_probs: np.ndarray  # (L, P, k) float32
    target_probs: np.ndarray  # (L, P) float32: the probability the lens gives the token that followed
    precision: str = field(default="float32")  # how the layers before the last were computed

    @property
    def n_layers(self) -> int:
        return int(self.top_ids.shape[0])

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


@dataclass(frozen=True)
class KnownOutput:
    """The model's own output distribution at some positions, already computed (a turn's recorded steps):
    the lens's last layer there. `top_ids`/`top_probs` (n, >= k) most probable first, `target_probs` (n,)."""

    positions: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    target_probs: np.ndarray

    @classmethod
    def of_reply(cls, record: Any) -> KnownOutput:
        """A turn's recorded next-token distributions (raw, before any sampling warper): step s was predicted
        at position n_prompt - 1 + s."""
        steps = record.steps
        positions = record.n_prompt - 1 + np.arange(steps.n_steps)
        return cls(positions, steps.raw_ids, steps.raw_probs, steps.chosen_raw_prob)


def _softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    return torch.tanh(logits / cap) * cap if cap else logits


def lens_head(lm: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
    """(n, d) residual stream -> (n, V) float32 logits, through the model's own final norm, unembedding and
    soft-capping."""
    parts = lm.parts
    return _softcap(parts.unembedding(parts.final_norm(resid)).float(), parts.final_logit_softcap)


def scan_dtype(lm: LoadedModel) -> torch.dtype | None:
    """bfloat16 where scanning the vocabulary in it is faster than the model's float32 (a CPU that multiplies
    it natively); None where the lens runs in the model's own precision throughout."""
    if lm.dtype != torch.float32 or lm.device.type != "cpu":
        return None  # a half-precision model already is that fast; a GPU's float32 head is cheap
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def _reduced_head(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The unembedding in `dtype`, converted once per loaded model (weights are read-only)."""
    key = id(weight)
    reduced = _REDUCED_HEADS.get(key)
    if reduced is None or reduced.dtype != dtype or reduced.device != weight.device:
        if key not in _REDUCED_HEADS:
            weakref.finalize(weight, _REDUCED_HEADS.pop, key, None)
        reduced = _REDUCED_HEADS[key] = weight.detach().to(dtype)
    return reduced


def _exact(lm: LoadedModel, resid: torch.Tensor, targets: torch.Tensor, k: int):
    """Top-k, probabilities and the target's probability from the full float32 distribution."""
    top_ids, top_probs, target_probs = [], [], []
    for start in range(0, len(resid), EXACT_ROWS):
        rows = slice(start, start + EXACT_ROWS)
        probs = torch.softmax(lens_head(lm, resid[rows]), dim=-1)  # (c, V)
        top = torch.topk(probs, k, dim=-1)
        top_ids.append(top.indices)
        top_probs.append(top.values)
        target_probs.append(probs.gather(1, targets[rows].to(probs.device)[:, None])[:, 0])
    return torch.cat(top_ids), torch.cat(top_probs), torch.cat(target_probs)


def _scan(
    lm: LoadedModel, normed: torch.Tensor, dtype: torch.dtype, n_keep: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Over the whole vocabulary in `dtype`: each row's `n_keep` most probable tokens (approximate logits and
    ids) and the log of the normaliser's share of every other token."""
    head, cap = lm.parts.unembedding, lm.parts.final_logit_softcap
    weight = _reduced_head(head.weight, dtype)
    bias = None if getattr(head, "bias", None) is None else head.bias.detach().to(dtype)
    x = normed.to(dtype)
    rest, values, ids = [], [], []
    for start in range(0, weight.shape[0], SCAN_VOCAB):
        columns = slice(start, start + SCAN_VOCAB)
        logits = F.linear(x, weight[columns], None if bias is None else bias[columns])
        if cap:
            logits = _softcap(logits.float(), cap).to(dtype)
        top = logits.topk(min(n_keep, logits.shape[-1]), dim=-1)
        peak = top.values[:, :1]
        # The tile's own candidates leave its sum before it is taken: beside a dominant token, what remains
        # would be lost in a rounded total. The rest is summed relative to the tile's maximum (exact in dtype).
        logits.scatter_(1, top.indices, float("-inf"))
        rest.append(peak[:, 0].float() + torch.log((logits - peak).exp_().sum(-1).float()))
        values.append(top.values.float())
        ids.append(top.indices + start)
    values, ids = torch.cat(values, dim=-1), torch.cat(ids, dim=-1)
    kept = values.topk(min(n_keep, values.shape[-1]), dim=-1).indices
    others = values.scatter(1, kept, float("-inf"))  # tiles' candidates that did not make the cut: approximate
    rest_lse = torch.logsumexp(torch.cat([torch.stack(rest, dim=-1), others], dim=-1), dim=-1)
    return values.gather(1, kept), ids.gather(1, kept), rest_lse


def _exact_logits(lm: LoadedModel, normed: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(n, m) float32 logits of tokens `ids` (n, m) for rows `normed` (n, d): the model's head, token by token."""
    head, cap = lm.parts.unembedding, lm.parts.final_logit_softcap
    logits = torch.einsum("nd,nmd->nm", normed.float(), head.weight[ids].float())
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[ids].float()
    return _softcap(logits, cap)


def _scanned(lm: LoadedModel, resid: torch.Tensor, targets: torch.Tensor, k: int, dtype: torch.dtype):
    """Like `_exact`, but the vocabulary is scanned in `dtype` and the kept tokens re-scored in float32: the
    normaliser is their exact share plus the scan's share of every other token."""
    top_ids, top_probs, target_probs = [], [], []
    for start in range(0, len(resid), SCAN_ROWS):
        normed = lm.parts.final_norm(resid[start : start + SCAN_ROWS]).float()
        _, ids, rest_lse = _scan(lm, normed, dtype, max(CANDIDATES, k + k // 2))
        exact = _exact_logits(lm, normed, ids)
        lse = torch.logaddexp(rest_lse, torch.logsumexp(exact, dim=-1))
        order = exact.argsort(dim=-1, descending=True)[:, :k]
        top_ids.append(ids.gather(1, order))
        top_probs.append((exact.gather(1, order) - lse[:, None]).exp())
        target = targets[start : start + SCAN_ROWS, None]
        target_probs.append((_exact_logits(lm, normed, target)[:, 0] - lse).exp())
    return torch.cat(top_ids), torch.cat(top_probs), torch.cat(target_probs)


def _head_device(lm: LoadedModel) -> torch.device:
    """Where the final norm and the unembedding run (a model spread over GPUs has its layers elsewhere)."""
    return lm.parts.unembedding.weight.device


def _residuals(lm: LoadedModel, token_ids: np.ndarray, positions: np.ndarray) -> torch.Tensor:
    """(L, P, d) every decoder layer's output at `positions`, from one forward pass without the head, on the
    head's device."""
    index = torch.from_numpy(positions)
    rows: list[torch.Tensor | None] = [None] * lm.n_layers
    device = _head_device(lm)

    def read(layer: int):
        def hook(module: Any, args: Any, output: Any) -> None:
            hidden = block_output(output)[0]
            rows[layer] = hidden.index_select(0, index.to(hidden.device)).to(device)

        return hook

    input_ids = torch.tensor(token_ids[None, :], dtype=torch.long, device=lm.device)
    with lm.lock:
        handles = [block.register_forward_hook(read(i)) for i, block in enumerate(lm.decoder_layers)]
        try:
            with torch.inference_mode():
                lm.model.get_decoder()(input_ids=input_ids, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
    return torch.stack(rows)  # type: ignore[arg-type]


def logit_lens(
    lm: LoadedModel,
    token_ids: np.ndarray,
    positions: np.ndarray,
    k: int = LENS_TOP_K,
    known_output: KnownOutput | None = None,
    precision: str = "auto",
) -> LensGrid:
    """The lens at every layer for the predictions made at `positions` (each < len(token_ids) - 1).
    `known_output`: the model's output already computed at some of them (the last layer there);
    `precision`: how the layers before the last are computed, one of `PRECISIONS` ("float32": the model's own
    precision throughout, "bfloat16": the scan even where it is not faster)."""
    token_ids = np.asarray(token_ids)
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= len(token_ids) - 1):
        raise ValueError(f"positions must be in [0, {len(token_ids) - 2}]")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, but is {precision!r}")
    n_layers, n = lm.n_layers, len(positions)
    dtype = {"auto": scan_dtype(lm), "float32": None, "bfloat16": torch.bfloat16}[precision] if n_layers > 1 else None
    top_ids = np.zeros((n_layers, n, k), dtype=np.int32)
    top_probs = np.zeros((n_layers, n, k), dtype=np.float32)
    target_probs = np.zeros((n_layers, n), dtype=np.float32)
    precision_used = "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} scan"
    grid = LensGrid(positions.astype(np.int32), token_ids[positions + 1].astype(np.int32), top_ids, top_probs,
                    target_probs, precision_used)  # fmt: skip
    if n == 0:
        return grid
    targets = torch.from_numpy(grid.target_ids.astype(np.int64)).to(_head_device(lm))
    resid = _residuals(lm, token_ids, positions)

    def fill(layers: slice, columns: np.ndarray, result: tuple[torch.Tensor, ...]) -> None:
        ids, probs, target = (t.cpu().numpy() for t in result)
        width = len(columns)
        top_ids[layers, columns] = ids.reshape(-1, width, k)
        top_probs[layers, columns] = probs.reshape(-1, width, k)
        target_probs[layers, columns] = target.reshape(-1, width)

    with torch.inference_mode():
        if n_layers > 1:
            earlier = resid[:-1].reshape(-1, resid.shape[-1])
            repeated = targets.repeat(n_layers - 1)
            result = _exact(lm, earlier, repeated, k) if dtype is None else _scanned(lm, earlier, repeated, k, dtype)
            fill(slice(0, n_layers - 1), np.arange(n), result)
        last = n_layers - 1
        known = _known_columns(positions, known_output, k)
        for column, row in known.items():
            top_ids[last, column] = known_output.top_ids[row, :k]
            top_probs[last, column] = known_output.top_probs[row, :k]
            target_probs[last, column] = known_output.target_probs[row]
        missing = np.array([c for c in range(n) if c not in known], dtype=np.int64)
        if missing.size:
            index = torch.from_numpy(missing).to(resid.device)
            fill(slice(last, last + 1), missing, _exact(lm, resid[last].index_select(0, index), targets[index], k))
    return grid


def _known_columns(positions: np.ndarray, known: KnownOutput | None, k: int) -> dict[int, int]:
    """Column of the grid -> row of `known` for the positions whose output is known (with at least k tokens)."""
    if known is None or known.top_ids.shape[1] < k:
        return {}
    rows = {int(p): r for r, p in enumerate(known.positions)}
    return {c: rows[int(p)] for c, p in enumerate(positions) if int(p) in rows}
