"""What each tab shows for one turn, as plain objects: the UI puts them in widgets, the API returns `api()`.

A panel is built from the turn's record by the pure views (`inspectors.views`); only attention and
SAE activations of a finished turn need the model, through `Shared`'s cached calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from inspectors.views.attention_map import MAX_ROWS, axis_labels, query_window, select_head
from inspectors.views.turn_attention import SPARSE_FROM, SPARSE_TOP_K

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
        """The selected head's (or mean's) rows of the query window, at most MAX_ROWS of them: dense up to
        SPARSE_FROM tokens, each row's top keys beyond (`top_keys`: [[key, weight], ...] per row)."""
        if self.weights is None:
            return {"turn": self.turn, "layer": self.layer, "head": self.head, "weights": []}
        matrix = select_head(self.weights.astype("float32"), self.head)
        start, end = query_window(matrix.shape[0], self.query_start, MAX_ROWS)
        labels = axis_labels(self.tokens)
        out = {"turn": self.turn, "layer": self.layer, "head": self.head, "query_start": start,
               "query_tokens": labels[start:end]}  # fmt: skip
        if matrix.shape[0] > SPARSE_FROM:
            top = np.argsort(-matrix[start:end], axis=1)[:, :SPARSE_TOP_K]
            out["top_keys"] = [
                [[int(k), round(float(matrix[start + i, k]), 5)] for k in row] for i, row in enumerate(top)
            ]
            return out
        out["key_tokens"] = labels[:end]
        out["weights"] = [[round(float(w), 5) for w in row[:end]] for row in matrix[start:end]]
        return out


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


@dataclass
class LensPanel:
    turn: int | None
    summary: str = ""
    figure: go.Figure | None = None
    commitment: list[tuple[str, str | None]] = field(default_factory=list)  # (token, 'from layer L')
    cell: list[list[Any]] = field(default_factory=list)  # [rank, token, id, p] of the selected cell
    rows: list[list[Any]] = field(default_factory=list)  # API rows
    columns: list[int] = field(default_factory=list)  # the positions shown (each predicts the next token)

    def api(self) -> dict[str, Any]:
        headers = ["layer", "position", "token", "top-1 token", "top-1 probability", "probability of the token"]
        return {"turn": self.turn, "summary": self.summary, "headers": headers, "rows": self.rows}


@dataclass
class WhyPanel:
    turn: int | None
    summary: str = "Send a message, then pick a reply token to explain."
    step: int = 0
    method: str = "gradient"
    shading: list[tuple[str, float]] = field(default_factory=list)
    figure: go.Figure | None = None
    words: list[list[Any]] = field(default_factory=list)  # [word, score], strongest first
    totals: dict[str, float] = field(default_factory=dict)  # per chat segment
    rows: list[list[Any]] = field(default_factory=list)  # [position, token, segment, score]
    warning: str = ""

    def api(self) -> dict[str, Any]:
        return {
            "turn": self.turn, "step": self.step, "method": self.method, "summary": self.summary,
            "warning": self.warning, "headers": ["position", "token", "segment", "score"], "rows": self.rows,
            "segments": self.totals,
        }  # fmt: skip


@dataclass
class TurnAttentionPanel:
    turn: int | None
    summary: str = ""
    stacked: go.Figure | None = None
    by_layer: go.Figure | None = None
    rows: list[list[Any]] = field(default_factory=list)  # [reply position, segment, share]

    def api(self) -> dict[str, Any]:
        headers = ["reply position", "segment", "share"]
        return {"turn": self.turn, "summary": self.summary, "headers": headers, "rows": self.rows}
