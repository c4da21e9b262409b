"""Compare views: two prompts' first reply token distributions, their last-token residuals per layer, and the
SAE features they share (engine/compare.py computes the numbers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inspectors.sae.sparse import neuronpedia_url
from inspectors.views.tokens import PROMPT, REPLY, TEMPLATE, show_whitespace

if TYPE_CHECKING:
    from inspectors.engine.compare import Comparison, PlainReply, SAEComparison

COLORS = ("#2563eb", "#c2410c")  # A, B
TOP_HEADERS = ["rank", "A token", "A p", "B p of A's token", "B token", "B p", "A p of B's token"]
SAE_HEADERS = ["feature", "activation A", "activation B", "in the top-10 of", "Neuronpedia"]
LAYER_HEADERS = ["layer", "cosine", "norm A", "norm B"]


def plain_tokens(reply: PlainReply) -> list[tuple[str, str]]:
    """(piece, part) pairs of a prompt sent without the chat template and its reply, as `highlighted_tokens`
    gives them for a turn: special tokens (`<bos>`, a marker the reply emits) are template."""
    special = set(reply.special_ids)
    return [
        (show_whitespace(piece), TEMPLATE if token in special else PROMPT if i < reply.n_prompt else REPLY)
        for i, (token, piece) in enumerate(zip(reply.token_ids.tolist(), reply.tokens, strict=True))
    ]


def _piece(comparison: Comparison, token: int) -> str:
    return show_whitespace(comparison.pieces.get(int(token), str(int(token))))


def compare_summary(comparison: Comparison, label_a: str, label_b: str, sae_note: str = "") -> str:
    """KL both ways, the top tokens and their overlap, the cosine per layer, the SAE features in common (or
    `sae_note`, why there is no SAE part)."""
    c = comparison
    top_a, top_b = _piece(c, c.top_ids_a[0]), _piece(c, c.top_ids_b[0])
    same = "the same" if c.same_top_token else "different"
    lowest = int(np.argmin(c.cosine))
    lines = [
        f"**A** = {label_a} ({c.n_prompt_a} prompt tokens); **B** = {label_b} ({c.n_prompt_b} prompt tokens).",
        f"First reply token: KL(A ‖ B) = **{c.kl_ab:.3f}** nats, KL(B ‖ A) = **{c.kl_ba:.3f}** nats; most likely "
        f"`{top_a}` ({float(c.top_probs_a[0]):.1%}) vs `{top_b}` ({float(c.top_probs_b[0]):.1%}): {same} token. "
        f"Top-{len(c.top_ids_a)} overlap: **{c.overlap}** of {len(c.top_ids_a)} tokens (Jaccard {c.jaccard:.2f}).",
        f"Last prompt token's residual stream, A vs B: cosine {float(c.cosine[0]):.3f} after layer 0, "
        f"{float(c.cosine[-1]):.3f} after layer {c.n_layers - 1}, lowest {float(c.cosine[lowest]):.3f} after "
        f"layer {lowest}.",
    ]
    if c.sae is not None:
        common = c.sae.common
        shown = ", ".join(str(f) for f in common) if common else "none"
        lines.append(
            f"SAE `{c.sae.sae_name}` (layer {c.sae.layer}), last prompt token: {len(common)} feature(s) in both "
            f"top-{max(len(c.sae.top_ids_a), len(c.sae.top_ids_b))}s: {shown}."
        )
    elif sae_note or c.sae_note:
        lines.append(f"No SAE comparison: {sae_note or c.sae_note}")
    return "  \n".join(lines)


def _bars(fig: go.Figure, c: Comparison, ids: np.ndarray, own: np.ndarray, other: np.ndarray, col: int) -> None:
    labels = [f"{rank}. {_piece(c, token)}" for rank, token in enumerate(ids, 1)]
    names = ("A", "B") if col == 1 else ("B", "A")
    colors = COLORS if col == 1 else COLORS[::-1]
    for values, name, color in ((own, names[0], colors[0]), (other, names[1], colors[1])):
        fig.add_trace(
            go.Bar(x=labels, y=values, name=name, legendgroup=name, showlegend=col == 1, marker_color=color,
                   hovertemplate="%{x}: p = %{y:.4f}<extra>" + name + "</extra>"),
            1, col,
        )  # fmt: skip


def compare_figure(comparison: Comparison, label_a: str, label_b: str) -> go.Figure:
    """Top: each prompt's top first reply tokens, with the other prompt's probability of the same tokens.
    Bottom: the cosine of the two last-token residuals after each layer."""
    c = comparison
    fig = make_subplots(
        rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]], vertical_spacing=0.25,
        subplot_titles=[f"A's top first tokens ({label_a})", f"B's top first tokens ({label_b})",
                        "cosine of the last prompt token's residual, A vs B, per layer"],
    )  # fmt: skip
    _bars(fig, c, c.top_ids_a, c.top_probs_a, c.probs_b_of_a, 1)
    _bars(fig, c, c.top_ids_b, c.top_probs_b, c.probs_a_of_b, 2)
    layers = list(range(c.n_layers))
    fig.add_trace(
        go.Scatter(x=layers, y=c.cosine, mode="lines+markers", name="cosine", showlegend=False,
                   line={"color": "#334155"}, hovertemplate="layer %{x}: cosine %{y:.4f}<extra></extra>"),
        2, 1,
    )  # fmt: skip
    low = min(-0.05, float(c.cosine.min()) - 0.05) if c.n_layers else -0.05
    fig.update_yaxes(title_text="probability", row=1, col=1)
    fig.update_yaxes(title_text="cosine", range=[low, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="layer", dtick=1, row=2, col=1)
    fig.update_xaxes(tickangle=-45, row=1)
    fig.update_layout(barmode="group", height=620, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def top_token_rows(comparison: Comparison) -> list[list[Any]]:
    """[rank, A token, A p, B p of it, B token, B p, A p of it] for each rank of the two top lists."""
    c = comparison
    rows = []
    for rank in range(max(len(c.top_ids_a), len(c.top_ids_b))):
        row: list[Any] = [rank + 1]
        for ids, own, other in ((c.top_ids_a, c.top_probs_a, c.probs_b_of_a),
                                (c.top_ids_b, c.top_probs_b, c.probs_a_of_b)):  # fmt: skip
            if rank < len(ids):
                row += [_piece(c, ids[rank]), round(float(own[rank]), 5), round(float(other[rank]), 5)]
            else:
                row += ["", None, None]
        rows.append(row)
    return rows


def sae_rows(sae: SAEComparison | None) -> list[list[Any]]:
    """[feature, activation A, activation B, 'A and B' | 'A' | 'B', Neuronpedia page]: the features in both
    top lists first, strongest (smaller of the two activations) first, then A's and B's others."""
    if sae is None:
        return []
    values: dict[int, list[float]] = {}
    for ids, own, other, side in ((sae.top_ids_a, sae.top_values_a, sae.values_b_of_a, 0),
                                  (sae.top_ids_b, sae.top_values_b, sae.values_a_of_b, 1)):  # fmt: skip
        for feature, mine, theirs in zip(ids.tolist(), own.tolist(), other.tolist(), strict=True):
            pair = [mine, theirs] if side == 0 else [theirs, mine]
            values.setdefault(int(feature), pair)
    common = set(sae.common)
    in_a = set(sae.top_ids_a.tolist())

    def order(feature: int) -> tuple:
        a, b = values[feature]
        group = 0 if feature in common else 1 if feature in in_a else 2
        return group, -(min(a, b) if group == 0 else max(a, b))

    rows = []
    for feature in sorted(values, key=order):
        a, b = values[feature]
        where = "A and B" if feature in common else "A" if feature in in_a else "B"
        link = neuronpedia_url(sae.neuronpedia_id, feature) or ""
        rows.append([feature, round(a, 4), round(b, 4), where, link])
    return rows


def layer_rows(comparison: Comparison) -> list[list[Any]]:
    """[layer, cosine, norm A, norm B] of the last prompt token's residual after each layer."""
    c = comparison
    return [
        [layer, round(float(c.cosine[layer]), 5), round(float(c.norms_a[layer]), 3), round(float(c.norms_b[layer]), 3)]
        for layer in range(c.n_layers)
    ]
