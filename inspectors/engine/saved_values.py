"""The tagged JSON values of a saved file: any value a record holds without a fixed type (arrays with their
dtype and shape, non-finite floats, tuples, dicts with non-string keys, numpy scalars, the record's own
numpy-only dataclasses) encoded so that decoding gives back an equal value of the same type; and the checks
that name what is wrong, and where, in a file that was damaged or edited."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from inspectors.engine.record import StepDistributions
from inspectors.engine.segments import Segments
from inspectors.sae.sparse import SparseActivations

MAX_DEPTH = 32  # nesting of tagged values; a real record needs about 6
DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
}  # fmt: skip
DATACLASSES = {cls.__name__: cls for cls in (SparseActivations, StepDistributions, Segments)}


def encode(value: Any, where: str = "value") -> Any:
    """A value as JSON-ready data that `decode` turns back into an equal value of the same type."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": _nonfinite(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.name not in DTYPES:
            raise TypeError(f"{where}: arrays of {value.dtype} cannot be saved")
        data = value.ravel().tolist()
        if value.dtype.kind == "f":
            data = [x if math.isfinite(x) else _nonfinite(x) for x in data]
        return {"$array": {"dtype": value.dtype.name, "shape": list(value.shape), "data": data}}
    if isinstance(value, np.generic):
        if value.dtype.name not in DTYPES:
            raise TypeError(f"{where}: numbers of {value.dtype} cannot be saved")
        return {"$scalar": {"dtype": value.dtype.name, "value": encode(value.item(), where)}}
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, f"{where}.{k}") for k, v in value.items()}
        return {"$dict": [[encode(k, where), encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and DATACLASSES.get(type(value).__name__) is type(value):
        fields = {f.name: encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
        return {"$dataclass": {"type": type(value).__name__, "fields": fields}}
    raise TypeError(f"{where}: a {type(value).__name__} cannot be saved")


def _nonfinite(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


class Damaged(Exception):
    """What is wrong, and where: 'records[2].tokens has 10 entries but token_ids has 11'."""


def decode(value: Any, where: str = "value", depth: int = 0) -> Any:
    """The value `encode` wrote; raises `Damaged` on a malformed tag."""
    if depth > MAX_DEPTH:
        raise Damaged(f"{where} is nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise Damaged(f"{where} has an unreadable value of type {kind_of(value)}")
    tags = [k for k in value if k.startswith("$")]
    if not tags:
        return {k: decode(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    if len(value) != 1:
        raise Damaged(f"{where} mixes the tag {tags[0]!r} with other keys")
    tag, body = tags[0], value[tags[0]]
    if tag == "$float":
        if body not in ("nan", "inf", "-inf"):
            raise Damaged(f"{where}: $float must be 'nan', 'inf' or '-inf', but is {body!r}")
        return float(body)
    if tag == "$array":
        return array_at(value, where)
    if tag == "$scalar":
        body = typed_at(body, where, dict)
        dtype = field_at(body, "dtype", where, str)
        if dtype not in DTYPES:
            raise Damaged(f"{where}.dtype must be one of {sorted(DTYPES)}, but is {dtype!r}")
        number = decode(field_at(body, "value", where, object), f"{where}.value", depth + 1)
        if isinstance(number, str) or not isinstance(number, (bool, int, float)):
            raise Damaged(f"{where}.value must be a number, but is {number!r}")
        return _cast(np.asarray([number]), dtype, where)[0]
    if tag == "$tuple":
        return tuple(decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(typed_at(body, where, list)))
    if tag == "$dict":
        out = {}
        for i, pair in enumerate(typed_at(body, where, list)):
            if not isinstance(pair, list) or len(pair) != 2:
                raise Damaged(f"{where}[{i}] must be a [key, value] pair")
            key = decode(pair[0], f"{where}[{i}][0]", depth + 1)
            if isinstance(key, (list, dict)):
                raise Damaged(f"{where}[{i}][0] must be a string or a number, but is a {kind_of(key)}")
            out[key] = decode(pair[1], f"{where}[{key!r}]", depth + 1)
        return out
    if tag == "$dataclass":
        body = typed_at(body, where, dict)
        kind = field_at(body, "type", where, str)
        cls = DATACLASSES.get(kind)
        if cls is None:
            raise Damaged(f"{where}.type must be one of {sorted(DATACLASSES)}, but is {kind!r}")
        raw_fields = field_at(body, "fields", where, dict)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in raw_fields]
        if missing:
            raise Damaged(f"{where} ({kind}) lacks {', '.join(missing)}")
        fields = {n: decode(raw_fields[n], f"{where}.{n}", depth + 1) for n in names}
        return cls(**fields)
    raise Damaged(f"{where} has an unknown tag {tag!r}")


def array_at(
    value: dict, where: str, kind: str | None = None, ndim: int | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    body = field_at(value, "$array", where, dict)
    dtype = field_at(body, "dtype", where, str)
    if dtype not in DTYPES:
        raise Damaged(f"{where}.dtype must be one of {sorted(DTYPES)}, but is {dtype!r}")
    if kind is not None and np.dtype(dtype).kind not in kind:
        wanted = "whole numbers" if kind == "iu" else "floats"
        raise Damaged(f"{where} must hold {wanted}, but its dtype is {dtype}")
    dims = field_at(body, "shape", where, list)
    for i, n in enumerate(dims):
        int_at(n, f"{where}.shape[{i}]", 0, None)
    data = field_at(body, "data", where, list)
    if len(data) != math.prod(dims):
        raise Damaged(f"{where} has {len(data)} values for shape {tuple(dims)} ({math.prod(dims)} values)")
    if ndim is not None and len(dims) != ndim:
        raise Damaged(f"{where} must have {ndim} dimension(s), but has shape {tuple(dims)}")
    if shape is not None and tuple(dims) != shape:
        raise Damaged(f"{where} has shape {tuple(dims)}, expected {shape}")
    np_kind = np.dtype(dtype).kind
    if np_kind == "f":
        data = [_float(x, f"{where}.data[{i}]") for i, x in enumerate(data)]
    elif np_kind == "b":
        if not all(isinstance(x, bool) for x in data):
            raise Damaged(f"{where}.data must hold true/false values")
    elif not all(isinstance(x, int) and not isinstance(x, bool) for x in data):
        raise Damaged(f"{where}.data must hold whole numbers (dtype {dtype})")
    return _cast(np.asarray(data, dtype=object), dtype, where).reshape(dims)


def _cast(values: np.ndarray, dtype: str, where: str) -> np.ndarray:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None and values.size and (min(values.tolist()) < info.min or max(values.tolist()) > info.max):
        raise Damaged(f"{where} has values outside the range of {dtype}")
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def _float(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise Damaged(f"{where} must be a number, but is {x!r}")
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            raise Damaged(f"{where} must be a number (or 'nan', 'inf', '-inf'), but is {x!r}")
        return float(x)
    return float(x)


def field_at(obj: dict, name: str, where: str, kind: type, optional: bool = False) -> Any:
    at = f"{where}.{name}" if where else name
    if name not in obj:
        if optional:
            return None
        raise Damaged(f"{at} is missing")
    value = obj[name]
    if value is None and optional:
        return None
    return typed_at(value, at, kind)


def typed_at(value: Any, where: str, kind: type) -> Any:
    if kind is object:
        return value
    if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
        raise Damaged(f"{where} must be {_KINDS.get(kind, kind.__name__)}, but is {_show(value)}")
    return value


def int_at(value: Any, where: str, low: int, high: int | None) -> int:
    typed_at(value, where, int)
    if value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise Damaged(f"{where} must be a whole number {rule}, but is {value}")
    return value


def ints_at(raw: list, where: str) -> list[int]:
    return [typed_at(x, f"{where}[{i}]", int) for i, x in enumerate(raw)]


def strings_at(raw: list, where: str) -> list[str]:
    return [typed_at(x, f"{where}[{i}]", str) for i, x in enumerate(raw)]


_KINDS = {str: "text", int: "a whole number", float: "a number", list: "a list", dict: "an object"}


def kind_of(value: Any) -> str:
    return {str: "text", int: "number", float: "number", list: "list", dict: "object", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _show(value: Any) -> str:
    text = repr(value)
    return f"{kind_of(value)} {text[:60]}{'…' if len(text) > 60 else ''}"


def messages_at(raw: list, where: str) -> list[dict[str, str]]:
    """Chat messages: objects of strings with at least a role and a content."""
    messages = []
    for i, message in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(message, dict):
            raise Damaged(f"{at} must be an object with role and content, but is a {kind_of(message)}")
        for key in ("role", "content"):
            typed_at(field_at(message, key, at, str), f"{at}.{key}", str)
        for key, value in message.items():
            typed_at(value, f"{at}.{key}", str)
        messages.append(dict(message))
    return messages
