"""Lab 2 views: the top-k first tokens of each round's reply as bars, and the conversation as it grew."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from inspectors.labs.labels import MULTITURN_COURSE_VARIANT
from inspectors.labs.labels import MULTITURN_MAX_ROUNDS as MAX_ROUNDS
from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.labs.multiturn import MultiturnResult, Round

N_FIGURES = MAX_ROUNDS  # one per round
TOP_COLOR, OTHER_COLOR = "#16a34a", "#94a3b8"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def round_figure(result: MultiturnResult, round_: Round) -> go.Figure:
    """Horizontal bars, most probable on top; the greedy pick (the argmax) in green."""
    labels = [f"{show_whitespace(t)} ({i})" for t, i in zip(round_.top_tokens, round_.top_ids, strict=True)]
    colors = [TOP_COLOR if rank == 0 else OTHER_COLOR for rank in range(len(labels))]
    fig = go.Figure(
        go.Bar(
            x=round_.top_probs[::-1],
            y=labels[::-1],
            orientation="h",
            marker_color=colors[::-1],
            text=[f"{p:.3f}" for p in round_.top_probs[::-1]],
            textposition="outside",
            hovertemplate="%{y}<br>p = %{x:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Round {round_.index}: top-{result.top_k} first tokens of the reply",
        xaxis={"title": "probability (softmax of the last position's logits)", "range": [0, 1.1]},
        yaxis={"type": "category"},
        height=max(320, 28 * len(labels) + 100),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        showlegend=False,
    )
    return fig


def figures(result: MultiturnResult) -> list[tuple[str, go.Figure]]:
    return [(f"Round {r.index}: top-{result.top_k} first tokens", round_figure(result, r)) for r in result.rounds]


def summary_markdown(result: MultiturnResult) -> str:
    variant = f" **{MULTITURN_COURSE_VARIANT}**." if result.course_variant else ""
    lines = [
        f"Model `{result.model_id}`, greedy replies of at most {result.max_new_tokens} tokens, the whole "
        f"history re-templated every round.{variant}",
        "",
        "| round | user | prompt tokens | most probable first token | p | reply | stopped by |",
        "|---:|---|---:|---|---:|---|---|",
    ]
    for r in result.rounds:
        lines.append(
            f"| {r.index} | {_cell(r.user)} | {r.n_prompt_tokens} | `{_cell(show_whitespace(r.top_tokens[0]))}` "
            f"(id {r.top_ids[0]}) | {r.top_probs[0]:.4f} | {_cell(r.reply_text) or '(empty)'} | {r.stop_reason} |"
        )
    comparison = result.bos_comparison
    if comparison is not None:
        moved = "the same token" if comparison.top_one_bos == comparison.top_two_bos else "another token"
        lines += [
            "",
            f"**One `<bos>` or two (the course's code):** round 1's most probable first token with one `<bos>`, "
            f"`{_cell(show_whitespace(comparison.token))}`, has p = {comparison.p_one_bos:.4f}; with two it has "
            f"p = {comparison.p_two_bos:.4f} (Δ = {comparison.delta:+.4f}), and {moved} is the most probable "
            f"(`{_cell(show_whitespace(comparison.top_two_bos))}`).",
        ]
    last = result.rounds[-1]
    lines += ["", f"**Full templated prompt of round {last.index}:**", "", "```", last.prompt_text, "```"]
    warnings = [f"- Round {r.index}: {w}" for r in result.rounds for w in r.warnings]
    if warnings:
        lines += ["", *warnings]
    return "\n".join(lines) + "\n"
