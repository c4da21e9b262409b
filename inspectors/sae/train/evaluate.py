"""Held-out metrics of an SAE: what it does to the model's loss, and how well it reconstructs.

- CE loss recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean): the model's next-token cross-entropy with
  the residual stream after the SAE's layer replaced by the SAE's reconstruction (CE_sae), against the clean
  model (CE_clean) and against that residual zeroed (CE_zero). 1 is a perfect SAE, 0 no better than
  deleting the layer's residual. The loss increase CE_sae - CE_clean is in nats per token. The `<bos>`
  position is left as it is in every run (the SAEs are trained without it), and only predictions made at
  the other positions are scored.
- Explained variance = 1 - sum_t ||x_t - x̂_t||^2 / sum_t ||x_t - x̄||^2 over held-out tokens t, with x̄ their
  mean activation (the mean removed: a constant offset, and Gemma's residual stream has large ones, counts
  for nothing). A few large dimensions still dominate it, which is why the loss figures come first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from inspectors.engine.forward import block_output


@dataclass(frozen=True)
class SAEMetrics:
    n_tokens: int
    explained_variance: float
    l0: float  # mean number of active features per token
    dead_fraction: float  # features that never fire on these tokens
    relative_mse: float  # sum ||x - x̂||^2 / sum ||x||^2

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(sae, acts: np.ndarray, batch_size: int = 4096) -> SAEMetrics:
    """Metrics of a sae-lens SAE (training or inference class) on `acts` (n, d_in)."""
    d_sae = int(sae.cfg.d_sae)
    fired = torch.zeros(d_sae, dtype=torch.bool)
    squared_error = total_square = l0_sum = 0.0
    mean = torch.from_numpy(np.asarray(acts, dtype=np.float32).mean(axis=0))
    variance = 0.0
    with torch.inference_mode():
        for start in range(0, len(acts), batch_size):
            x = torch.from_numpy(np.asarray(acts[start : start + batch_size], dtype=np.float32))
            features = sae.encode(x)
            reconstruction = sae.decode(features)
            active = features > 0
            fired |= active.any(dim=0)
            l0_sum += float(active.sum())
            squared_error += float(((x - reconstruction) ** 2).sum())
            variance += float(((x - mean) ** 2).sum())
            total_square += float((x**2).sum())
    n = len(acts)
    return SAEMetrics(
        n_tokens=int(n),
        explained_variance=1.0 - squared_error / variance,
        l0=l0_sum / n,
        dead_fraction=float((~fired).float().mean()),
        relative_mse=squared_error / total_square,
    )


@dataclass(frozen=True)
class LossMetrics:
    n_predictions: int  # next-token predictions scored (positions after <bos>)
    ce_clean: float  # nats per token
    ce_sae: float
    ce_zero: float

    @property
    def recovered(self) -> float:
        return (self.ce_zero - self.ce_sae) / (self.ce_zero - self.ce_clean)

    @property
    def increase(self) -> float:
        return self.ce_sae - self.ce_clean

    def to_dict(self) -> dict:
        return {**asdict(self), "ce_loss_recovered": self.recovered, "ce_increase_nats": self.increase}


def cross_entropy(lm, windows: np.ndarray, layer: int, replace=None, batch_size: int = 2) -> tuple[float, int]:
    """(mean next-token CE in nats, predictions scored) of the model on `windows` (n, T), predictions made at
    positions 1..T-2. `replace`: (batch, T-1, d) residual after `layer` at positions 1.. -> what to use instead."""

    def hook(module, args, output):
        resid = block_output(output)
        changed = resid.clone()
        changed[:, 1:, :] = replace(resid[:, 1:, :]).to(resid.dtype)
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    total, count = 0.0, 0
    handle = lm.decoder_layers[layer].register_forward_hook(hook) if replace is not None else None
    try:
        with lm.lock, torch.inference_mode():
            for start in range(0, len(windows), batch_size):
                ids = torch.tensor(np.asarray(windows[start : start + batch_size]), dtype=torch.long, device=lm.device)
                logits = lm.model(input_ids=ids, use_cache=False).logits[:, 1:-1].float()  # (b, T-2, V)
                targets = ids[:, 2:]
                losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="sum")
                total += float(losses)
                count += int(targets.numel())
    finally:
        if handle is not None:
            handle.remove()
    return total / count, count


def loss_metrics(lm, sae, windows: np.ndarray, layer: int, clean: float | None = None) -> LossMetrics:
    """CE clean (pass `clean` to reuse it across SAEs of other layers), with the SAE's reconstruction, zeroed."""
    sae_dtype = sae.W_enc.dtype

    def reconstruct(resid: torch.Tensor) -> torch.Tensor:
        x = resid.to(device=sae.W_enc.device, dtype=sae_dtype)
        return sae.decode(sae.encode(x)).to(resid.device)

    ce_clean, n = (clean, None) if clean is not None else cross_entropy(lm, windows, layer)
    ce_sae, n = cross_entropy(lm, windows, layer, reconstruct)
    ce_zero, _ = cross_entropy(lm, windows, layer, torch.zeros_like)
    return LossMetrics(n, ce_clean, ce_sae, ce_zero)
