"""Next-token candidates of one generated step: raw softmax and after the sampling warpers."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inspectors.engine.record import TurnRecord
from inspectors.errors import InvalidParameterError
from inspectors.views.tokens import show_whitespace

CHOSEN_COLOR, OTHER_COLOR = "#16a34a", "#94a3b8"


def check_step(record: TurnRecord, step: int) -> int:
    if record.steps.n_steps == 0:
        raise InvalidParameterError("step", "needs a turn with at least one generated token", step)
    if not isinstance(step, int) or not 0 <= step < record.steps.n_steps:
        raise InvalidParameterError("step", f"must be an integer in [0, {record.steps.n_steps - 1}]", step)
    return step


def step_rows(record: TurnRecord, step: int) -> list[list[Any]]:
    """[rank, piece, id, raw prob, warped prob, chosen] for the union of both top-k lists, by raw rank."""
    check_step(record, step)
    steps = record.steps
    chosen = int(record.reply_ids[step])
    raw = dict(zip(steps.raw_ids[step].tolist(), steps.raw_probs[step].tolist(), strict=True))
    warped = dict(zip(steps.warped_ids[step].tolist(), steps.warped_probs[step].tolist(), strict=True))
    order = list(raw) + [i for i in warped if i not in raw]
    rows = []
    for rank, token_id in enumerate(order, start=1):
        rows.append(
            [
                rank,
                show_whitespace(record.candidate_pieces.get(token_id, str(token_id))),
                token_id,
                round(raw.get(token_id, float("nan")), 6),
                round(warped.get(token_id, 0.0), 6),
                "✔" if token_id == chosen else "",
            ]
        )
    return rows


def step_summary(record: TurnRecord, step: int) -> str:
    check_step(record, step)
    chosen = int(record.reply_ids[step])
    piece = show_whitespace(record.tokens[record.n_prompt + step])
    return (
        f"Step {step}: generated `{piece}` (id {chosen}) with probability "
        f"{record.steps.chosen_raw_prob[step]:.4f} raw, {record.steps.chosen_warped_prob[step]:.4f} after "
        f"sampling settings {_settings(record)}." + (f" Computed in {record.dtype}." if record.dtype else "")
    )


def _settings(record: TurnRecord) -> str:
    p = record.params
    if p["temperature"] == 0:
        return "(greedy)"
    return f"(temperature {p['temperature']:g}, top-k {p['top_k'] or 'off'}, top-p {p['top_p']:g})"


def next_token_figure(record: TurnRecord, step: int, top: int = 10) -> go.Figure:
    """Two bar charts side by side: raw softmax and the warped distribution; the generated token in green."""
    check_step(record, step)
    chosen = int(record.reply_ids[step])
    steps = record.steps
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Raw: softmax(logits)", f"After sampling warpers {_settings(record)}")
    )
    for col, (ids, probs) in enumerate(
        ((steps.raw_ids[step], steps.raw_probs[step]), (steps.warped_ids[step], steps.warped_probs[step])), start=1
    ):
        ids, probs = ids[:top][::-1], probs[:top][::-1]  # most probable on top
        labels = [f"{show_whitespace(record.candidate_pieces.get(int(i), str(i)))} ({int(i)})" for i in ids]
        fig.add_trace(
            go.Bar(
                x=probs,
                y=labels,
                orientation="h",
                marker_color=[CHOSEN_COLOR if int(i) == chosen else OTHER_COLOR for i in ids],
                hovertemplate="%{y}<br>p = %{x:.4f}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(range=[0, 1], title_text="probability")
    fig.update_layout(height=max(320, 28 * top + 80), margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return fig
