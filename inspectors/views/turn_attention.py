"""Turn-aware attention: where each reply token's attention goes, by chat segment (and a sparse view of
long turns' attention: each query row's strongest keys only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from inspectors.views.tokens import show_whitespace

SPARSE_FROM = 512  # turns of more tokens than this are drawn as each row's top keys, never as a dense matrix
SPARSE_TOP_K = 8


def select(shares: np.ndarray, layer: int | str, head: int | str) -> np.ndarray:
    """(Q, S) from (layers, heads, Q, S): one layer or the mean over layers, one head or the mean over heads."""
    by_layer = shares.mean(axis=0) if layer == "mean" else shares[int(layer)]
    return by_layer.mean(axis=0) if head == "mean" else by_layer[int(head)]


def stacked_figure(share: np.ndarray, names: list[str], reply: list[str], title: str) -> go.Figure:
    """One stacked bar per reply token: the share of its attention that goes to each segment."""
    colors = qualitative.Plotly + qualitative.Set2
    labels = [f"{i}:{show_whitespace(t)}" for i, t in enumerate(reply)]
    fig = go.Figure(
        [
            go.Bar(
                x=labels, y=share[:, s], name=name, marker_color=colors[s % len(colors)],
                hovertemplate=f"%{{x}} → {name}: %{{y:.3f}}<extra></extra>",
            )
            for s, name in enumerate(names)
        ]
    )  # fmt: skip
    fig.update_layout(
        barmode="stack", title=title, yaxis={"title": "share of attention", "range": [0, 1]},
        xaxis={"type": "category", "tickangle": -60, "title": "reply token"},
        height=420, margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )  # fmt: skip
    return fig


def layer_figure(shares: np.ndarray, names: list[str], head: int | str, title: str) -> go.Figure:
    """Layers x segments: the mean share over the reply's tokens."""
    by_head = shares.mean(axis=1) if head == "mean" else shares[:, int(head)]  # (L, Q, S)
    z = by_head.mean(axis=1)  # (L, S)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=names, y=[f"layer {layer}" for layer in range(z.shape[0])], colorscale="Blues", zmin=0,
            zmax=float(z.max()) if z.size else 1.0, hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(title=title, height=max(320, 22 * z.shape[0] + 140), margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def share_rows(share: np.ndarray, names: list[str], queries: np.ndarray) -> list[list[Any]]:
    """API rows: [reply position, segment, share]."""
    return [[int(q), names[s], round(float(share[i, s]), 5)] for i, q in enumerate(queries) for s in range(len(names))]


def sparse_figure(
    attention: np.ndarray, tokens: list[str], title: str, k: int = SPARSE_TOP_K, first_query: int = 0
) -> go.Figure:
    """Rows of a long turn's attention (queries x keys, the first being `first_query`) as each query's top-k
    keys: a scatter, never a dense matrix."""
    top = np.argsort(-attention, axis=1)[:, :k]  # (Q, k)
    rows = np.repeat(np.arange(attention.shape[0]), k)
    keys = top.ravel()
    weights = attention[rows, keys]
    queries = rows + first_query
    fig = go.Figure(
        go.Scattergl(
            x=keys, y=queries, mode="markers",
            marker={"color": weights, "colorscale": "Viridis", "cmin": 0, "cmax": float(weights.max()), "size": 4,
                    "colorbar": {"title": "weight"}},
            hovertemplate="query %{y} → key %{x}: %{marker.color:.4f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=title, xaxis={"title": "key position"}, yaxis={"title": "query position", "autorange": "reversed"},
        height=600, margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )  # fmt: skip
    return fig
