"""Views of the explain lab: per sentence, the lens at the last prompt position across layers, and the
first generated token's attribution to the sentence's tokens by two methods."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.labs.explain import Explained, ExplainResult

# The lab explains at most this many sentences: one figure slot each in the UI.
N_FIGURES = 6


def sentence_figure(item: Explained) -> go.Figure:
    first = show_whitespace(item.tokens[item.n_prompt])
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], subplot_titles=(
        f"Lens: p(`{first}`) per layer", f"Why `{first}`: attribution per token"))  # fmt: skip
    layers = list(range(len(item.lens_target_prob)))
    tops = [show_whitespace(t) for t in item.lens_top]
    hover = "layer %{x}: p = %{y:.3f}<br>lens top-1: %{text}<extra></extra>"
    lens = go.Scatter(
        x=layers, y=item.lens_target_prob, mode="lines+markers", text=tops, hovertemplate=hover, name="lens"
    )
    fig.add_trace(lens, row=1, col=1)
    labels = [f"{i}:{show_whitespace(t)}" for i, t in enumerate(item.tokens[: item.n_prompt])]
    for name, scores in (("gradient x embedding", item.gradient), ("integrated gradients", item.integrated_gradients)):
        fig.add_trace(go.Bar(x=labels, y=scores, name=name), row=1, col=2)
    fig.update_xaxes(title_text="layer", row=1, col=1)
    fig.update_xaxes(type="category", tickangle=-60, row=1, col=2)
    fig.update_yaxes(range=[0, 1], row=1, col=1)
    fig.update_layout(barmode="group", height=420, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def figures(result: ExplainResult) -> list[tuple[str, go.Figure]]:
    return [(f"{i + 1}. {item.sentence[:60]}", sentence_figure(item)) for i, item in enumerate(result.sentences)]


def summary_markdown(result: ExplainResult) -> str:
    lines = [
        f"Model `{result.model_id}`: each sentence continued greedily ({result.max_new_tokens} tokens at most), then "
        f"explained. Integrated gradients with {result.steps} steps.",
        "",
        "| sentence | continuation | lens top-1 by layer (last prompt position) | commitment layers "
        "| top tokens (IG) | IG delta |",
        "|---|---|---|---|---|---:|",
    ]
    for item in result.sentences:
        ranked = sorted(range(item.n_prompt), key=lambda i: -abs(item.integrated_gradients[i]))[:3]
        top = ", ".join(f"`{show_whitespace(item.tokens[i])}`" for i in ranked)
        lens = " ".join(f"`{show_whitespace(t)}`" for t in item.lens_top)
        lines.append(
            f"| {item.sentence.replace('|', '/')} | {item.continuation.replace('|', '/')} | {lens} | "
            f"{', '.join(map(str, item.commitment))} | {top} | {item.ig_delta:.4f} |"
        )
    return "\n".join(lines) + "\n"
