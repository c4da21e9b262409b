"""What-if views: a default and a steered reply side by side (the steered feature on each, the KL per step)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.engine.record import TurnRecord


def reply_mean(record: TurnRecord, values: np.ndarray) -> float:
    """The mean of a per-token array over the reply's tokens (0 for an empty reply)."""
    reply = np.asarray(values, dtype=np.float64)[record.n_prompt :]
    return float(reply.mean()) if len(reply) else 0.0


def steering_summary(
    description: str, seed: int, default: TurnRecord, steered: TurnRecord, feature: int | None,
    activations: list[np.ndarray] | None,
) -> str:  # fmt: skip
    lines = [f"**Steered with** {description}.", f"Both replies: seed {seed}, the same sampling settings."]
    if activations is not None:
        before, after = (reply_mean(r, a) for r, a in zip((default, steered), activations, strict=True))
        lines.append(
            f"Feature {feature}'s mean activation over the reply: **{before:.3g}** default, **{after:.3g}** steered."
        )
    kl = steered.steering_kl
    if kl is not None and len(kl):
        top = int(np.argmax(kl))
        lines.append(
            f"KL(steered ‖ default) of the next-token distribution, on the steered reply's own tokens: mean "
            f"{float(kl.mean()):.3f} nats, largest {float(kl[top]):.3f} at step {top} "
            f"({show_whitespace(steered.tokens[steered.n_prompt + top])!r})."
        )
    return "  \n".join(lines)


def steering_figure(
    default: TurnRecord, steered: TurnRecord, feature: int | None, activations: list[np.ndarray] | None
) -> go.Figure:
    """Top: the KL per step of the steered reply. Bottom (with a feature): its activation on each reply."""
    rows = 2 if activations is not None else 1
    titles = ["KL(steered ‖ default) per step, nats"]
    if activations is not None:
        titles.append(f"feature {feature} on each reply's tokens")
    fig = make_subplots(rows=rows, cols=1, subplot_titles=titles, vertical_spacing=0.18)
    kl = steered.steering_kl if steered.steering_kl is not None else np.zeros(0)
    labels = [f"{i}:{show_whitespace(t)}" for i, t in enumerate(steered.tokens[steered.n_prompt :])]
    fig.add_trace(go.Bar(x=list(range(len(kl))), y=kl, hovertext=labels, name="KL", marker_color="#c2410c"), 1, 1)
    if activations is not None:
        for record, values, name, color in zip(
            (default, steered), activations, ("default", "steered"), ("#64748b", "#2563eb"), strict=True
        ):
            reply = np.asarray(values)[record.n_prompt :]
            hover = [show_whitespace(t) for t in record.tokens[record.n_prompt :]]
            fig.add_trace(
                go.Scatter(x=list(range(len(reply))), y=reply, mode="lines+markers", name=name, hovertext=hover,
                           line={"color": color}),
                2, 1,
            )  # fmt: skip
    fig.update_xaxes(title_text="reply step", row=rows, col=1)
    fig.update_layout(
        height=260 * rows, margin={"l": 50, "r": 20, "t": 40, "b": 40}, showlegend=activations is not None
    )
    return fig


def steering_rows(default: TurnRecord, steered: TurnRecord) -> list[list[Any]]:
    """[step, default token, steered token, KL] for each step of the longer reply."""
    first = default.tokens[default.n_prompt :]
    second = steered.tokens[steered.n_prompt :]
    kl = steered.steering_kl if steered.steering_kl is not None else np.zeros(0)
    rows = []
    for step in range(max(len(first), len(second))):
        rows.append([
            step,
            show_whitespace(first[step]) if step < len(first) else "",
            show_whitespace(second[step]) if step < len(second) else "",
            round(float(kl[step]), 4) if step < len(kl) else None,
        ])  # fmt: skip
    return rows
