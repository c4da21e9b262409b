"""Figures and summary of the `embeddings` lab: the t-SNE scatter coloured by sense, and cosine similarities."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.colors import qualitative

if TYPE_CHECKING:
    from inspectors.labs.embeddings import EmbeddingsResult


SENSE_COLORS = qualitative.D3
MAX_MATRIX_IN_SUMMARY = 12  # sentences; a larger cosine matrix is left to the figure


N_FIGURES = 2  # figure slots the Labs tab reserves


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _labels(result: EmbeddingsResult) -> list[str]:
    return [f"{i}. {_short(text)}" for i, text in enumerate(result.sentences, start=1)]


def sense_colors(result: EmbeddingsResult) -> dict[str, str]:
    """One colour per sense, in order of first appearance."""
    senses = list(dict.fromkeys(result.senses))
    return {sense: SENSE_COLORS[i % len(SENSE_COLORS)] for i, sense in enumerate(senses)}


def _conditions(result: EmbeddingsResult) -> str:
    return f"{result.layer_label}; {result.pooling_label}"


def tsne_figure(result: EmbeddingsResult) -> go.Figure:
    """The sentences in t-SNE's 2-D map, one trace (colour) per sense, each point labelled with its sentence."""
    fig = go.Figure()
    colors = sense_colors(result)
    labels = _labels(result)
    for sense, color in colors.items():
        rows = [i for i, s in enumerate(result.senses) if s == sense]
        fig.add_trace(
            go.Scatter(
                x=[float(result.coords[i, 0]) for i in rows],
                y=[float(result.coords[i, 1]) for i in rows],
                mode="markers+text",
                name=sense,
                marker={"size": 13, "color": color},
                text=[labels[i] for i in rows],
                textposition="top center",
                customdata=[[result.sentences[i], result.n_tokens[i]] for i in rows],
                hovertemplate=f"%{{customdata[0]}}<br>sense {html.escape(sense)}, %{{customdata[1]}} tokens"
                "<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"t-SNE (perplexity {result.perplexity:g}, seed {result.seed}) of {_conditions(result)}",
        xaxis_title="t-SNE 1",
        yaxis_title="t-SNE 2",
        legend_title_text="sense",
        height=480,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    # Labels sit above the points: leave room so the outermost ones are not clipped.
    fig.update_xaxes(zeroline=False, automargin=True)
    fig.update_yaxes(zeroline=False, automargin=True)
    return fig


def cosine_figure(result: EmbeddingsResult) -> go.Figure:
    """Cosine similarity of every pair of pooled sentence embeddings."""
    labels = _labels(result)
    fig = go.Figure(
        go.Heatmap(
            z=result.cosine,
            x=labels,
            y=labels,
            colorscale="Viridis",
            texttemplate="%{z:.2f}",
            hovertemplate="%{y}<br>%{x}<br>cosine %{z:.4f}<extra></extra>",
            colorbar={"title": {"text": "cosine"}},
        )
    )
    fig.update_layout(
        title=f"Cosine similarity of the pooled embeddings ({result.pooling_label})",
        yaxis={"autorange": "reversed"},
        height=480,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def figures(result: EmbeddingsResult) -> list[tuple[str, go.Figure]]:
    return [("t-SNE of sentence embeddings", tsne_figure(result)), ("Cosine similarity", cosine_figure(result))]


def _md(text: str) -> str:
    escaped = html.escape(text, quote=False)
    for char in "\\`*_[]#|~":
        escaped = escaped.replace(char, "\\" + char)
    return escaped


def summary_markdown(result: EmbeddingsResult) -> str:
    course = " (course variant)" if result.course_variant else ""
    lines = [
        f"**{_md(_conditions(result))}**{course}; t-SNE perplexity {result.perplexity:g}, seed {result.seed}, "
        f"final KL divergence {result.kl_divergence:.4f}.",
        "",
        "| # | sentence | sense | tokens | t-SNE x | t-SNE y | most similar (cosine) |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for i, (text, sense, n, nearest) in enumerate(
        zip(result.sentences, result.senses, result.n_tokens, result.nearest, strict=True)
    ):
        x, y = result.coords[i]
        lines.append(
            f"| {i + 1} | {_md(text)} | {_md(sense)} | {n} | {x:.2f} | {y:.2f} | "
            f"{nearest + 1} ({result.cosine[i, nearest]:.4f}, {_md(result.senses[nearest])}) |"
        )
    sense = result.sense_cosines()
    if sense["same_sense"] is not None and sense["different_sense"] is not None:
        lines += [
            "",
            f"Mean cosine similarity: **{sense['same_sense']:.4f}** between sentences of the same sense, "
            f"**{sense['different_sense']:.4f}** between different senses.",
        ]
    n = len(result.sentences)
    if n <= MAX_MATRIX_IN_SUMMARY:
        lines += ["", "Cosine similarity matrix:", "", "| | " + " | ".join(str(j) for j in range(1, n + 1)) + " |"]
        lines.append("|---:|" + "---:|" * n)
        lines += [f"| {i + 1} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for i, row in enumerate(result.cosine)]
    return "\n".join(lines)
