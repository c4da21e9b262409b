"""Figures for the course's SAE experiments (HW3 7.2-7.9)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from inspectors.views.sae_view import feature_figure

if TYPE_CHECKING:
    from inspectors.sae.experiments import FeatureOnText, TokenAcrossLayers


def prompts_histogram(results: list[FeatureOnText]) -> go.Figure:
    """7.2-7.3: each prompt's per-token activations of the feature, overlaid, max in the legend."""
    fig = go.Figure()
    for i, result in enumerate(results, start=1):
        values = result.values[1:] if result.skip_bos else result.values
        fig.add_trace(
            go.Histogram(x=values, name=f"prompt {i} (max {result.max_activation:.2f})", opacity=0.6, nbinsx=30)
        )
    feature, layer = results[0].feature, results[0].layer
    bos = ", <bos> excluded" if results[0].skip_bos else ""
    fig.update_layout(
        barmode="overlay",
        title=f"Feature {feature} at layer {layer}: activations per token{bos}",
        xaxis_title="activation",
        yaxis_title="tokens",
        height=380,
    )
    return fig


def per_token_figure(result: FeatureOnText) -> go.Figure:
    """7.4-7.6: the feature on each token of one sentence."""
    return feature_figure(result.tokens, result.values, result.feature, result.layer)


def across_layers_figure(result: TokenAcrossLayers, feature: int) -> go.Figure:
    """7.7-7.9: one token's activation of the feature at each layer."""
    fig = go.Figure(go.Scatter(x=result.layers, y=result.values, mode="lines+markers", name=result.variant))
    fig.update_layout(
        title=f"Feature {feature} on token {result.position} {result.token!r} across layers ({result.variant})",
        xaxis_title="layer",
        yaxis_title="activation",
        height=380,
    )
    return fig
