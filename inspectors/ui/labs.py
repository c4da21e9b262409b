"""The Labs area: one tab per lab of the course (registry order), inputs prefilled from its preset.

Each input's component follows the lab's `run` type hints (values from the preset): bool -> Checkbox,
int / float -> Number (a Textbox, empty = None, where None is allowed), str -> Textbox, list[str] -> one
item per line, list[int] -> numbers separated by commas, list[dict] -> an editable table. A run uses the
session's current model; a bad input or a failure becomes a message in the tab, never a crash.
Every Run button is an API endpoint `/lab_<lab>` whose parameters are the preset's keys.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.errors import InspectorError, InvalidParameterError
from inspectors.labs.presets import load_preset, preset_info
from inspectors.labs.registry import LABS, figure_slots, lab_module, run_lab, show

log = logging.getLogger(__name__)

try:  # ZeroGPU Spaces: a GPU is attached only inside @spaces.GPU (a lab may run for minutes)
    import spaces

    def _gpu(fn: Callable) -> Callable:
        return spaces.GPU(duration=300)(fn)

except ImportError:  # not on a Space

    def _gpu(fn: Callable) -> Callable:
        return fn


@dataclass
class Field:
    """One input of a lab: its component and how the component's value becomes the lab's argument."""

    name: str
    component: gr.components.Component
    parse: Callable[[Any], Any]


@dataclass
class LabTab:
    lab: str
    fields: list[Field]
    run_button: gr.Button
    summary: gr.Markdown
    result_json: gr.JSON
    plots: list[gr.Plot]


def _hints(lab: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(lab_module(lab).run)
    except Exception:  # unresolvable hints: fall back to the preset values' own types
        return {}


def _optional(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None is allowed)."""
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, False


def _number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, "must be a number", value) from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidParameterError(name, "must be a finite number", value)
    return number


def _whole(name: str, value: Any) -> int:
    number = _number(name, value)
    if number != int(number):
        raise InvalidParameterError(name, "must be a whole number", value)
    return int(number)


def make_field(name: str, value: Any, hint: Any) -> Field:
    """A component prefilled with `value` for an input of type `hint` (None: `value`'s own type)."""
    kind, nullable = _optional(hint)
    if kind is None or kind is Any:
        kind, nullable = (type(value) if value is not None else str), nullable or value is None
    base, args = typing.get_origin(kind) or kind, typing.get_args(kind)
    label = name.replace("_", " ") + (" (empty: default)" if nullable else "")

    if kind is bool:
        return Field(name, gr.Checkbox(value=bool(value), label=label), bool)
    if kind in (int, float) and nullable:
        # a Number cannot be empty in the browser (it shows and sends 0), so "empty = default" needs a Textbox
        convert = _whole if kind is int else _number
        component = gr.Textbox(value="" if value is None else str(value), label=label, placeholder="empty: default")
        return Field(name, component, lambda v: None if v is None or not str(v).strip() else convert(name, v))
    if kind is int:
        return Field(name, gr.Number(value=value, precision=0, label=label), lambda v: _whole(name, v))
    if kind is float:
        return Field(name, gr.Number(value=value, label=label), lambda v: _number(name, v))
    if base is list and ((args and typing.get_origin(args[0]) is dict) or _dict_rows(value)):
        headers = list(value[0]) if value else ["text"]
        rows = [[str(row.get(h, "")) for h in headers] for row in value or []]
        component = gr.Dataframe(
            value=rows, headers=headers, label=label + " (edit cells; add or remove rows)", interactive=True
        )
        return Field(name, component, lambda v: _table_rows(name, v, headers, nullable))
    if base is list and args and args[0] in (int, float):
        text = ", ".join(str(x) for x in value) if value else ""
        component = gr.Textbox(value=text, label=label + ", separated by commas")
        return Field(name, component, lambda v: _number_list(name, v, args[0], nullable))
    if base is list:
        text = "\n".join(str(x) for x in value or [])
        component = gr.Textbox(value=text, lines=max(2, min(8, len(value or []))), label=label + " (one per line)")
        return Field(name, component, lambda v: _lines(name, v, nullable))
    text = "" if value is None else str(value)
    component = gr.Textbox(value=text, lines=2 if len(text) > 80 else 1, label=label)
    return Field(name, component, lambda v: (v or None) if nullable else (v if v is not None else ""))


def _dict_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, dict) for x in value)


def _table_rows(name: str, value: Any, headers: list[str], nullable: bool) -> list[dict[str, str]] | None:
    """A Dataframe's value (pandas, or {'headers', 'data'} from an API client) -> a list of dicts."""
    if value is None:
        return None if nullable else []
    if isinstance(value, dict):
        columns, data = value.get("headers") or headers, value.get("data") or []
    elif hasattr(value, "values") and hasattr(value, "columns"):
        columns, data = [str(c) for c in value.columns], value.values.tolist()
    else:
        columns, data = headers, value
    rows = []
    for row in data:
        cells = ["" if cell is None else str(cell) for cell in row]
        if any(cell.strip() for cell in cells):  # an emptied row is a removed row
            rows.append(dict(zip(columns, cells, strict=False)))
    return rows if rows or not nullable else None


def _number_list(name: str, text: Any, kind: type, nullable: bool) -> list | None:
    parts = [p for p in re.split(r"[,\s]+", str(text or "")) if p]
    if not parts:
        if nullable:
            return None
        raise InvalidParameterError(name, "must list at least one number, separated by commas", text)
    try:
        return [_number(name, p) if kind is float else _whole(name, p) for p in parts]
    except InvalidParameterError:
        raise InvalidParameterError(name, f"must be {kind.__name__}s separated by commas", text) from None


def _lines(name: str, text: Any, nullable: bool) -> list[str] | None:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return None if not lines and nullable else lines


def lab_inputs(lab: str) -> list[Field]:
    """The lab's preset (full, not quick) as prefilled input fields, in preset order."""
    hints = _hints(lab)
    return [make_field(name, value, hints.get(name)) for name, value in load_preset(lab).items()]


def make_runner(lab: str, fields: list[Field], get_model: Callable[[Any], LoadedModel], n_slots: int) -> Callable:
    """The Run handler: (session, *field values, progress) -> (summary, result JSON, *plot updates).

    Its signature names the preset's keys, so API clients call `/lab_<lab>` with keyword arguments."""

    def run(*args: Any) -> tuple:
        session, values, progress = args[0], args[1 : 1 + len(fields)], args[1 + len(fields)]
        try:
            inputs = {field.name: field.parse(value) for field, value in zip(fields, values, strict=True)}
            lm = get_model(session)
            result = _run_lab(lab, lm, inputs, lambda fraction, message: progress(fraction, desc=message))
            shown = show(lab, result)
            data = result.to_json()
        except InspectorError as err:
            return _failure(f"⚠️ {err}", n_slots)
        except Exception as err:  # one user's failure must never break the app
            log.exception("lab %s failed", lab)
            return _failure(f"⚠️ The lab failed unexpectedly ({type(err).__name__}: {err}).", n_slots)
        plots = [gr.Plot(value=fig, label=title, visible=True) for title, fig in shown.figures[:n_slots]]
        plots += [gr.Plot(value=None, visible=False) for _ in range(n_slots - len(plots))]
        summary = shown.summary
        if len(shown.figures) > n_slots:
            summary += (
                f"\n\n_{len(shown.figures) - n_slots} more figure(s) are in the report (python -m inspectors.report)._"
            )
        return (summary, data, *plots)

    parameters = [inspect.Parameter("session", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for f in fields]
    parameters.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__name__ = f"lab_{lab}"
    return run


@_gpu
def _run_lab(lab: str, lm: LoadedModel, inputs: dict[str, Any], progress: ProgressFn) -> Any:
    return run_lab(lab, lm, inputs, progress)


def _failure(message: str, n_slots: int) -> tuple:
    gr.Warning(message.removeprefix("⚠️ "))
    return (message, None, *[gr.Plot(value=None, visible=False) for _ in range(n_slots)])


def build_labs_tab(
    session: gr.State,
    get_model: Callable[[Any], LoadedModel],
    *,
    labs: tuple[str, ...] = LABS,
    concurrency_id: str = "labs",
) -> dict[str, LabTab]:
    """Build the lab tabs inside the current Blocks (e.g. under a `gr.Tab("Labs")`).

    `session`: the app's per-browser State; `get_model(session)` returns that session's current model.
    Labs share one queue slot (`concurrency_id`): each runs for seconds to minutes and takes the model's
    lock per forward pass, so chats still get turns in between.
    """
    tabs = {}
    with gr.Tabs():
        for lab in labs:
            info = preset_info(lab)
            with gr.Tab(info["title"], id=f"lab-{lab}"):
                with gr.Accordion("What the course did, and the options", open=False):
                    gr.Markdown(info["description"])
                with gr.Group():
                    fields = lab_inputs(lab)  # rendered here, as they are made
                run_button = gr.Button("Run on the current model", variant="primary")
                summary = gr.Markdown()
                n_slots = figure_slots(lab)
                plots = [gr.Plot(visible=False) for _ in range(n_slots)]
                with gr.Accordion("Result as JSON (every number and setting)", open=False):
                    result_json = gr.JSON()
                run_button.click(
                    make_runner(lab, fields, get_model, n_slots),
                    [session, *(f.component for f in fields)],
                    [summary, result_json, *plots],
                    api_name=f"lab_{lab}",
                    concurrency_limit=1,
                    concurrency_id=concurrency_id,
                )
                tabs[lab] = LabTab(lab, fields, run_button, summary, result_json, plots)
    return tabs
