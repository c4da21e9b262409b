"""Lab 7's figures and summary: the feature on two prompts, on each token of a sentence, across layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from inspectors.labs.labels import SAE_COURSE_READ as COURSE_READ
from inspectors.views.sae_experiments_view import across_layers_figure, per_token_figure, prompts_histogram
from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.labs.sae import SAELabResult
    from inspectors.sae.experiments import FeatureOnText

N_FIGURES = 3


def figures(result: SAELabResult) -> list[tuple[str, go.Figure]]:
    if result.unavailable is not None:
        return []
    out = []
    histogram = prompts_histogram(result.prompts)
    per_token = per_token_figure(result.sentence)
    if result.course_variant:
        for fig in (histogram, per_token):
            fig.update_layout(title=f"{fig.layout.title.text}<br><sub>{COURSE_READ}</sub>")
    out.append(("7.2-7.3: the feature on each prompt's tokens", histogram))
    out.append(("7.4-7.6: the feature on each token of the sentence", per_token))
    if result.across is not None:
        out.append(("7.7-7.9: one token across layers", across_layers_figure(result.across, result.feature)))
    return out


def summary_markdown(result: SAELabResult) -> str:
    if result.unavailable is not None:
        return f"**No SAE for this model.** {result.unavailable}"
    feature = result.feature
    link = f" ([Neuronpedia]({result.feature_url}))" if result.feature_url else ""
    reads = (
        f"`hidden_states[{result.sae_layer}]` (⚠️ {COURSE_READ})"
        if result.course_variant
        else f"the output of decoder layer {result.sae_layer}"
    )
    lines = [
        f"SAE `{result.sae_name}` ({result.d_sae:,} features) on {reads}; feature **{feature}**{link}.",
        *(["", f"_{result.sae_note}_"] if result.sae_note else []),
        "",
        "| | text | max activation | at token | active tokens |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for label, item in zip(("prompt a", "prompt b", "sentence"), [*result.prompts, result.sentence], strict=True):
        lines.append(_row(label, item))
    higher = result.higher_prompt
    a, b = (p.max_activation for p in result.prompts)
    verdict = (
        "Both prompts reach the same maximum."
        if higher == "tie"
        else f"**{higher.replace('_', ' ')}** activates the feature more ({max(a, b):.3f} vs {min(a, b):.3f})."
    )
    bos = " `<bos>` is left out of the maxima." if result.prompts[0].skip_bos else ""
    lines += ["", verdict + bos]
    if result.across is not None:
        across = result.across
        lines += [
            "",
            f"Token {across.position} `{show_whitespace(across.token)}` across layers ({across.variant}):",
            "",
            "| layer | " + " | ".join(str(layer) for layer in across.layers) + " |",
            "| --- | " + " | ".join("---:" for _ in across.layers) + " |",
            "| activation | " + " | ".join(f"{v:.3f}" for v in across.values) + " |",
        ]
    lines += [""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def _row(label: str, item: FeatureOnText) -> str:
    values = item.values[1:] if item.skip_bos and len(item.values) > 1 else item.values
    offset = len(item.values) - len(values)
    peak = int(values.argmax()) + offset if values.size else 0
    text = item.text if len(item.text) <= 60 else item.text[:57] + "…"
    return (
        f"| {label} | {_cell(text)} | {item.max_activation:.3f} | {peak} `{_cell(show_whitespace(item.tokens[peak]))}`"
        f" | {int((values > 0).sum())} of {len(values)} |"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
