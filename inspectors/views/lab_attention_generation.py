"""Lab 6 views: one head's square attention matrix over prompt + generated tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from inspectors.labs.labels import ATTENTION_COURSE_VARIANT as COURSE_VARIANT_LABEL
from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.labs.attention_generation import AttentionGenerationResult

N_FIGURES = 1


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def heatmap(result: AttentionGenerationResult) -> go.Figure:
    """Keys on x, queries on y (first query on top); hover names both tokens and the weight."""
    z = np.asarray(result.attention, dtype=float)  # (T, T)
    labels = [show_whitespace(label) for label in result.labels]
    hover = np.array([[f"{q} → {k}" for k in labels] for q in labels], dtype=object)
    title = f"Layer {result.layer}, head {result.head}: attention over the generation"
    if result.course_variant:
        title += f" · {COURSE_VARIANT_LABEL}"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            customdata=hover,
            colorscale="Viridis",
            zmin=0,
            zmax=float(z.max()) if z.size else 1.0,
            hovertemplate="query → key: %{customdata}<br>weight %{z:.4f}<extra></extra>",
        )
    )
    n = len(labels)
    fig.update_layout(
        title=title,
        xaxis={"title": "key token", "type": "category", "tickangle": -60},
        yaxis={"title": "query token", "type": "category", "autorange": "reversed"},
        height=max(420, min(1200, 22 * n + 200)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    # Prompt / generated boundary, so the generated part is easy to find.
    edge = result.n_prompt - 0.5
    fig.add_shape(type="line", x0=edge, x1=edge, y0=-0.5, y1=n - 0.5, line={"color": "white", "dash": "dot"})
    fig.add_shape(type="line", x0=-0.5, x1=n - 0.5, y0=edge, y1=edge, line={"color": "white", "dash": "dot"})
    return fig


def figures(result: AttentionGenerationResult) -> list[tuple[str, go.Figure]]:
    fig = heatmap(result)
    return [(fig.layout.title.text, fig)]


def summary_markdown(result: AttentionGenerationResult) -> str:
    z = np.asarray(result.attention, dtype=float)
    generated = range(result.n_prompt, len(result.tokens))
    strongest = []
    for q in generated:
        k = int(np.argmax(z[q, : q + 1]))
        strongest.append(
            f"| {q} | `{_cell(show_whitespace(result.tokens[q]))}` | {k}:`{_cell(show_whitespace(result.tokens[k]))}` "
            f"| {z[q, k]:.3f} |"
        )
    bos_share = float(z[result.n_prompt :, 0].mean()) if len(generated) else float("nan")
    clamped = (result.layer, result.head) != (result.layer_requested, result.head_requested)
    lines = [
        f"Model `{result.model_id}`, prompt `{_cell(result.prompt)}`, {len(generated)} tokens generated greedily "
        f"(stopped by {result.stop_reason}); layer {result.layer}, head {result.head}"
        + (f" (asked for layer {result.layer_requested}, head {result.head_requested})" if clamped else "")
        + ".",
        "",
        f"**Generated:** {_cell(show_whitespace(result.generated_text))}",
        "",
        f"Mean weight the generated tokens put on position 0 (`{show_whitespace(result.tokens[0])}`): {bos_share:.3f}.",
        "",
        "| query | token | strongest key | weight |",
        "|---:|---|---|---:|",
        *strongest,
    ]
    if result.notes:
        lines += ["", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"
