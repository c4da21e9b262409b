"""Save a conversation (or one turn of it) as JSON, and open it again: every record exactly, and its branches.

One format, "gemma-inspector/conversation". Saving one turn saves the conversation up to that turn on its
branch (the turns before it are its prompt, so they are needed to read or reproduce it anyway). A
document looks like

    {"format": "gemma-inspector/conversation", "version": 1, "app": "gemma-inspector 0.3.0",
     "saved_at": "2025-01-01T12:00:00+00:00", "saved": "conversation" | "turn", "turn": null | 2,
     "system_prompt": "...", "active": 0,
     "branches": [{"label": "main", "parent": null, "from_turn": null, "messages": [...], "records": [0, 1]}],
     "records": [{"model_id": ..., "token_ids": {"$array": {"dtype": "int32", "shape": [T], "data": [...]}},
                  ...}]}

Branches share their earlier turns' records (as in `Conversation`): each record is written once and a
branch lists the indices of its records, so opening restores the sharing. Arrays keep their dtype and
shape; floats are written with Python's shortest round-tripping repr, so a record comes back bit for bit
(non-finite floats as the strings "nan", "inf", "-inf", so the file stays standard JSON). Values the
record holds without a fixed type (sampling params, timings, steering and branch settings, probe results)
are written with tags: `$array`, `$float`, `$tuple`, `$dict` (keys that are not strings), `$scalar`
(numpy scalars), `$dataclass` (only the record's own numpy-only types, never an arbitrary class).

Opening checks everything a view relies on (types, array shapes, lengths that must agree) and raises
`SavedFileError` with what is wrong, where, and what to do. No torch here: the share page reads this.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from inspectors.engine.record import StepDistributions, TurnRecord
from inspectors.engine.segments import Segments
from inspectors.errors import InvalidParameterError, SavedFileError
from inspectors.sae.sparse import SparseActivations

if TYPE_CHECKING:
    from inspectors.engine.conversation import Conversation

FORMAT = "gemma-inspector/conversation"
VERSION = 1
MAX_FILE_BYTES = 50 * 1024 * 1024  # a long conversation with SAE probes is a few MB
SAVED_KINDS = ("conversation", "turn")
MAX_DEPTH = 32  # nesting of tagged values; a real record needs about 6
DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
}  # fmt: skip
DATACLASSES = {cls.__name__: cls for cls in (SparseActivations, StepDistributions, Segments)}
WHAT_TO_DO = "Open a .json file saved by Gemma Inspector's Save button (its .html page cannot be opened again)."


@dataclass
class Opened:
    """A file opened: the conversation, and what its header says."""

    conversation: Conversation
    saved: str  # "conversation" | "turn"
    turn: int | None  # the 0-based turn saved (saved == "turn"): the last turn of the one branch
    app: str
    saved_at: str

    @property
    def model_ids(self) -> list[str]:
        """The models that wrote the turns, in order of first appearance."""
        ids = (r.model_id for b in self.conversation.branches for r in b.records)
        return list(dict.fromkeys(ids))


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"gemma-inspector {version('gemma-inspector')}"
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "gemma-inspector"


def timestamp() -> str:
    """Now, in UTC, as ISO 8601 to the second: when a file was saved."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---- saving -----------------------------------------------------------------------------------------------
def document(conversation: Any, turn: int | None = None) -> dict[str, Any]:
    """The JSON document (plain dicts and lists) of a conversation, or of its active branch up to `turn`
    (0-based) when a turn is given."""
    if turn is not None:
        conversation = truncated(conversation, turn)
    branches, active = conversation.branches, conversation.active
    records: list[TurnRecord] = []
    index: dict[int, int] = {}  # id(record) -> its position in `records`: shared records are written once
    for branch in branches:
        for record in branch.records:
            if id(record) not in index:
                index[id(record)] = len(records)
                records.append(record)
    return {
        "format": FORMAT,
        "version": VERSION,
        "app": app_version(),
        "saved_at": timestamp(),
        "saved": "conversation" if turn is None else "turn",
        "turn": turn,
        "system_prompt": conversation.system_prompt,
        "active": active,
        "branches": [
            {
                "label": b.label,
                "parent": b.parent,
                "from_turn": b.from_turn,
                "messages": [dict(m) for m in b.messages],
                "records": [index[id(r)] for r in b.records],
            }
            for b in branches
        ],
        "records": [record_to_json(r) for r in records],
    }


def truncated(conversation: Any, turn: int) -> Conversation:
    """The active branch up to turn `turn` (0-based), as a conversation of one branch: what saving a turn keeps."""
    from inspectors.engine.conversation import Branch, Conversation  # here: the conversation module needs torch

    source = conversation.branch
    if not 0 <= turn < len(source.records):
        raise InvalidParameterError("turn", f"must be in [0, {len(source.records) - 1}] on this branch", turn)
    branch = Branch(source.messages[: 2 * turn + 2], source.records[: turn + 1], source.label)
    return Conversation(system_prompt=conversation.system_prompt, branches=[branch], active=0)


def dumps(conversation: Any, turn: int | None = None) -> str:
    """The file's text: `document` as standard JSON (no NaN literals), UTF-8 characters kept as they are."""
    return json.dumps(document(conversation, turn), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def record_to_json(record: TurnRecord) -> dict[str, Any]:
    """One record as JSON-ready values; fields without a fixed shape (and any added later) are tagged values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(TurnRecord):
        value = getattr(record, f.name)
        if f.name == "candidate_pieces":
            out[f.name] = {str(int(k)): v for k, v in value.items()}  # JSON keys are strings; opened as ints
        elif f.name == "steps":
            out[f.name] = {name: encode(getattr(value, name)) for name in StepDistributions.__dataclass_fields__}
        elif f.name == "segments":
            out[f.name] = None if value is None else {"names": list(value.names), "of_token": encode(value.of_token)}
        else:
            out[f.name] = encode(value)
    return out


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


# ---- opening ----------------------------------------------------------------------------------------------
def read_bytes(data: bytes, name: str = "the file") -> Opened:
    """Open a saved file's bytes (size capped); every problem is a `SavedFileError` that says what to do."""
    check_size(len(data), name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SavedFileError(f"{name} is not a text file, so not a Gemma Inspector file. {WHAT_TO_DO}") from None
    return loads(text, name)


def check_size(n_bytes: int, name: str = "the file") -> None:
    if n_bytes > MAX_FILE_BYTES:
        raise SavedFileError(
            f"{name} is {n_bytes / 2**20:.1f} MB; files over {MAX_FILE_BYTES // 2**20} MB are not opened. "
            "Save a single turn, or fewer branches, and open that."
        )


def loads(text: str, name: str = "the file") -> Opened:
    try:
        doc = json.loads(text)
    except RecursionError:
        raise SavedFileError(f"{name} is nested too deeply to be a Gemma Inspector file. {WHAT_TO_DO}") from None
    except ValueError as err:
        stripped = text.lstrip()[:200].lower()
        if stripped.startswith(("<!doctype", "<html")):
            raise SavedFileError(f"{name} is an HTML page, which is for reading in a browser. {WHAT_TO_DO}") from None
        body = text.strip()
        cut = body.startswith("{") and not body.endswith("}")
        cut = " (it looks cut short: was the download or the copy complete?)" if cut else ""
        raise SavedFileError(f"{name} is not valid JSON{cut}: {err}. {WHAT_TO_DO}") from None
    return from_document(doc, name)


def from_document(doc: Any, name: str = "the file") -> Opened:
    from inspectors.engine.conversation import Branch, Conversation  # here: the conversation module needs torch

    if not isinstance(doc, dict):
        raise SavedFileError(
            f'{name} is not a Gemma Inspector file (it holds a {_kind(doc)}, not an object with a "format" '
            f"marker). {WHAT_TO_DO}"
        )
    if "format" not in doc:
        raise SavedFileError(f'{name} is not a Gemma Inspector file (it has no "format" marker). {WHAT_TO_DO}')
    if doc["format"] != FORMAT:
        raise SavedFileError(
            f"{name} is not a Gemma Inspector file: its format is {doc['format']!r}, not {FORMAT!r}. {WHAT_TO_DO}"
        )
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SavedFileError(f"{name}: version must be a whole number >= 1, but is {version!r}. {WHAT_TO_DO}")
    if version > VERSION:
        raise SavedFileError(
            f"{name} was saved by a newer Gemma Inspector ({doc.get('app') or 'unknown version'}, file format "
            f"version {version}); this app reads versions up to {VERSION}. Update the app to open it."
        )
    try:
        return _opened(doc, Branch, Conversation)
    except _Bad as bad:
        raise SavedFileError(f"{name} is damaged or was edited: {bad}. {WHAT_TO_DO}") from None


class _Bad(Exception):
    """What is wrong, and where: 'records[2].tokens has 10 entries but token_ids has 11'."""


def _opened(doc: dict, branch_cls: type, conversation_cls: type) -> Opened:
    saved = _field(doc, "saved", "", str)
    if saved not in SAVED_KINDS:
        raise _Bad(f"saved must be one of {list(SAVED_KINDS)}, but is {saved!r}")
    system_prompt = _field(doc, "system_prompt", "", str, optional=True)
    app = _field(doc, "app", "", str, optional=True) or ""
    saved_at = _field(doc, "saved_at", "", str, optional=True) or ""
    records = [record_from_json(r, f"records[{i}]") for i, r in enumerate(_field(doc, "records", "", list))]
    raw_branches = _field(doc, "branches", "", list)
    if not raw_branches:
        raise _Bad("branches is empty: a conversation has at least one branch")
    branches = [
        _branch(b, f"branches[{i}]", records, len(raw_branches), branch_cls) for i, b in enumerate(raw_branches)
    ]
    active = _int(_field(doc, "active", "", int), "active", 0, len(branches) - 1)
    turn = _field(doc, "turn", "", int, optional=True)
    if saved == "turn":
        if turn is None:
            raise _Bad("turn is missing: a saved turn names its turn")
        _int(turn, "turn", len(branches[active].records) - 1, len(branches[active].records) - 1)
    conversation = conversation_cls(system_prompt=system_prompt, branches=branches, active=active)
    return Opened(conversation, saved, turn if saved == "turn" else None, app, saved_at)


def _branch(raw: Any, where: str, records: list[TurnRecord], n_branches: int, branch_cls: type) -> Any:
    if not isinstance(raw, dict):
        raise _Bad(f"{where} must be an object, but is a {_kind(raw)}")
    indices = _field(raw, "records", where, list)
    mine = [records[_int(i, f"{where}.records[{j}]", 0, len(records) - 1)] for j, i in enumerate(indices)]
    messages = _messages(_field(raw, "messages", where, list), f"{where}.messages")
    if len(messages) != 2 * len(mine):
        raise _Bad(f"{where} has {len(messages)} messages for {len(mine)} turns (two per turn: user, then model)")
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise _Bad(f"{where}.messages[{i}] has role {message['role']!r}, expected {expected!r}")
    parent = _field(raw, "parent", where, int, optional=True)
    from_turn = _field(raw, "from_turn", where, int, optional=True)
    if parent is not None:
        _int(parent, f"{where}.parent", 0, n_branches - 1)
    if from_turn is not None:
        _int(from_turn, f"{where}.from_turn", 0, max(0, len(mine) - 1))
    label = _field(raw, "label", where, str)
    return branch_cls(messages=messages, records=mine, label=label, parent=parent, from_turn=from_turn)


def record_from_json(raw: Any, where: str = "record") -> TurnRecord:
    """A record from `record_to_json`'s output, checked: raises `_Bad` (inside `from_document`) or
    `SavedFileError` (called alone) with what is wrong."""
    try:
        return _record(raw, where)
    except _Bad as bad:
        if where == "record":  # called alone, not from from_document
            raise SavedFileError(f"The record is damaged or was edited: {bad}.") from None
        raise


def _record(raw: Any, where: str) -> TurnRecord:
    if not isinstance(raw, dict):
        raise _Bad(f"{where} must be an object, but is a {_kind(raw)}")
    values: dict[str, Any] = {}
    token_ids = _array(_field(raw, "token_ids", where, dict), f"{where}.token_ids", kind="iu", ndim=1)
    n_tokens = len(token_ids)
    tokens = _strings(_field(raw, "tokens", where, list), f"{where}.tokens")
    if len(tokens) != n_tokens:
        raise _Bad(f"{where}.tokens has {len(tokens)} entries but token_ids has {n_tokens} (one piece per id)")
    n_prompt = _int(_field(raw, "n_prompt", where, int), f"{where}.n_prompt", 1, n_tokens)
    n_steps = n_tokens - n_prompt
    values.update(token_ids=token_ids, tokens=tokens, n_prompt=n_prompt)
    values["steps"] = _steps(_field(raw, "steps", where, dict), f"{where}.steps", n_steps)
    values["messages"] = _messages(_field(raw, "messages", where, list), f"{where}.messages")
    for name in ("model_id", "prompt_text", "reply_text", "stop_reason"):
        values[name] = _field(raw, name, where, str)
    values["params"] = _params(_field(raw, "params", where, dict), f"{where}.params")
    values["special_ids"] = _ints(_field(raw, "special_ids", where, list), f"{where}.special_ids")
    values["candidate_pieces"] = _pieces(_field(raw, "candidate_pieces", where, dict), f"{where}.candidate_pieces")
    optional = {f.name: f for f in dataclasses.fields(TurnRecord) if f.name not in values}
    for name, f in optional.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Bad(f"{where}.{name} is missing")
            continue  # an older file: the field's default
        value = raw[name]
        at = f"{where}.{name}"
        if name == "segments":
            values[name] = None if value is None else _segments(value, at, n_tokens)
        elif name in ("dropped_messages", "truncated_tokens"):
            values[name] = _int(value, at, 0, None)
        elif name == "forced":
            values[name] = _int(value, at, 0, n_steps)
        elif name in ("system_handling",):
            values[name] = None if value is None else _typed(value, at, str)
        elif name == "dtype":
            values[name] = _typed(value, at, str)
        elif name == "warnings":
            values[name] = _strings(_typed(value, at, list), at)
        elif name == "steering_kl":
            values[name] = None if value is None else _array(_typed(value, at, dict), at, kind="f", shape=(n_steps,))
        elif name in ("probes", "timings"):
            values[name] = _typed(decode(_typed(value, at, dict), at), at, dict)
            if name == "probes":
                _check_probes(values[name], at, n_tokens)
        elif name in ("steering", "branch"):
            values[name] = None if value is None else _typed(decode(_typed(value, at, dict), at), at, dict)
        else:  # a field this reader has no rule for: read back as it was written
            values[name] = decode(value, at)
    return TurnRecord(**values)


def _steps(raw: dict, where: str, n_steps: int) -> StepDistributions:
    arrays = {}
    for name in StepDistributions.__dataclass_fields__:
        kind = "iu" if name.endswith("_ids") else "f"
        ndim = 1 if name.startswith("chosen") else 2
        arrays[name] = _array(_field(raw, name, where, dict), f"{where}.{name}", kind=kind, ndim=ndim)
        if arrays[name].shape[0] != n_steps:
            raise _Bad(
                f"{where}.{name} has {arrays[name].shape[0]} steps but the reply has {n_steps} tokens "
                "(token_ids minus n_prompt): one step per reply token"
            )
    for ids, probs in (("raw_ids", "raw_probs"), ("warped_ids", "warped_probs")):
        if arrays[ids].shape != arrays[probs].shape:
            raise _Bad(f"{where}.{ids} has shape {arrays[ids].shape} but {probs} has {arrays[probs].shape}")
    return StepDistributions(**arrays)


def _segments(raw: Any, where: str, n_tokens: int) -> Segments:
    raw = _typed(raw, where, dict)
    names = _strings(_field(raw, "names", where, list), f"{where}.names")
    of_token = _array(_field(raw, "of_token", where, dict), f"{where}.of_token", kind="iu", shape=(n_tokens,))
    if of_token.size and (of_token.min() < 0 or of_token.max() >= len(names)):
        raise _Bad(f"{where}.of_token must index into its {len(names)} names")
    return Segments(names, of_token)


def _params(raw: dict, where: str) -> dict[str, Any]:
    params = _typed(decode(raw, where), where, dict)
    numbers = {"temperature": float, "top_p": float, "repetition_penalty": float}
    for name in ("temperature", "top_k", "top_p", "max_new_tokens", "seed"):
        if name not in params:
            raise _Bad(f"{where}.{name} is missing")
    for name, value in params.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if name in numbers and not ok:
            raise _Bad(f"{where}.{name} must be a number, but is {value!r}")
        if name in ("top_k", "max_new_tokens") or (name == "seed" and value is not None):
            _int(value, f"{where}.{name}", 0, None)
    return params


def _pieces(raw: dict, where: str) -> dict[int, str]:
    pieces = {}
    for key, piece in raw.items():
        if not (key.isdigit() and key.isascii()):
            raise _Bad(f"{where} keys must be token ids, but one is {key!r}")
        pieces[int(key)] = _typed(piece, f"{where}[{key}]", str)
    return pieces


def _check_probes(probes: dict, where: str, n_tokens: int) -> None:
    for name, probe in probes.items():
        if isinstance(probe, SparseActivations):
            at = f"{where}.{name}"
            if probe.top_ids.ndim != 2 or probe.top_ids.shape[0] != n_tokens:
                raise _Bad(f"{at}.top_ids has shape {probe.top_ids.shape}; expected ({n_tokens}, k), a row per token")
            if probe.top_values.shape != probe.top_ids.shape:
                raise _Bad(f"{at}.top_values has shape {probe.top_values.shape}, unlike top_ids {probe.top_ids.shape}")
            if probe.feature_values.shape != (n_tokens,):
                raise _Bad(f"{at}.feature_values has shape {probe.feature_values.shape}; expected ({n_tokens},)")


def _messages(raw: list, where: str) -> list[dict[str, str]]:
    messages = []
    for i, message in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(message, dict):
            raise _Bad(f"{at} must be an object with role and content, but is a {_kind(message)}")
        for key in ("role", "content"):
            _typed(_field(message, key, at, str), f"{at}.{key}", str)
        for key, value in message.items():
            _typed(value, f"{at}.{key}", str)
        messages.append(dict(message))
    return messages


def decode(value: Any, where: str = "value", depth: int = 0) -> Any:
    """The value `encode` wrote; raises `_Bad` on a malformed tag."""
    if depth > MAX_DEPTH:
        raise _Bad(f"{where} is nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise _Bad(f"{where} has an unreadable value of type {_kind(value)}")
    tags = [k for k in value if k.startswith("$")]
    if not tags:
        return {k: decode(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    if len(value) != 1:
        raise _Bad(f"{where} mixes the tag {tags[0]!r} with other keys")
    tag, body = tags[0], value[tags[0]]
    if tag == "$float":
        if body not in ("nan", "inf", "-inf"):
            raise _Bad(f"{where}: $float must be 'nan', 'inf' or '-inf', but is {body!r}")
        return float(body)
    if tag == "$array":
        return _array(value, where)
    if tag == "$scalar":
        body = _typed(body, where, dict)
        dtype = _field(body, "dtype", where, str)
        if dtype not in DTYPES:
            raise _Bad(f"{where}.dtype must be one of {sorted(DTYPES)}, but is {dtype!r}")
        number = decode(_field(body, "value", where, object), f"{where}.value", depth + 1)
        if isinstance(number, str) or not isinstance(number, (bool, int, float)):
            raise _Bad(f"{where}.value must be a number, but is {number!r}")
        return _cast(np.asarray([number]), dtype, where)[0]
    if tag == "$tuple":
        return tuple(decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(_typed(body, where, list)))
    if tag == "$dict":
        out = {}
        for i, pair in enumerate(_typed(body, where, list)):
            if not isinstance(pair, list) or len(pair) != 2:
                raise _Bad(f"{where}[{i}] must be a [key, value] pair")
            key = decode(pair[0], f"{where}[{i}][0]", depth + 1)
            if isinstance(key, (list, dict)):
                raise _Bad(f"{where}[{i}][0] must be a string or a number, but is a {_kind(key)}")
            out[key] = decode(pair[1], f"{where}[{key!r}]", depth + 1)
        return out
    if tag == "$dataclass":
        body = _typed(body, where, dict)
        kind = _field(body, "type", where, str)
        cls = DATACLASSES.get(kind)
        if cls is None:
            raise _Bad(f"{where}.type must be one of {sorted(DATACLASSES)}, but is {kind!r}")
        raw_fields = _field(body, "fields", where, dict)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in raw_fields]
        if missing:
            raise _Bad(f"{where} ({kind}) lacks {', '.join(missing)}")
        fields = {n: decode(raw_fields[n], f"{where}.{n}", depth + 1) for n in names}
        return cls(**fields)
    raise _Bad(f"{where} has an unknown tag {tag!r}")


def _array(
    value: dict, where: str, kind: str | None = None, ndim: int | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    body = _field(value, "$array", where, dict)
    dtype = _field(body, "dtype", where, str)
    if dtype not in DTYPES:
        raise _Bad(f"{where}.dtype must be one of {sorted(DTYPES)}, but is {dtype!r}")
    if kind is not None and np.dtype(dtype).kind not in kind:
        wanted = "whole numbers" if kind == "iu" else "floats"
        raise _Bad(f"{where} must hold {wanted}, but its dtype is {dtype}")
    dims = _field(body, "shape", where, list)
    for i, n in enumerate(dims):
        _int(n, f"{where}.shape[{i}]", 0, None)
    data = _field(body, "data", where, list)
    if len(data) != math.prod(dims):
        raise _Bad(f"{where} has {len(data)} values for shape {tuple(dims)} ({math.prod(dims)} values)")
    if ndim is not None and len(dims) != ndim:
        raise _Bad(f"{where} must have {ndim} dimension(s), but has shape {tuple(dims)}")
    if shape is not None and tuple(dims) != shape:
        raise _Bad(f"{where} has shape {tuple(dims)}, expected {shape}")
    np_kind = np.dtype(dtype).kind
    if np_kind == "f":
        data = [_float(x, f"{where}.data[{i}]") for i, x in enumerate(data)]
    elif np_kind == "b":
        if not all(isinstance(x, bool) for x in data):
            raise _Bad(f"{where}.data must hold true/false values")
    elif not all(isinstance(x, int) and not isinstance(x, bool) for x in data):
        raise _Bad(f"{where}.data must hold whole numbers (dtype {dtype})")
    return _cast(np.asarray(data, dtype=object), dtype, where).reshape(dims)


def _cast(values: np.ndarray, dtype: str, where: str) -> np.ndarray:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None and values.size and (min(values.tolist()) < info.min or max(values.tolist()) > info.max):
        raise _Bad(f"{where} has values outside the range of {dtype}")
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def _float(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise _Bad(f"{where} must be a number, but is {x!r}")
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            raise _Bad(f"{where} must be a number (or 'nan', 'inf', '-inf'), but is {x!r}")
        return float(x)
    return float(x)


def _field(obj: dict, name: str, where: str, kind: type, optional: bool = False) -> Any:
    at = f"{where}.{name}" if where else name
    if name not in obj:
        if optional:
            return None
        raise _Bad(f"{at} is missing")
    value = obj[name]
    if value is None and optional:
        return None
    return _typed(value, at, kind)


def _typed(value: Any, where: str, kind: type) -> Any:
    if kind is object:
        return value
    if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
        raise _Bad(f"{where} must be {_KINDS.get(kind, kind.__name__)}, but is {_show(value)}")
    return value


def _int(value: Any, where: str, low: int, high: int | None) -> int:
    _typed(value, where, int)
    if value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise _Bad(f"{where} must be a whole number {rule}, but is {value}")
    return value


def _ints(raw: list, where: str) -> list[int]:
    return [_typed(x, f"{where}[{i}]", int) for i, x in enumerate(raw)]


def _strings(raw: list, where: str) -> list[str]:
    return [_typed(x, f"{where}[{i}]", str) for i, x in enumerate(raw)]


_KINDS = {str: "text", int: "a whole number", float: "a number", list: "a list", dict: "an object"}


def _kind(value: Any) -> str:
    return {str: "text", int: "number", float: "number", list: "list", dict: "object", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _show(value: Any) -> str:
    text = repr(value)
    return f"{_kind(value)} {text[:60]}{'…' if len(text) > 60 else ''}"
