"""Steering: add a vector to the residual stream after one decoder layer, at every position, for one reply.

The vector is an SAE feature's decoder direction (or several), or the difference of mean residuals between
two sets of prompts ("activation addition"), so any model can be steered. Gemma's residual stream has token
norms in the thousands (Gemma 3 270M: about 3,400 at middle layers, one dimension near 2,400), so a raw
strength of 1 does nothing: a strength is given relative to a stated scale, either the typical residual norm
at that layer or the feature's maximum activation times its decoder norm.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from inspectors.engine.forward import batch_layer_outputs, block_output, next_token_logits
from inspectors.engine.loading import LoadedModel

RESIDUAL_NORM, MAX_ACTIVATION = "residual norm", "max activation"


@dataclass(frozen=True)
class Steering:
    """Picklable: what a reply is steered with. `vector` is added as is to the output of decoder `layer`."""

    layer: int
    vector: np.ndarray  # (d_model,) float32
    description: str  # what it is and how it was scaled, shown beside the steered reply

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector))

    def summary(self) -> dict[str, object]:
        """What a record keeps of it, the vector included (d_model floats: a few KB), so a saved turn can be
        re-run steered exactly."""
        return {"layer": self.layer, "description": self.description, "norm": self.norm, "vector": self.vector.copy()}


@contextmanager
def steered(lm: LoadedModel, steering: Steering | None) -> Iterator[None]:
    """Within the block, every forward pass of `lm` adds the steering vector after its layer. The hook is
    removed on leaving, also on an error or a stop."""
    if steering is None:
        yield
        return
    block = lm.decoder_layers[steering.layer]
    vector = torch.as_tensor(steering.vector)

    def add(module: torch.nn.Module, args: object, output: object) -> object:
        resid = block_output(output)
        changed = resid + vector.to(device=resid.device, dtype=resid.dtype)
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    handle = block.register_forward_hook(add)
    try:
        yield
    finally:
        handle.remove()


# A neutral paragraph whose residual norms set the "residual norm" scale: the same for every chat, so one
# strength means one vector whatever was said.
REFERENCE_TEXT = (
    "The library opens at nine in the morning. Visitors can borrow up to five books for three weeks, and "
    "the reading room on the second floor is quiet. On Saturdays there is a story hour for children, and a "
    "volunteer helps older readers with the computers. Last year the town voted to keep it open in August."
)
_reference_norms: dict[tuple[str, int], float] = {}


def reference_norm(lm: LoadedModel, layer: int) -> float:
    """The typical residual norm after `layer` over REFERENCE_TEXT, computed once per model and layer."""
    key = (lm.model_id, layer)
    if key not in _reference_norms:
        _reference_norms[key] = typical_norm(lm, layer, lm.tokenizer(REFERENCE_TEXT)["input_ids"])
    return _reference_norms[key]


def typical_norm(lm: LoadedModel, layer: int, token_ids: Sequence[int]) -> float:
    """The mean norm of the residual stream after `layer` over `token_ids` (the `<bos>` position left out)."""
    ids = torch.tensor([list(token_ids)], dtype=torch.long, device=lm.device)
    resid = batch_layer_outputs(lm, ids, [layer])[layer][0, 1:].float()
    return float(resid.norm(dim=-1).mean())


def feature_steering(
    decoder_rows: np.ndarray, features: Sequence[int], strength: float, scale: str, *, layer: int,
    residual_norm: float | None = None, max_activations: Sequence[float] | None = None,
) -> Steering:  # fmt: skip
    """Steer along SAE features. `decoder_rows`: (n, d) their decoder rows. With RESIDUAL_NORM the summed unit
    directions are scaled to `strength` x `residual_norm`; with MAX_ACTIVATION each row is scaled by
    `strength` x the feature's maximum activation (the decoder row times the largest activation it had)."""
    rows = np.asarray(decoder_rows, dtype=np.float32)
    if scale == RESIDUAL_NORM:
        unit = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).sum(axis=0)
        unit /= max(float(np.linalg.norm(unit)), 1e-12)
        vector = unit * strength * float(residual_norm)
        how = f"{strength:g} x the layer's typical residual norm ({residual_norm:,.0f})"
    elif scale == MAX_ACTIVATION:
        peaks = np.asarray(max_activations, dtype=np.float32)[:, None]
        vector = (rows * peaks).sum(axis=0) * strength
        how = f"{strength:g} x each feature's maximum activation times its decoder row"
    else:
        raise ValueError(f"scale must be {RESIDUAL_NORM!r} or {MAX_ACTIVATION!r}, not {scale!r}")
    names = ", ".join(str(f) for f in features)
    description = f"SAE feature{'s' if len(features) > 1 else ''} {names} at layer {layer}, added at {how}: |v| = "
    return Steering(layer, vector.astype(np.float32), description + f"{np.linalg.norm(vector):,.1f}")


def mean_difference_steering(
    lm: LoadedModel, layer: int, prompts_a: Sequence[str], prompts_b: Sequence[str], strength: float
) -> Steering:
    """Activation addition: strength x (mean residual after `layer` over the tokens of prompts A - the same
    over prompts B), `<bos>` left out; a steering vector for any model, no SAE needed."""

    def mean_residual(prompts: Sequence[str]) -> torch.Tensor:
        rows = []
        for prompt in prompts:
            ids = torch.tensor([lm.tokenizer(prompt)["input_ids"]], dtype=torch.long, device=lm.device)
            rows.append(batch_layer_outputs(lm, ids, [layer])[layer][0, 1:].float())
        return torch.cat(rows).mean(dim=0)

    with torch.inference_mode():
        vector = (mean_residual(prompts_a) - mean_residual(prompts_b)).cpu().numpy() * strength
    description = (
        f"activation addition at layer {layer}: {strength:g} x (mean residual of {len(prompts_a)} prompt(s) A - "
        f"mean of {len(prompts_b)} prompt(s) B): |v| = {np.linalg.norm(vector):,.1f}"
    )
    return Steering(layer, vector.astype(np.float32), description)


def _reply_log_probs(lm: LoadedModel, token_ids: np.ndarray, n_prompt: int) -> Iterator[torch.Tensor]:
    """(c, V) log-probabilities of the predictions of the reply's tokens, a chunk of positions at a time."""
    ids = torch.tensor(np.asarray(token_ids)[None, :], dtype=torch.long, device=lm.device)
    for logits in next_token_logits(lm, ids, n_prompt - 1, len(token_ids) - 1):
        yield torch.log_softmax(logits, dim=-1)


def step_kl(lm: LoadedModel, token_ids: np.ndarray, n_prompt: int, steering: Steering) -> np.ndarray:
    """(S,) KL(steered || default) in nats of the next-token distribution at each reply step, both read on
    the steered reply's own tokens (teacher-forced: one pass with the steering, one without)."""
    with torch.inference_mode():
        plain = list(_reply_log_probs(lm, token_ids, n_prompt))
        with steered(lm, steering):
            pushed = list(_reply_log_probs(lm, token_ids, n_prompt))
    kl = [(p.exp() * (p - q)).sum(dim=-1) for p, q in zip(pushed, plain, strict=True)]
    return torch.cat(kl).cpu().numpy().astype(np.float32) if kl else np.zeros(0, dtype=np.float32)
