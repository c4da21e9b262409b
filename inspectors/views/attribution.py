"""Attribution views: tokens shaded by their score, one bar per chat segment, words, the API rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.engine.attribution import Attribution
    from inspectors.engine.segments import Segments


def shading(tokens: list[str], scores: np.ndarray) -> list[tuple[str, float]]:
    """(token, score / max |score|) for a HighlightedText: positive pushes the token up, negative down."""
    peak = float(np.abs(scores).max()) if scores.size and np.abs(scores).max() > 0 else 1.0
    return [(show_whitespace(piece), float(s) / peak) for piece, s in zip(tokens, scores, strict=False)]


def segment_totals(segments: Segments, scores: np.ndarray) -> dict[str, float]:
    """Each chat segment's summed score, over the tokens attributed (those before the explained token)."""
    of_token = segments.of_token[: len(scores)]
    return {name: float(scores[of_token == i].sum()) for i, name in enumerate(segments.names) if (of_token == i).any()}


def top_segment(totals: dict[str, float]) -> str:
    return max(totals, key=lambda name: totals[name])


def words(tokens: list[str], scores: np.ndarray) -> list[tuple[str, float]]:
    """Scores summed per word: a word starts at a token that begins with a space or '▁', or at a special
    token (written '<...>')."""
    merged: list[tuple[str, float]] = []
    for piece, score in zip(tokens, scores, strict=False):
        starts = not merged or piece[:1] in {" ", "▁", "\n"} or piece.startswith("<") or merged[-1][0].endswith(">")
        if starts:
            merged.append((piece, float(score)))
        else:
            merged[-1] = (merged[-1][0] + piece, merged[-1][1] + float(score))
    return [(show_whitespace(word), score) for word, score in merged]


def segment_figure(totals: dict[str, float], title: str) -> go.Figure:
    names = list(totals)
    values = [totals[n] for n in names]
    fig = go.Figure(
        go.Bar(
            x=values[::-1], y=names[::-1], orientation="h",
            marker_color=["#16a34a" if v >= 0 else "#dc2626" for v in values[::-1]],
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=title, xaxis={"title": "summed attribution (log-probability)"}, yaxis={"type": "category"},
        height=max(260, 30 * len(names) + 120), margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )  # fmt: skip
    return fig


def attribution_rows(tokens: list[str], segments: Segments, attribution: Attribution) -> list[list[Any]]:
    """API rows: [position, token, segment, score]."""
    return [
        [i, tokens[i], segments.names[int(segments.of_token[i])], round(float(s), 6)]
        for i, s in enumerate(attribution.scores)
    ]
