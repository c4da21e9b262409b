"""Attention heatmaps from one layer's (heads, T, T) probabilities: one head, the mean, or all heads."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inspectors.errors import InvalidParameterError
from inspectors.views.tokens import show_whitespace

MAX_ROWS = 256  # query rows drawn at once; longer turns are viewed through a window


def axis_labels(tokens: list[str]) -> list[str]:
    """'position:piece' labels, unique even when a token repeats (plotly merges equal category labels)."""
    return [f"{i}:{show_whitespace(piece)}" for i, piece in enumerate(tokens)]


def query_window(n_tokens: int, start: int, size: int = MAX_ROWS) -> tuple[int, int]:
    """[start, end) of the query rows to draw, clamped to the turn."""
    if not isinstance(start, int) or start < 0:
        raise InvalidParameterError("query_start", "must be an integer >= 0", start)
    start = min(start, max(0, n_tokens - 1))
    return start, min(n_tokens, start + size)


def select_head(attention: np.ndarray, head: int | str) -> np.ndarray:
    """(T, T) weights of one head, or the mean over heads for head='mean'."""
    if head == "mean":
        return attention.mean(axis=0)
    n_heads = attention.shape[0]
    if not isinstance(head, int) or not 0 <= head < n_heads:
        raise InvalidParameterError("head", f"must be 'mean' or an integer in [0, {n_heads - 1}]", head)
    return attention[head]


def attention_figure(
    attention: np.ndarray, tokens: list[str], head: int | str, layer: int, query_start: int = 0
) -> go.Figure:
    """Heatmap of one head (or the mean): rows = query tokens, columns = key tokens, hover shows both."""
    weights = select_head(attention, head)
    start, end = query_window(weights.shape[0], query_start)
    labels = axis_labels(tokens)
    keys = labels[:end]  # causal: no query in the window attends past its own position
    z = weights[start:end, :end]
    hover = np.array([[f"{q} → {k}" for k in keys] for q in labels[start:end]], dtype=object)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=keys,
            y=labels[start:end],
            customdata=hover,
            colorscale="Viridis",
            zmin=0,
            zmax=float(z.max()) if z.size else 1.0,
            hovertemplate="query → key: %{customdata}<br>weight %{z:.4f}<extra></extra>",
        )
    )
    title = "mean over heads" if head == "mean" else f"head {head}"
    fig.update_layout(
        title=f"Layer {layer}, {title} (queries {start}–{end - 1})",
        xaxis={"title": "key token", "type": "category", "tickangle": -60},
        yaxis={"title": "query token", "type": "category", "autorange": "reversed"},
        height=max(420, min(1200, 14 * (end - start) + 160)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def heads_overview(attention: np.ndarray, layer: int, query_start: int = 0) -> go.Figure:
    """Small multiples of every head of the layer, on a shared 0..1 colour scale."""
    n_heads, n_tokens = attention.shape[0], attention.shape[1]
    start, end = query_window(n_tokens, query_start)
    cols = min(4, n_heads)
    rows = math.ceil(n_heads / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {h}" for h in range(n_heads)])
    for h in range(n_heads):
        fig.add_trace(
            go.Heatmap(
                z=attention[h, start:end, :end],
                coloraxis="coloraxis",
                hovertemplate=f"head {h}<br>query %{{y}} → key %{{x}}<br>weight %{{z:.4f}}<extra></extra>",
                y=list(range(start, end)),
            ),
            row=h // cols + 1,
            col=h % cols + 1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=f"Layer {layer}: all heads (queries {start}–{end - 1})",
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1},
        height=260 * rows + 60,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig
