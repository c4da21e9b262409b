"""The Labs area: one tab per lab of the course (registry order), inputs prefilled from its preset.

Each input's widget follows its kind (`inspectors.labs.inputs`): a checkbox, a number (a text box where
empty means the lab's default), text, one item per line, numbers separated by commas, or an editable
table. Run hands the raw values to the session, which parses them and runs the lab on the session's
current model; a bad input or a failure is shown in the tab, never a crash.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import gradio as gr

from inspectors.labs.inputs import BOOL, FLOAT, INT, LINES, NUMBERS, TABLE, LabInput, lab_inputs
from inspectors.labs.presets import preset_info
from inspectors.labs.registry import LABS, figure_slots
from inspectors.session import SessionStore
from inspectors.ui.common import GradioProgress, session_of

LABS_GROUP = "labs"  # one lab at a time: each runs for seconds to minutes, never in the chat's slot


@dataclass
class Field:
    spec: LabInput
    component: gr.components.Component

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class LabTab:
    lab: str
    fields: list[Field]
    run_button: gr.Button
    summary: gr.Markdown
    result_json: gr.JSON
    plots: list[gr.Plot]


def component_for(spec: LabInput) -> gr.components.Component:
    """A widget prefilled with the preset's value, of a kind that suits the input."""
    value, label = spec.default, spec.label
    if spec.kind == BOOL:
        return gr.Checkbox(value=bool(value), label=label)
    if spec.kind in (INT, FLOAT) and spec.nullable:
        # a Number cannot be empty in the browser (it shows and sends 0), so "empty = default" needs a Textbox
        return gr.Textbox(value="" if value is None else str(value), label=label, placeholder="empty: default")
    if spec.kind == INT:
        return gr.Number(value=value, precision=0, label=label)
    if spec.kind == FLOAT:
        return gr.Number(value=value, label=label)
    if spec.kind == TABLE:
        rows = [[str(row.get(h, "")) for h in spec.headers] for row in value or []]
        return gr.Dataframe(
            value=rows, headers=list(spec.headers), label=label + " (edit cells; add or remove rows)", interactive=True
        )
    if spec.kind == NUMBERS:
        return gr.Textbox(value=", ".join(str(x) for x in value or []), label=label + ", separated by commas")
    if spec.kind == LINES:
        lines = [str(x) for x in value or []]
        return gr.Textbox(value="\n".join(lines), lines=max(2, min(8, len(lines))), label=label + " (one per line)")
    text = "" if value is None else str(value)
    return gr.Textbox(value=text, lines=2 if len(text) > 80 else 1, label=label)


def make_runner(store: SessionStore, lab: str, fields: list[Field], n_slots: int) -> Any:
    """The Run handler: (*field values, progress, request) -> (summary, result JSON, *plot updates)."""

    def run(*args: Any) -> tuple:
        values, progress, request = args[: len(fields)], args[len(fields)], args[len(fields) + 1]
        raw = {field.name: value for field, value in zip(fields, values, strict=True)}
        panel = session_of(store, request).lab_panel(lab, raw, GradioProgress(progress))
        if panel.result is None:
            gr.Warning(panel.summary.removeprefix("⚠️ "))
        plots = [gr.Plot(value=fig, label=title, visible=True) for title, fig in panel.figures[:n_slots]]
        plots += [gr.Plot(value=None, visible=False) for _ in range(n_slots - len(plots))]
        summary = panel.summary
        if len(panel.figures) > n_slots:
            summary += (
                f"\n\n_{len(panel.figures) - n_slots} more figure(s) are in the report (python -m inspectors.report)._"
            )
        return (summary, panel.result, *plots)

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(f.name, positional) for f in fields]
    parameters.append(inspect.Parameter("progress", positional, default=gr.Progress()))
    parameters.append(inspect.Parameter("request", positional, default=None, annotation=gr.Request))
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {"request": gr.Request}
    run.__name__ = f"lab_{lab}"
    return run


def build_labs_tab(store: SessionStore, *, labs: tuple[str, ...] = LABS) -> dict[str, LabTab]:
    """Build the lab tabs inside the current Blocks (e.g. under an Accordion). Runs use the request's session."""
    tabs = {}
    with gr.Tabs():
        for lab in labs:
            info = preset_info(lab)
            with gr.Tab(info["title"], id=f"lab-{lab}"):
                with gr.Accordion("What the course did, and the options", open=False):
                    gr.Markdown(info["description"])
                with gr.Group():
                    fields = [Field(spec, component_for(spec)) for spec in lab_inputs(lab)]  # rendered as made
                run_button = gr.Button("Run on the current model", variant="primary")
                summary = gr.Markdown()
                n_slots = figure_slots(lab)
                plots = [gr.Plot(visible=False) for _ in range(n_slots)]
                with gr.Accordion("Result as JSON (every number and setting)", open=False):
                    result_json = gr.JSON()
                run_button.click(
                    make_runner(store, lab, fields, n_slots),
                    [f.component for f in fields],
                    [summary, result_json, *plots],
                    api_visibility="private",  # the API's /lab_<lab> takes raw values (inspectors.ui.api)
                    concurrency_limit=1,
                    concurrency_id=LABS_GROUP,
                )
                tabs[lab] = LabTab(lab, fields, run_button, summary, result_json, plots)
    return tabs
