"""SAE feature views: one feature across the turn's tokens, and each token's strongest features."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from inspectors.errors import InvalidParameterError
from inspectors.sae.sparse import SparseActivations
from inspectors.views.attention_map import axis_labels
from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.sae.loading import LoadedSAE


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


def _escape(text: str) -> str:
    """Corpus text shown inside markdown: no accidental emphasis, links or line breaks."""
    return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in text).replace("\n", " ⏎ ")


def _bold(token: str) -> str:
    """Markdown bold needs its text to start and end with non-space: " Time" -> " **Time**"."""
    core = token.strip()
    if not core:
        return f"**{_escape(token).replace(' ', '␣').replace(chr(10), '⏎')}**"
    lead, trail = token[: len(token) - len(token.lstrip())], token[len(token.rstrip()) :]
    return f"{lead}**{_escape(core)}**{trail}"


def feature_card_markdown(lsae: LoadedSAE, feature: int) -> str:
    """Density and top contexts (shipped SAEs) or the Neuronpedia page (Gemma Scope), plus why this SAE."""
    blocks = [f"### Feature {feature} of `{lsae.name}`"]
    if lsae.note:
        blocks.append(f"ℹ️ {lsae.note}")
    if lsae.features is not None:
        card = lsae.features.card(feature)
        blocks.append(
            f"Fires on {card.density:.3%} of the training corpus's tokens; strongest activation {card.max_act:.2f}. "
            "Top contexts (the token it fires on in bold):"
        )
        contexts = [
            f"1. …{_escape(c.left[-80:])}{_bold(c.token)}{_escape(c.right)}… `{c.act:.2f}`" for c in card.contexts
        ]
        blocks.append("\n".join(contexts) or "(never fired on the training corpus: a dead feature)")
    link = lsae.feature_url(feature)
    if link:
        blocks.append(f"[Feature {feature} on Neuronpedia]({link}): its explanation, density and top activations.")
    elif lsae.features is None:
        blocks.append("This SAE ships no feature contexts and has no Neuronpedia page.")
    return "\n\n".join(blocks)


def search_rows(lsae: LoadedSAE, query: str, limit: int = 15) -> tuple[str, list[list]]:
    """(message, [feature, score, example context]) for the words of `query`."""
    if lsae.features is None:
        return (
            f"`{lsae.name}` ships no top contexts to search; look its features up on Neuronpedia "
            "(the link in the feature card).",
            [],
        )
    if not query.strip():
        return "Type a word, e.g. travel, to find the features that fire on it.", []
    hits = lsae.features.search(query, limit)
    rows = [
        [
            h.feature,
            round(h.score, 3),
            f"…{h.example.left[-50:]}[{h.example.token}]{h.example.right}…" if h.example else "",
        ]
        for h in hits
    ]
    found = (
        f"{len(rows)} features fire on or near “{query}” in their top contexts."
        if rows
        else f"No feature's top contexts contain “{query}”."
    )
    return found + " Pick one to show it.", rows
