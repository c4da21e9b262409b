"""The labs in the course's order, and one way to load, run and show any of them.

Each lab is a module of `inspectors.labs` (`run(lm, *, progress=None, **inputs)` -> result with
`to_json()`) and its view in `inspectors.views` (`figures(result)`, `summary_markdown(result)`,
`N_FIGURES`), with its inputs in `prompts/labs/<lab>.yaml`. They are listed here by hand, so the list is
the truth; the report and the app's Labs tabs go through here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import plotly.graph_objects as go

from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.errors import InvalidParameterError
from inspectors.labs import (
    attention_generation,
    embeddings,
    explain,
    multiturn,
    sae,
    sampling,
    template_vs_none,
    tokenization,
)
from inspectors.labs.presets import load_preset, preset_info
from inspectors.views import (
    lab_attention_generation,
    lab_embeddings,
    lab_explain,
    lab_multiturn,
    lab_sae,
    lab_sampling,
    lab_template_vs_none,
    lab_tokenization,
)


@dataclass(frozen=True)
class LabEntry:
    module: ModuleType  # has run(lm, *, progress, **inputs)
    view: ModuleType  # has figures(result), summary_markdown(result), N_FIGURES


REGISTRY: dict[str, LabEntry] = {  # in the course's order
    "template_vs_none": LabEntry(template_vs_none, lab_template_vs_none),
    "multiturn": LabEntry(multiturn, lab_multiturn),
    "tokenization": LabEntry(tokenization, lab_tokenization),
    "sampling": LabEntry(sampling, lab_sampling),
    "embeddings": LabEntry(embeddings, lab_embeddings),
    "attention_generation": LabEntry(attention_generation, lab_attention_generation),
    "sae": LabEntry(sae, lab_sae),
    "explain": LabEntry(explain, lab_explain),  # not the course's: its sentences through the "why" views
}
LABS: tuple[str, ...] = tuple(REGISTRY)


def check_lab(lab: str) -> str:
    if lab not in REGISTRY:
        raise InvalidParameterError("lab", f"must be one of {list(LABS)}", lab)
    return lab


def lab_module(lab: str) -> ModuleType:
    return REGISTRY[check_lab(lab)].module


def view_module(lab: str) -> ModuleType:
    return REGISTRY[check_lab(lab)].view


def title(lab: str) -> str:
    return preset_info(check_lab(lab))["title"]


def description(lab: str) -> str:
    return preset_info(check_lab(lab))["description"]


def figure_slots(lab: str) -> int:
    """How many figures the lab's view can draw (its `N_FIGURES`), for fixed UI slots."""
    return int(view_module(lab).N_FIGURES)


def check_inputs(lab: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` must name only the preset's keys; missing ones take the preset's values."""
    preset = load_preset(check_lab(lab))
    unknown = sorted(set(inputs) - set(preset))
    if unknown:
        raise InvalidParameterError("inputs", f"of lab {lab!r} must be among {sorted(preset)}", unknown)
    return {**preset, **inputs}


def run_lab(lab: str, lm: LoadedModel, inputs: dict[str, Any] | None = None, progress: ProgressFn | None = None):
    """Run one lab on `lm` with its preset, overridden by `inputs`."""
    return lab_module(lab).run(lm, progress=progress, **check_inputs(lab, inputs or {}))


@dataclass
class Shown:
    """What a lab's result looks like: its summary markdown and its (title, figure) pairs."""

    summary: str
    figures: list[tuple[str, go.Figure]]


def show(lab: str, result: Any) -> Shown:
    view = view_module(lab)
    return Shown(summary=view.summary_markdown(result), figures=list(view.figures(result)))
