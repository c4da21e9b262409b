"""SAE feature views: one feature across the turn's tokens, and each token's strongest features."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from inspectors.errors import InvalidParameterError
from inspectors.sae import SparseActivations
from inspectors.views.attention_map import axis_labels
from inspectors.views.tokens import show_whitespace


def feature_shading(tokens: list[str], values: np.ndarray) -> list[tuple[str, float]]:
    """(piece, activation / max activation) per token, for a HighlightedText shaded by strength."""
    peak = float(values.max()) if values.size and values.max() > 0 else 1.0
    return [(show_whitespace(piece), float(v) / peak) for piece, v in zip(tokens, values, strict=True)]


def feature_figure(tokens: list[str], values: np.ndarray, feature: int, layer: int) -> go.Figure:
    labels = axis_labels(tokens)
    fig = go.Figure(
        go.Bar(x=labels, y=values, marker_color="#ea580c", hovertemplate="%{x}<br>activation %{y:.3f}<extra></extra>")
    )
    fig.update_layout(
        title=f"Feature {feature} at layer {layer}, per token (max {float(values.max()):.3f})",
        xaxis={"type": "category", "tickangle": -60, "title": "token"},
        yaxis={"title": "activation"},
        height=380,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def top_feature_rows(acts: SparseActivations, position: int) -> list[list]:
    """[rank, feature, activation, Neuronpedia page] of the token at `position`; inactive ones left out."""
    n_tokens = acts.top_ids.shape[0]
    if not isinstance(position, int) or not 0 <= position < n_tokens:
        raise InvalidParameterError("position", f"must be an integer in [0, {n_tokens - 1}]", position)
    rows = []
    for rank, (feature, value) in enumerate(zip(acts.top_ids[position], acts.top_values[position], strict=True), 1):
        if value <= 0:
            break
        rows.append([rank, int(feature), round(float(value), 4), acts.feature_url(int(feature)) or ""])
    return rows


def feature_summary(acts: SparseActivations, feature: int, values: np.ndarray, tokens: list[str]) -> str:
    peak = int(np.argmax(values)) if values.size else 0
    link = acts.feature_url(feature)
    where = f"strongest on token {peak} `{show_whitespace(tokens[peak])}`" if values.size and values[peak] > 0 else ""
    active = int(np.sum(values > 0))
    text = (
        f"SAE `{acts.sae_name}` on the output of layer {acts.layer} ({acts.d_sae:,} features). Feature **{feature}** "
        f"is active on {active} of {len(values)} tokens, max {float(values.max()):.3f}{', ' + where if where else ''}."
    )
    return text + (f" [Feature {feature} on Neuronpedia]({link})" if link else "")
