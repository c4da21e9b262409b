"""Lab 1 views: the two replies side by side and their coherence scores (or the labelled stand-in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from inspectors.labs.labels import TEMPLATE_COURSE_VARIANT as COURSE_VARIANT_LABEL
from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.labs.template_vs_none import TemplateVsNoneResult

N_FIGURES = 1
BAR_COLORS = ("#4f46e5", "#94a3b8")  # with template, without


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in (text or "(empty)").splitlines()) or "> (empty)"


def figures(result: TemplateVsNoneResult) -> list[tuple[str, go.Figure]]:
    """One bar chart: the coherence score of each reply, or the stand-in (under its own name) without it."""
    labels = [reply.label for reply in result.replies]
    if result.coherence_message is None:
        values = [reply.coherence for reply in result.replies]
        title = f"Coherence score (raw logit of {result.scorer_model})"
        axis = "cross-encoder logit"
    elif result.stand_in_label is not None:
        values = [reply.stand_in_similarity for reply in result.replies]
        title = result.stand_in_label[0].upper() + result.stand_in_label[1:]
        axis = "cosine similarity"
    else:
        return []  # nothing was scored; the summary says why
    if result.course_variant:
        title += f" · {COURSE_VARIANT_LABEL}"
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker_color=list(BAR_COLORS),
            text=[f"{v:.3f}" for v in values],
            textposition="outside",
            hovertemplate="%{x}<br>%{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title, yaxis_title=axis, height=380, margin={"l": 10, "r": 10, "t": 50, "b": 40}, showlegend=False
    )
    return [(title, fig)]


def summary_markdown(result: TemplateVsNoneResult) -> str:
    lines = [
        f"**Question:** {result.question}",
        "",
        f"Model `{result.model_id}`, greedy, at most {result.max_new_tokens} new tokens"
        + (f" · **{COURSE_VARIANT_LABEL}**" if result.course_variant else "")
        + ".",
        "",
    ]
    score_header = f"coherence ({result.scorer_model} logit)"
    if result.stand_in_label:
        score_header += f" | {result.stand_in_label}"
    lines += [
        f"| prompt | prompt tokens | `<bos>` | answer tokens | stopped by | {score_header} |",
        "|---|---:|---:|---:|---|---:|" + ("---:|" if result.stand_in_label else ""),
    ]
    for reply in result.replies:
        score = "n/a" if reply.coherence is None else f"{reply.coherence:.4f}"
        row = (
            f"| {reply.label} | {len(reply.prompt_ids)} | {reply.n_bos} | {len(reply.answer_ids)} | "
            f"{reply.stop_reason} | {score} |"
        )
        if result.stand_in_label:
            row += f" {reply.stand_in_similarity:.4f} |"
        lines.append(row)
    lines.append("")
    for message in (result.coherence_message, result.stand_in_message):
        if message:
            lines += [f"**{_cell(message)}**", ""]
    if result.stand_in_label:
        lines += [
            f"The {result.stand_in_label} is a topical similarity on another scale: it cannot be compared "
            "with the course's coherence scores.",
            "",
        ]
    for reply in result.replies:
        start = " ".join(show_whitespace(t) for t in reply.prompt_tokens[:3])
        lines += [f"**Answer with {reply.label}** (prompt starts `{start}`):", "", _quote(reply.answer_text), ""]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"
