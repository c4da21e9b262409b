"""Sparse SAE activations of a turn: what a record keeps (numpy only, so views can read it without torch).

A record keeps only each token's top-k features and one chosen feature's column: a dense T x d_sae
array (2,048 x 16,384 floats = 128 MB) never enters session state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def neuronpedia_url(neuronpedia_id: str | None, feature: int) -> str | None:
    """The feature's Neuronpedia page, for SAEs whose release data names one (Gemma Scope)."""
    return f"https://www.neuronpedia.org/{neuronpedia_id}/{feature}" if neuronpedia_id else None


@dataclass
class SparseActivations:
    """SAE features of every token of a turn, sparse. T = tokens, k = features kept per token."""

    sae_name: str
    layer: int
    d_sae: int
    neuronpedia_id: str | None
    top_ids: np.ndarray  # (T, k) int32, strongest first
    top_values: np.ndarray  # (T, k) float32
    feature: int  # the feature whose every activation is kept
    feature_values: np.ndarray  # (T,) float32

    def feature_url(self, feature: int) -> str | None:
        return neuronpedia_url(self.neuronpedia_id, feature)
