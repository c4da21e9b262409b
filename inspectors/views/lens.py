"""Logit-lens views: the layers x positions grid, the commitment strip, one cell's top-10, the API rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.engine.lens import LensGrid


def _piece(pieces: dict[int, str], token_id: int) -> str:
    return show_whitespace(pieces.get(int(token_id), f"#{int(token_id)}"))


def _hover(grid: LensGrid, pieces: dict[int, str], tokens: list[str], layer: int, p: int) -> str:
    """The cell's top-5 and the probability of the token that came."""
    top = zip(grid.top_ids[layer, p, :5], grid.top_probs[layer, p, :5], strict=True)
    came = show_whitespace(tokens[grid.positions[p] + 1])
    return (
        "<br>".join(f"{_piece(pieces, i)}: {q:.3f}" for i, q in top)
        + f"<br>—<br>p({came}) = {grid.target_probs[layer, p]:.3f}"
    )


def lens_figure(grid: LensGrid, tokens: list[str], pieces: dict[int, str], title: str) -> go.Figure:
    """Rows: layers (the last on top); columns: the token each position predicts. Each cell shows the lens's
    top-1 token, shaded by the probability the lens gives the token that actually came; hover: top-5."""
    columns = [f"{p + 1}:{show_whitespace(tokens[p + 1])}" for p in grid.positions]
    rows = [f"layer {layer}" for layer in range(grid.n_layers)]
    text = [[_piece(pieces, grid.top_ids[layer, p, 0]) for p in range(len(columns))] for layer in range(grid.n_layers)]
    hover = [[_hover(grid, pieces, tokens, layer, p) for p in range(len(columns))] for layer in range(grid.n_layers)]
    fig = go.Figure(
        go.Heatmap(
            z=grid.target_probs,
            x=columns,
            y=rows,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 10},
            customdata=np.array(hover, dtype=object),
            hovertemplate="%{y}, predicting %{x}<br>%{customdata}<extra></extra>",
            colorscale="Greens",
            zmin=0,
            zmax=1,
            colorbar={"title": "p(token that came)"},
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"type": "category", "tickangle": -60, "title": "position: the token that came next"},
        yaxis={"type": "category", "title": "residual stream after"},
        height=max(360, 22 * grid.n_layers + 160),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def commitment_chips(grid: LensGrid, tokens: list[str]) -> list[tuple[str, str | None]]:
    """(token, 'from layer L') for a HighlightedText: the first layer from which the lens's top-1 stays
    the token that came ('never' when even the last layer preferred another: a sampled token)."""
    chips = []
    for p, layer in zip(grid.positions, grid.commitment(), strict=True):
        chips.append((show_whitespace(tokens[p + 1]), f"from layer {layer}" if layer >= 0 else "never"))
    return chips


def cell_rows(grid: LensGrid, pieces: dict[int, str], layer: int, column: int) -> list[list[Any]]:
    """[rank, token, id, probability] of the lens's top-10 at one layer and position."""
    return [
        [rank, _piece(pieces, i), int(i), round(float(q), 5)]
        for rank, (i, q) in enumerate(zip(grid.top_ids[layer, column], grid.top_probs[layer, column], strict=True), 1)
    ]


def lens_rows(grid: LensGrid, tokens: list[str], pieces: dict[int, str]) -> list[list[Any]]:
    """API rows: [layer, position, token that came, top-1 token, top-1 probability, probability of the token]."""
    rows = []
    for layer in range(grid.n_layers):
        for column, position in enumerate(grid.positions):
            rows.append([
                layer, int(position) + 1, tokens[position + 1], pieces.get(int(grid.top_ids[layer, column, 0]), ""),
                round(float(grid.top_probs[layer, column, 0]), 5), round(float(grid.target_probs[layer, column]), 5),
            ])  # fmt: skip
    return rows
