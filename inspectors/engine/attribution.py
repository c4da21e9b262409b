"""Why a reply token: how much each earlier token contributed to its log-probability, with Captum.

The target is log p(token at `position`) given everything before it (the prompt and the reply so far).
Methods, all attributing at the output of the embedding layer (Gemma scales its embeddings by sqrt(d)
inside that module, so the baseline lives in the same space):
- `gradient`: gradient x embedding (Captum's LayerGradientXActivation), one backward pass;
- `integrated_gradients`: Captum's LayerIntegratedGradients from an all-padding baseline, `steps` points
  batched a few at a time; its convergence delta (how far the attributions' sum is from f(x) - f(baseline))
  is reported;
- `occlusion`: each chat segment replaced by padding in turn (Captum's FeatureAblation with one mask id per
  segment): the drop in log-probability, the same for every token of the segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inspectors.engine.loading import LoadedModel

METHODS = ("gradient", "integrated_gradients", "occlusion")
DEFAULT_STEPS = 32
STEPS_PER_BATCH = 4  # integrated-gradients points per forward pass: memory stays a few GB at 1,024 tokens


@dataclass
class Attribution:
    method: str
    position: int  # the reply token explained (an index into the turn's tokens)
    target_id: int
    scores: np.ndarray  # (position,) float32: one per earlier token
    target_logprob: float  # log p(target | everything before it)
    convergence_delta: float | None = None  # integrated gradients only
    steps: int | None = None


def _baseline_id(lm: LoadedModel) -> int:
    return int(lm.pad_token_id)


def _forward(lm: LoadedModel, target_id: int):
    def log_prob(input_ids: torch.Tensor) -> torch.Tensor:  # (batch,) log p(target) at the last position
        logits = lm.model(input_ids=input_ids, use_cache=False, logits_to_keep=1).logits[:, -1].float()
        return torch.log_softmax(logits, dim=-1)[:, target_id]

    return log_prob


def attribute(
    lm: LoadedModel,
    token_ids: np.ndarray,
    position: int,
    method: str,
    *,
    segment_of_token: np.ndarray | None = None,
    steps: int = DEFAULT_STEPS,
) -> Attribution:
    """Scores of tokens [0, position) for the token at `position`. `segment_of_token`: (T,) segment ids,
    needed by `occlusion`."""
    from captum.attr import FeatureAblation, LayerGradientXActivation, LayerIntegratedGradients

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    token_ids = np.asarray(token_ids)
    target_id = int(token_ids[position])
    inputs = torch.tensor(token_ids[None, :position], dtype=torch.long, device=lm.device)  # (1, position)
    baseline = torch.full_like(inputs, _baseline_id(lm))
    forward = _forward(lm, target_id)
    embeddings = lm.model.get_input_embeddings()
    delta = None
    with lm.lock, torch.enable_grad():
        if method == "gradient":
            scores = LayerGradientXActivation(forward, embeddings).attribute(inputs).sum(-1)
        elif method == "integrated_gradients":
            scores, delta = LayerIntegratedGradients(forward, embeddings).attribute(
                inputs, baselines=baseline, n_steps=steps, internal_batch_size=STEPS_PER_BATCH,
                return_convergence_delta=True,
            )  # fmt: skip
            scores, delta = scores.sum(-1), float(delta.abs().max())
        else:
            if segment_of_token is None:
                raise ValueError("occlusion needs each token's segment")
            mask = torch.as_tensor(np.asarray(segment_of_token)[None, :position], dtype=torch.long, device=lm.device)
            scores = FeatureAblation(forward).attribute(inputs, baselines=_baseline_id(lm), feature_mask=mask)
        with torch.no_grad():
            logprob = float(forward(inputs)[0])
    return Attribution(
        method, position, target_id, scores[0].detach().float().cpu().numpy(), logprob, delta,
        steps if method == "integrated_gradients" else None,
    )  # fmt: skip
