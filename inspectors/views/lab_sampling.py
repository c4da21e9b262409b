"""Figures and summary of the `sampling` lab: diversity of each sampling setting, and its samples."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from inspectors.labs.sampling import SamplingResult, SettingResult


METRIC_COLORS = {"self-BLEU": "#dc2626", "distinct-1": "#2563eb", "distinct-2": "#16a34a"}


N_FIGURES = 1  # figure slots the Labs tab reserves


def setting_label(setting: SettingResult) -> str:
    """The setting's name, marked where the course's implicit top_k=50 was active."""
    return setting.name + (f" (+top_k={setting.top_k}, course)" if setting.course_top_k_applied else "")


def _conditions(result: SamplingResult) -> str:
    smoothing = result.smoothing or "no smoothing"
    course = ", course variant (top-p keeps top_k=50)" if result.course_variant else ""
    return (
        f"{result.n_samples} samples of at most {result.max_new_tokens} tokens, temperature {result.temperature:g}, "
        f"seed {result.seed}, {smoothing}{course}"
    )


def diversity_figure(result: SamplingResult) -> go.Figure:
    """Grouped bars per setting: self-BLEU (higher = samples repeat each other) and distinct-1/2 (higher =
    more varied)."""
    labels = [setting_label(s) for s in result.settings]
    fig = go.Figure()
    for metric, values in (
        ("self-BLEU", [s.self_bleu for s in result.settings]),
        ("distinct-1", [s.distinct_1 for s in result.settings]),
        ("distinct-2", [s.distinct_2 for s in result.settings]),
    ):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=values,
                name=metric,
                marker_color=METRIC_COLORS[metric],
                text=[f"{v:.3f}" for v in values],
                textposition="outside",
                hovertemplate=f"%{{x}}<br>{metric} %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        title=f"Diversity by sampling setting ({_conditions(result)})",
        yaxis={"title": "score", "range": [0, 1.12]},
        xaxis_title="setting",
        legend={"orientation": "h", "y": -0.25},
        height=440,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def figures(result: SamplingResult) -> list[tuple[str, go.Figure]]:
    return [("Diversity by sampling setting", diversity_figure(result))]


def _md_text(text: str) -> str:
    """A sample shown verbatim in markdown: HTML and markdown syntax escaped, newlines made visible."""
    escaped = html.escape(text, quote=False)
    for char in "\\`*_[]#|~":
        escaped = escaped.replace(char, "\\" + char)
    escaped = escaped.replace("\r", "").replace("\n", " ↵ ")
    # A sample that starts like a list item would nest a list inside the numbered list.
    escaped = re.sub(r"^(\d+)([.)])", r"\1\\\2", escaped)
    if escaped[:1] in {"-", "+"}:
        escaped = "\\" + escaped
    return escaped or "*(empty)*"


def summary_markdown(result: SamplingResult) -> str:
    lines = [
        f"**Prompt** ({result.n_prompt_tokens} tokens, plain text, no chat template): {_md_text(result.prompt)}",
        "",
        f"{_conditions(result)}. Self-BLEU: higher = less diverse; distinct-n: higher = more diverse.",
        "",
        "| setting | top_k | top_p | temperature | self-BLEU | distinct-1 | distinct-2 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result.settings:
        top_k = "off" if s.top_k == 0 else f"{s.top_k}" + (" (course default)" if s.course_top_k_applied else "")
        top_p = "off" if s.top_p >= 1.0 else f"{s.top_p:g}"
        lines.append(
            f"| `{s.name}` | {top_k} | {top_p} | {s.temperature:g} | {s.self_bleu:.4f} | {s.distinct_1:.4f} "
            f"| {s.distinct_2:.4f} |"
        )
    for s in result.settings:
        lines += ["", f"**Samples, `{s.name}`** (self-BLEU {s.self_bleu:.4f})", ""]
        lines += [f"{i}. {_md_text(sample)}" for i, sample in enumerate(s.samples, start=1)]
    return "\n".join(lines)
