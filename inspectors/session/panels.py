"""What each tab shows for one turn, as plain objects: the UI puts them in widgets, the API returns `api()`.

A panel is built from the turn's record by the pure views (`inspectors.views`); only attention and
SAE activations of a finished turn need the model, through `Shared`'s cached calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from inspectors.views.attention_map import MAX_ROWS, axis_labels, query_window, select_head

EMPTY_TURN = "<p><em>Send a message: each turn's internals appear here.</em></p>"


@dataclass
class PromptPanel:
    turn: int | None
    text: str = ""
    html: str = EMPTY_TURN
    notes: str = ""
    warnings: list[str] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        return {"turn": self.turn, "prompt": self.text, "warnings": self.warnings, "html": self.html}


@dataclass
class TokensPanel:
    turn: int | None
    chips: list[tuple[str, str]] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)  # [position, id, token, part]

    def api(self) -> dict[str, Any]:
        return {"turn": self.turn, "headers": ["position", "id", "token", "part"], "rows": self.rows}


@dataclass
class NextTokenPanel:
    turn: int | None
    step: int = 0
    n_steps: int = 0
    summary: str = "No generated tokens yet."
    figure: go.Figure | None = None
    rows: list[list[Any]] = field(default_factory=list)  # [rank, token, id, raw p, warped p, generated]
    reply_chips: list[tuple[str, float]] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "step": self.step,
            "n_steps": self.n_steps,
            "summary": self.summary,
            "headers": ["rank", "token", "id", "raw p", "warped p", "generated"],
            "rows": self.rows,
            "reply_tokens": [token for token, _ in self.reply_chips],
        }


@dataclass
class AttentionPanel:
    turn: int | None
    n_layers: int  # of the turn's model (the session's model before any turn)
    n_heads: int
    layer: int = 0
    head: int | str = "mean"
    query_start: int = 0
    heatmap: go.Figure | None = None
    overview: go.Figure | None = None
    weights: Any = None  # (heads, T, T) float16, for api(); never sent to the browser whole
    tokens: list[str] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        """The selected head's (or mean's) rows of the query window, at most MAX_ROWS of them."""
        if self.weights is None:
            return {"turn": self.turn, "layer": self.layer, "head": self.head, "rows": []}
        matrix = select_head(self.weights.astype("float32"), self.head)
        start, end = query_window(matrix.shape[0], self.query_start, MAX_ROWS)
        labels = axis_labels(self.tokens)
        return {
            "turn": self.turn,
            "layer": self.layer,
            "head": self.head,
            "query_start": start,
            "query_tokens": labels[start:end],
            "key_tokens": labels[:end],
            "weights": [[round(float(w), 5) for w in row[:end]] for row in matrix[start:end]],
        }


@dataclass
class SAEPanel:
    turn: int | None
    summary: str
    feature: int | None = None  # the feature shown (None: no SAE, the feature box stays as it was)
    layer: int | None = None
    shading: list[tuple[str, float]] = field(default_factory=list)
    figure: go.Figure | None = None
    rows: list[list[Any]] = field(default_factory=list)  # [rank, feature, activation, Neuronpedia]
    card: str = ""
    values: list[float] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "summary": self.summary,
            "layer": self.layer,
            "feature": self.feature,
            "values": self.values,
            "top_features": {"headers": ["rank", "feature", "activation", "Neuronpedia"], "rows": self.rows},
            "card": self.card,
        }


@dataclass
class SearchPanel:
    message: str
    rows: list[list[Any]] = field(default_factory=list)  # [feature, score, example]

    def api(self) -> dict[str, Any]:
        return {"message": self.message, "headers": ["feature", "score", "example"], "rows": self.rows}


@dataclass
class LabPanel:
    lab: str
    summary: str
    result: dict[str, Any] | None = None
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        import json

        figures = [{"title": title, "plotly": json.loads(fig.to_json())} for title, fig in self.figures]
        return {"lab": self.lab, "summary": self.summary, "result": self.result, "figures": figures}
