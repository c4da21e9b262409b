"""Each lab's inputs, described once from its `run` type hints and its preset's values, and parsed from
what a UI widget or an API client sends (numbers as text, one item per line, edited tables).

The UI picks a widget from `kind`; the session parses raw values with `parse`: neither repeats the other.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass
from typing import Any

from inspectors.inputs import as_bool, as_float, as_int, as_lines, as_numbers, as_rows, as_text
from inspectors.labs.presets import load_preset

MAX_TEXT_CHARS = 20_000

BOOL, INT, FLOAT, TEXT, LINES, NUMBERS, TABLE = "bool", "int", "float", "text", "lines", "numbers", "table"


@dataclass(frozen=True)
class LabInput:
    name: str
    kind: str  # one of BOOL, INT, FLOAT, TEXT, LINES, NUMBERS, TABLE
    nullable: bool  # an empty value means "the lab's default" (None)
    default: Any  # the preset's value
    number_type: type = float  # NUMBERS: int or float
    headers: tuple[str, ...] = ()  # TABLE: its columns

    @property
    def label(self) -> str:
        return self.name.replace("_", " ") + (" (empty: default)" if self.nullable else "")

    def parse(self, value: Any) -> Any:
        """The lab's argument from a raw value; an InvalidParameterError names this input when it is bad."""
        if self.kind == BOOL:
            return as_bool(self.name, value)
        if self.kind in (INT, FLOAT):
            if self.nullable and (value is None or (isinstance(value, str) and not value.strip())):
                return None
            return as_int(self.name, value) if self.kind == INT else as_float(self.name, value)
        if self.kind == TABLE:
            rows = as_rows(self.name, value, self.headers)
            return rows if rows or not self.nullable else None
        if self.kind == NUMBERS:
            return as_numbers(self.name, value, self.number_type, allow_empty=self.nullable)
        if self.kind == LINES:
            lines = as_lines(self.name, value)
            return lines if lines is not None or self.nullable else []
        text = as_text(self.name, value, max_chars=MAX_TEXT_CHARS)
        return (text or None) if self.nullable else text


def _optional(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None is allowed)."""
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, False


def describe(name: str, value: Any, hint: Any) -> LabInput:
    """The input `name` with preset value `value` and type hint `hint` (None: the value's own type)."""
    kind, nullable = _optional(hint)
    if kind is None or kind is Any:
        kind, nullable = (type(value) if value is not None else str), nullable or value is None
    base, args = typing.get_origin(kind) or kind, typing.get_args(kind)
    if kind is bool:
        return LabInput(name, BOOL, nullable, value)
    if kind in (int, float):
        return LabInput(name, INT if kind is int else FLOAT, nullable, value)
    rows = isinstance(value, list) and bool(value) and all(isinstance(x, dict) for x in value)
    if base is list and ((args and typing.get_origin(args[0]) is dict) or rows):
        headers = tuple(value[0]) if value else ("text",)
        return LabInput(name, TABLE, nullable, value, headers=headers)
    if base is list and args and args[0] in (int, float):
        return LabInput(name, NUMBERS, nullable, value, number_type=args[0])
    if base is list:
        return LabInput(name, LINES, nullable, value)
    return LabInput(name, TEXT, nullable, value)


@functools.cache
def lab_inputs(lab: str) -> tuple[LabInput, ...]:
    """The lab's inputs in preset order, each with the preset's (full, not quick) value."""
    from inspectors.labs.registry import lab_module

    hints = typing.get_type_hints(lab_module(lab).run)
    return tuple(describe(name, value, hints.get(name)) for name, value in load_preset(lab).items())


def parse_inputs(lab: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Every raw value parsed; inputs left out keep the preset's value."""
    from inspectors.errors import InvalidParameterError

    specs = {spec.name: spec for spec in lab_inputs(lab)}
    unknown = sorted(set(raw) - set(specs))
    if unknown:
        raise InvalidParameterError("inputs", f"of lab {lab!r} must be among {list(specs)}", unknown)
    return {name: spec.parse(raw[name]) if name in raw else spec.default for name, spec in specs.items()}
