"""Compare two prompts as the model reads them: the first reply token's distribution, the last prompt token's
residual stream at every layer, and its top SAE features.

The course's first experiment, live: a chat turn against the same user message without the chat template
(or against another turn). Each prompt costs one forward pass (`prompt_internals`); what comes back across
a GPU call is a small `Comparison` of numbers and ids, never a vocabulary-sized or dense SAE array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from inspectors.engine.forward import block_output, next_token_logits
from inspectors.engine.loading import LoadedModel
from inspectors.engine.pieces import readable_pieces
from inspectors.errors import InvalidParameterError

TOP_K = 10
# log of float32's smallest normal number: a probability that underflowed to 0 counts as this, so no log 0
MIN_LOG_PROB = float(np.log(np.finfo(np.float32).tiny))


@dataclass
class PromptInternals:
    """One prompt's forward pass, read at its last token. Transient: vocabulary-sized, never stored."""

    log_probs: np.ndarray  # (V,) float32: log softmax of the next-token logits (soft-capped where the model caps)
    residuals: np.ndarray  # (L, d_model) float32: the last token's residual after each decoder layer
    sae_acts: np.ndarray | None = None  # (d_sae,) float32: the SAE's features of the residual after its layer
    sae_layer: int | None = None


@dataclass
class SAEComparison:
    """The top features (active ones only, strongest first) of each prompt's last token under one SAE."""

    sae_name: str
    layer: int  # the SAE reads the output of this decoder layer
    neuronpedia_id: str | None
    top_ids_a: np.ndarray  # (<=k,) int32
    top_values_a: np.ndarray  # (<=k,) float32
    top_ids_b: np.ndarray
    top_values_b: np.ndarray
    values_b_of_a: np.ndarray  # (<=k,) float32: prompt b's activation of each of a's top features
    values_a_of_b: np.ndarray  # prompt a's activation of each of b's top features

    @property
    def common(self) -> list[int]:
        """Features in both top lists, in a's order."""
        theirs = set(self.top_ids_b.tolist())
        return [int(f) for f in self.top_ids_a if int(f) in theirs]


@dataclass
class Comparison:
    """Prompt a against prompt b. k = top tokens kept, L = decoder layers. Probabilities are softmax of the
    model's own (soft-capped) logits at each prompt's last position: the first reply token's raw distribution."""

    kl_ab: float  # KL(a ‖ b), nats
    kl_ba: float  # KL(b ‖ a), nats
    top_ids_a: np.ndarray  # (k,) int32, most probable first
    top_probs_a: np.ndarray  # (k,) float32
    top_ids_b: np.ndarray
    top_probs_b: np.ndarray
    probs_b_of_a: np.ndarray  # (k,) float32: b's probability of each of a's top tokens
    probs_a_of_b: np.ndarray  # (k,) float32: a's probability of each of b's top tokens
    cosine: np.ndarray  # (L,) float32: cosine of the two last-token residuals after each layer
    norms_a: np.ndarray  # (L,) float32: norm of a's last-token residual after each layer
    norms_b: np.ndarray
    n_prompt_a: int = 0
    n_prompt_b: int = 0
    sae: SAEComparison | None = None
    sae_note: str = ""  # why there is no SAE part, when there is none
    pieces: dict[int, str] = field(default_factory=dict)  # tokenizer piece of every top token id

    @property
    def n_layers(self) -> int:
        return int(self.cosine.shape[0])

    @property
    def shared_top(self) -> list[int]:
        """Token ids in both top-k lists, in a's order."""
        theirs = set(self.top_ids_b.tolist())
        return [int(t) for t in self.top_ids_a if int(t) in theirs]

    @property
    def overlap(self) -> int:
        return len(self.shared_top)

    @property
    def jaccard(self) -> float:
        """|top a ∩ top b| / |top a ∪ top b|."""
        union = len(set(self.top_ids_a.tolist()) | set(self.top_ids_b.tolist()))
        return self.overlap / union if union else 1.0

    @property
    def same_top_token(self) -> bool:
        return int(self.top_ids_a[0]) == int(self.top_ids_b[0])


@dataclass
class PlainReply:
    """A greedy reply to a prompt given as ids, with no chat template added. T = prompt + reply tokens."""

    token_ids: np.ndarray  # (T,) int32: prompt then reply (with its stop token, when one was generated)
    tokens: list[str]  # (T,) tokenizer pieces
    n_prompt: int
    reply_text: str  # the reply before its stop token, decoded without special tokens
    stop_reason: str  # 'end_of_turn' | 'eos' | 'max_new_tokens'
    special_ids: list[int]  # the special token ids among `token_ids`
    prompt_text: str = ""  # the string that was tokenized

    @property
    def prompt_ids(self) -> np.ndarray:
        return self.token_ids[: self.n_prompt]


def _check_ids(lm: LoadedModel, name: str, ids: Any) -> np.ndarray:
    ids = np.asarray(ids)
    vocab = lm.model.get_input_embeddings().num_embeddings
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise InvalidParameterError(name, "must be a non-empty list of token ids", ids.tolist())
    if ids.min() < 0 or ids.max() >= vocab:
        raise InvalidParameterError(name, f"must hold ids in [0, {vocab - 1}] for {lm.model_id}", ids.tolist())
    return ids.astype(np.int64)


def prompt_internals(lm: LoadedModel, prompt_ids: Any, lsae: Any = None) -> PromptInternals:
    """One forward pass over `prompt_ids` (T,): the next-token log-probabilities at the last position and the
    last token's residual after every decoder layer (`blocks.L.hook_resid_post`, hooked, not hidden_states,
    whose last entry is after the final norm). `lsae`: a LoadedSAE whose features of that token to keep."""
    ids = _check_ids(lm, "prompt_ids", prompt_ids)
    input_ids = torch.tensor(ids[None, :], dtype=torch.long, device=lm.device)  # (1, T)
    last: dict[int, torch.Tensor] = {}

    def hook_for(layer: int):
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            last[layer] = block_output(output)[0, -1].detach().float()  # (d,)

        return hook

    with lm.lock:
        handles = [block.register_forward_hook(hook_for(i)) for i, block in enumerate(lm.decoder_layers)]
        try:
            with torch.inference_mode():
                logits = next(next_token_logits(lm, input_ids, len(ids) - 1, len(ids)))[0]  # (V,) float32
        finally:
            for handle in handles:
                handle.remove()
    residuals = torch.stack([last[layer] for layer in range(lm.n_layers)])  # (L, d)
    sae_acts = None
    if lsae is not None:
        sae_acts = lsae.encode(residuals[lsae.layer][None, :])[0].float().cpu().numpy()  # (d_sae,)
    return PromptInternals(
        log_probs=torch.log_softmax(logits, dim=-1).cpu().numpy(),
        residuals=residuals.cpu().numpy(),
        sae_acts=sae_acts,
        sae_layer=None if lsae is None else lsae.layer,
    )


def kl_divergence(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """KL(p ‖ q) = sum p (log p - log q) in nats, in float64, log-probabilities clamped at MIN_LOG_PROB."""
    log_p = np.maximum(np.asarray(log_p, dtype=np.float64), MIN_LOG_PROB)
    log_q = np.maximum(np.asarray(log_q, dtype=np.float64), MIN_LOG_PROB)
    return max(0.0, float(np.sum(np.exp(log_p) * (log_p - log_q))))


def cosine_per_layer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(L,) cosine similarity of the rows of two (L, d) arrays, in float64 (0 where a row is all zeros)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)


def _top(values: np.ndarray, k: int, active_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-values, kind="stable")[:k]
    if active_only:
        order = order[values[order] > 0]
    return order.astype(np.int32), values[order].astype(np.float32)


def _compare_sae(a: PromptInternals, b: PromptInternals, lsae: Any, k: int) -> SAEComparison:
    ids_a, values_a = _top(a.sae_acts, k, active_only=True)
    ids_b, values_b = _top(b.sae_acts, k, active_only=True)
    return SAEComparison(
        sae_name=lsae.name, layer=int(lsae.layer), neuronpedia_id=lsae.neuronpedia_id,
        top_ids_a=ids_a, top_values_a=values_a, top_ids_b=ids_b, top_values_b=values_b,
        values_b_of_a=b.sae_acts[ids_a].astype(np.float32), values_a_of_b=a.sae_acts[ids_b].astype(np.float32),
    )  # fmt: skip


def compare_internals(a: PromptInternals, b: PromptInternals, k: int = TOP_K, lsae: Any = None) -> Comparison:
    """Both KL directions, each prompt's top-k first reply tokens and the other's probability of them, and the
    per-layer cosine of the last-token residuals; with `lsae` (the SAE both were read with), the top features."""
    if a.log_probs.shape != b.log_probs.shape or a.residuals.shape != b.residuals.shape:
        raise ValueError(
            f"the prompts were read by different models: vocabularies {a.log_probs.shape} and {b.log_probs.shape}, "
            f"residuals {a.residuals.shape} and {b.residuals.shape}"
        )
    probs_a, probs_b = np.exp(a.log_probs), np.exp(b.log_probs)
    ids_a, top_a = _top(probs_a, k)
    ids_b, top_b = _top(probs_b, k)
    with_sae = lsae is not None and a.sae_acts is not None and b.sae_acts is not None
    return Comparison(
        kl_ab=kl_divergence(a.log_probs, b.log_probs),
        kl_ba=kl_divergence(b.log_probs, a.log_probs),
        top_ids_a=ids_a, top_probs_a=top_a, top_ids_b=ids_b, top_probs_b=top_b,
        probs_b_of_a=probs_b[ids_a].astype(np.float32), probs_a_of_b=probs_a[ids_b].astype(np.float32),
        cosine=cosine_per_layer(a.residuals, b.residuals),
        norms_a=np.linalg.norm(a.residuals, axis=1).astype(np.float32),
        norms_b=np.linalg.norm(b.residuals, axis=1).astype(np.float32),
        sae=_compare_sae(a, b, lsae, k) if with_sae else None,
    )  # fmt: skip


def compare_prompts(
    lm: LoadedModel, ids_a: Any, ids_b: Any, lsae: Any = None, k: int = TOP_K, sae_note: str = ""
) -> Comparison:
    """`compare_internals` of two prompts given as token ids (two forward passes), with the top tokens' pieces."""
    ids_a, ids_b = _check_ids(lm, "ids_a", ids_a), _check_ids(lm, "ids_b", ids_b)
    comparison = compare_internals(prompt_internals(lm, ids_a, lsae), prompt_internals(lm, ids_b, lsae), k, lsae)
    comparison.n_prompt_a, comparison.n_prompt_b = len(ids_a), len(ids_b)
    comparison.sae_note = sae_note
    top = sorted({int(t) for t in (*comparison.top_ids_a, *comparison.top_ids_b)})
    comparison.pieces = dict(zip(top, readable_pieces(lm.tokenizer, top), strict=True))
    return comparison


def plain_reply(lm: LoadedModel, text: str, max_new_tokens: int) -> PlainReply:
    """A greedy reply to `text` as plain text: tokenized as the tokenizer encodes text (its own `<bos>`, no
    chat template), exactly the "no template" prompt of the course's template-vs-none lab, whose prompt
    builder and greedy decoding this reuses."""
    from inspectors.labs.generation import check_max_new_tokens, greedy_generate, split_at_stop, stop_reason
    from inspectors.labs.template_vs_none import WITHOUT_TEMPLATE, prompts

    check_max_new_tokens(lm, max_new_tokens)
    prompt_text, prompt_ids = prompts(lm, text, max_new_tokens, course_variant=False)[WITHOUT_TEMPLATE]
    new_ids = greedy_generate(lm, prompt_ids, max_new_tokens)
    answer, stop = split_at_stop(lm, new_ids)
    ids = [*prompt_ids, *new_ids]
    return PlainReply(
        token_ids=np.asarray(ids, dtype=np.int32),
        tokens=readable_pieces(lm.tokenizer, ids),
        n_prompt=len(prompt_ids),
        reply_text=lm.tokenizer.decode(answer, skip_special_tokens=True).strip(),
        stop_reason=stop_reason(lm, stop),
        special_ids=sorted(lm.special_ids & set(ids)),
        prompt_text=prompt_text,
    )
