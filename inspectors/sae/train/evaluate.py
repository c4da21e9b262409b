"""Held-out metrics of an SAE: explained variance, L0, dead-feature fraction, relative MSE.

Explained variance = 1 - sum_t ||x_t - x̂_t||^2 / sum_t ||x_t - x̄||^2 over held-out tokens t, with x̄ their
mean activation: the share of the residual stream's variance that the reconstruction keeps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


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
