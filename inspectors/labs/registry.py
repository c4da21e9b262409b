"""The labs in the course's order, and one way to load, run and show any of them.

A lab `x` is `inspectors.labs.x` (`run(lm, *, progress=None, **inputs)` -> result with `to_json()`)
plus `inspectors.views.lab_x` (`figures(result)`, `summary_markdown(result)`), with its inputs in
`prompts/labs/x.yaml`. The report and the app's Labs tabs go through here only.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import plotly.graph_objects as go

from inspectors.errors import InvalidParameterError
from inspectors.labs.presets import load_preset, preset_info
from inspectors.loading import LoadedModel, ProgressFn

LABS: tuple[str, ...] = (
    "template_vs_none",
    "multiturn",
    "tokenization",
    "sampling",
    "embeddings",
    "attention_generation",
    "sae",
)


def check_lab(lab: str) -> str:
    if lab not in LABS:
        raise InvalidParameterError("lab", f"must be one of {list(LABS)}", lab)
    return lab


def lab_module(lab: str) -> ModuleType:
    return importlib.import_module(f"inspectors.labs.{check_lab(lab)}")


def view_module(lab: str) -> ModuleType:
    return importlib.import_module(f"inspectors.views.lab_{check_lab(lab)}")


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
