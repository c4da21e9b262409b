"""Raw UI / API values -> typed parameters, each bad value named with its rule."""

from __future__ import annotations

import pytest

from inspectors.errors import InvalidParameterError
from inspectors.inputs import (
    as_bool,
    as_float,
    as_index,
    as_int,
    as_lines,
    as_numbers,
    as_optional_int,
    as_rows,
    as_text,
)


@pytest.mark.parametrize(("value", "expected"), [(3, 3), (3.0, 3), ("3", 3), (" 4 ", 4), ("5.0", 5)])
def test_whole_numbers_in_any_form(value, expected):
    assert as_int("n", value, 0, 10) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [("abc", "'abc'"), ("2.5", "'2.5'"), (2.5, "2.5"), (True, "True"), (None, "None"), ("", "''"), ("nan", "'nan'"),
     (float("inf"), "inf"), (11, "11"), (-1, "-1"), ([1], "[1]")],
)  # fmt: skip
def test_bad_whole_numbers(value, shown):
    with pytest.raises(InvalidParameterError) as err:
        as_int("n", value, 0, 10)
    assert str(err.value) == f"`n` must be a whole number in [0, 10], but is {shown}"


def test_numbers_and_ranges():
    assert as_float("t", "0.7", 0, 5) == 0.7 and as_float("t", 5, 0, 5) == 5.0
    with pytest.raises(InvalidParameterError, match=r"`t` must be a number >= 0, but is -0.1"):
        as_float("t", -0.1, 0)
    assert as_optional_int("seed", "") is None and as_optional_int("seed", None) is None
    assert as_optional_int("seed", "12", 0, 20) == 12
    with pytest.raises(InvalidParameterError, match=r"`turn` has nothing to choose from: the chat has none yet"):
        as_index("turn", 0, 0, "the chat")


def test_text_bool_and_lists():
    assert as_text("m", None, max_chars=5) == ""
    with pytest.raises(InvalidParameterError, match="must be at most 5 characters long"):
        as_text("m", "toolong", max_chars=5)
    with pytest.raises(InvalidParameterError, match="must not be empty"):
        as_text("m", "  ", max_chars=5, allow_empty=False)
    assert as_bool("b", "true") is True and as_bool("b", 0) is False
    with pytest.raises(InvalidParameterError, match="must be true or false"):
        as_bool("b", "maybe")
    assert as_numbers("l", "1, 3 5", int) == [1, 3, 5] and as_numbers("l", [1, "2"], int) == [1, 2]
    with pytest.raises(InvalidParameterError, match="must be whole numbers separated by commas"):
        as_numbers("l", "1, two", int)
    assert as_numbers("l", "", int, allow_empty=True) is None
    assert as_lines("s", "a\n\n b \n") == ["a", "b"] and as_lines("s", "") is None


def test_table_rows_from_every_shape():
    headers = ["text", "sense"]
    expected = [{"text": "apple", "sense": "fruit"}]
    assert as_rows("t", {"headers": headers, "data": [["apple", "fruit"], ["", ""]]}, headers) == expected
    assert as_rows("t", [["apple", "fruit"]], headers) == expected
    assert as_rows("t", [{"text": "apple", "sense": "fruit"}], headers) == expected
    with pytest.raises(InvalidParameterError, match="must be a table with the columns"):
        as_rows("t", "apple", headers)
