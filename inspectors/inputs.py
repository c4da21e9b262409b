"""Raw values from the UI or the API (numbers, numeric strings, empty strings, None) -> typed parameters.

Everything a user can type passes through here once, so every bad value gets the same kind of message:
the parameter, the rule and the value ("`temperature` must be a number in [0, 5], but is 'abc'").
A numeric string such as "0.7" is fine; booleans, NaN and infinities are not numbers here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from inspectors.errors import InvalidParameterError

MAX_MESSAGE_CHARS = 20_000  # far above any context limit: the real bound is tokens, trimmed with a notice
MAX_QUERY_CHARS = 200
MAX_MODEL_ID_CHARS = 300
NEWEST = "newest"  # a turn value that means the latest turn whenever it is read (the turn picker's first entry)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _interval(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"in [{_number(low)}, {_number(high)}]"
    if low is not None:
        return f">= {_number(low)}"
    if high is not None:
        return f"<= {_number(high)}"
    return ""


def _finite(name: str, value: Any, rule: str) -> float:
    """A finite float from a number or numeric text; anything else is refused with `rule`."""
    if isinstance(value, bool) or _empty(value):
        raise InvalidParameterError(name, rule, value)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, rule, value) from None
    if not math.isfinite(number):
        raise InvalidParameterError(name, rule, value)
    return number


def _within(name: str, value: Any, number: float, low: float | None, high: float | None, rule: str) -> None:
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidParameterError(name, rule, value)


def as_float(name: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    rule = f"must be a number {_interval(low, high)}".rstrip()
    number = _finite(name, value, rule)
    _within(name, value, number, low, high, rule)
    return number


def as_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    rule = f"must be a whole number {_interval(low, high)}".rstrip()
    number = _finite(name, value, rule)
    if not number.is_integer():
        raise InvalidParameterError(name, rule, value)
    _within(name, value, number, low, high, rule)
    return int(number)


def as_optional_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int | None:
    """None for an empty value (None or blank text), else `as_int`."""
    return None if _empty(value) else as_int(name, value, low, high)


def as_text(name: str, value: Any, *, max_chars: int, allow_empty: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidParameterError(name, "must be text", value)
    if len(value) > max_chars:
        raise InvalidParameterError(
            name, f"must be at most {max_chars:,} characters long", f"{value[:40]}… ({len(value):,} characters)"
        )
    if not allow_empty and not value.strip():
        raise InvalidParameterError(name, "must not be empty", value)
    return value


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise InvalidParameterError(name, "must be true or false", value)


def as_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    text = value.strip() if isinstance(value, str) else value
    if text not in choices:
        raise InvalidParameterError(name, f"must be one of {list(choices)}", value)
    return text


def means_newest(value: Any) -> bool:
    """Whether a turn value asks for the latest turn: empty, or NEWEST."""
    return _empty(value) or (isinstance(value, str) and value.strip().lower() == NEWEST)


def as_index(name: str, value: Any, count: int, what: str) -> int:
    """A 0-based index into `count` things, with a message that says how many there are."""
    if count <= 0:
        raise InvalidParameterError(name, f"has nothing to choose from: {what} has none yet", value)
    return as_int(name, value, 0, count - 1)


def as_numbers(name: str, value: Any, kind: type, *, allow_empty: bool = False) -> list | None:
    """Numbers separated by commas or spaces ("1, 3 5"), or a JSON list of them."""
    parts = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value or "").replace(",", " ").split()
    if not parts:
        if allow_empty:
            return None
        raise InvalidParameterError(name, "must list at least one number, separated by commas", value)
    word = "whole numbers" if kind is int else "numbers"
    try:
        return [as_int(name, p) if kind is int else as_float(name, p) for p in parts]
    except InvalidParameterError:
        raise InvalidParameterError(name, f"must be {word} separated by commas", value) from None


def as_lines(name: str, value: Any, *, allow_empty: bool = True) -> list[str] | None:
    """Text with one item per line (or a JSON list of strings); blank lines are dropped."""
    if isinstance(value, (list, tuple)):
        lines = [str(v).strip() for v in value if str(v).strip()]
    else:
        lines = [
            line.strip() for line in as_text(name, value, max_chars=MAX_MESSAGE_CHARS).splitlines() if line.strip()
        ]
    if not lines and not allow_empty:
        raise InvalidParameterError(name, "must have at least one non-empty line", value)
    return lines or None


def as_rows(name: str, value: Any, headers: Sequence[str]) -> list[dict[str, str]]:
    """A table's rows as dicts. Takes a Gradio Dataframe value (pandas, or {'headers', 'data'} from an API
    client), a list of rows, or a list of dicts; a row whose cells are all empty is a removed row."""
    if value is None:
        return []
    if isinstance(value, dict):
        columns, data = list(value.get("headers") or headers), value.get("data") or []
    elif hasattr(value, "values") and hasattr(value, "columns"):
        columns, data = [str(c) for c in value.columns], value.values.tolist()
    elif isinstance(value, list):
        columns, data = list(headers), value
    else:
        raise InvalidParameterError(name, f"must be a table with the columns {list(headers)}", value)
    rows = []
    for row in data:
        if isinstance(row, dict):
            cells = {str(k): "" if v is None else str(v) for k, v in row.items()}
        elif isinstance(row, (list, tuple)):
            cells = dict(zip(columns, ["" if cell is None else str(cell) for cell in row], strict=False))
        else:
            raise InvalidParameterError(name, f"must be a table with the columns {list(headers)}", value)
        if any(cell.strip() for cell in cells.values()):
            rows.append(cells)
    return rows
