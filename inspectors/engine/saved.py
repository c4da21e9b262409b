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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from inspectors.engine.record import StepDistributions, TurnRecord
from inspectors.engine.saved_values import (
    Damaged,
    array_at,
    decode,
    encode,
    field_at,
    int_at,
    ints_at,
    kind_of,
    messages_at,
    strings_at,
    typed_at,
)
from inspectors.engine.segments import Segments
from inspectors.errors import InvalidParameterError, SavedFileError
from inspectors.sae.sparse import SparseActivations

if TYPE_CHECKING:
    from inspectors.engine.conversation import Conversation

FORMAT = "gemma-inspector/conversation"
VERSION = 1
MAX_FILE_BYTES = 50 * 1024 * 1024  # a long conversation with SAE probes is a few MB
SAVED_KINDS = ("conversation", "turn")
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
            f'{name} is not a Gemma Inspector file (it holds a {kind_of(doc)}, not an object with a "format" '
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
    except Damaged as bad:
        raise SavedFileError(f"{name} is damaged or was edited: {bad}. {WHAT_TO_DO}") from None


def _opened(doc: dict, branch_cls: type, conversation_cls: type) -> Opened:
    saved = field_at(doc, "saved", "", str)
    if saved not in SAVED_KINDS:
        raise Damaged(f"saved must be one of {list(SAVED_KINDS)}, but is {saved!r}")
    system_prompt = field_at(doc, "system_prompt", "", str, optional=True)
    app = field_at(doc, "app", "", str, optional=True) or ""
    saved_at = field_at(doc, "saved_at", "", str, optional=True) or ""
    records = [record_from_json(r, f"records[{i}]") for i, r in enumerate(field_at(doc, "records", "", list))]
    raw_branches = field_at(doc, "branches", "", list)
    if not raw_branches:
        raise Damaged("branches is empty: a conversation has at least one branch")
    branches = [
        _branch(b, f"branches[{i}]", records, len(raw_branches), branch_cls) for i, b in enumerate(raw_branches)
    ]
    active = int_at(field_at(doc, "active", "", int), "active", 0, len(branches) - 1)
    turn = field_at(doc, "turn", "", int, optional=True)
    if saved == "turn":
        if turn is None:
            raise Damaged("turn is missing: a saved turn names its turn")
        int_at(turn, "turn", len(branches[active].records) - 1, len(branches[active].records) - 1)
    conversation = conversation_cls(system_prompt=system_prompt, branches=branches, active=active)
    return Opened(conversation, saved, turn if saved == "turn" else None, app, saved_at)


def _branch(raw: Any, where: str, records: list[TurnRecord], n_branches: int, branch_cls: type) -> Any:
    if not isinstance(raw, dict):
        raise Damaged(f"{where} must be an object, but is a {kind_of(raw)}")
    indices = field_at(raw, "records", where, list)
    mine = [records[int_at(i, f"{where}.records[{j}]", 0, len(records) - 1)] for j, i in enumerate(indices)]
    messages = messages_at(field_at(raw, "messages", where, list), f"{where}.messages")
    if len(messages) != 2 * len(mine):
        raise Damaged(f"{where} has {len(messages)} messages for {len(mine)} turns (two per turn: user, then model)")
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise Damaged(f"{where}.messages[{i}] has role {message['role']!r}, expected {expected!r}")
    parent = field_at(raw, "parent", where, int, optional=True)
    from_turn = field_at(raw, "from_turn", where, int, optional=True)
    if parent is not None:
        int_at(parent, f"{where}.parent", 0, n_branches - 1)
    if from_turn is not None:
        int_at(from_turn, f"{where}.from_turn", 0, max(0, len(mine) - 1))
    label = field_at(raw, "label", where, str)
    return branch_cls(messages=messages, records=mine, label=label, parent=parent, from_turn=from_turn)


def record_from_json(raw: Any, where: str = "record") -> TurnRecord:
    """A record from `record_to_json`'s output, checked: raises `Damaged` (inside `from_document`) or
    `SavedFileError` (called alone) with what is wrong."""
    try:
        return _record(raw, where)
    except Damaged as bad:
        if where == "record":  # called alone, not from from_document
            raise SavedFileError(f"The record is damaged or was edited: {bad}.") from None
        raise


def _record(raw: Any, where: str) -> TurnRecord:
    if not isinstance(raw, dict):
        raise Damaged(f"{where} must be an object, but is a {kind_of(raw)}")
    values: dict[str, Any] = {}
    token_ids = array_at(field_at(raw, "token_ids", where, dict), f"{where}.token_ids", kind="iu", ndim=1)
    n_tokens = len(token_ids)
    tokens = strings_at(field_at(raw, "tokens", where, list), f"{where}.tokens")
    if len(tokens) != n_tokens:
        raise Damaged(f"{where}.tokens has {len(tokens)} entries but token_ids has {n_tokens} (one piece per id)")
    n_prompt = int_at(field_at(raw, "n_prompt", where, int), f"{where}.n_prompt", 1, n_tokens)
    n_steps = n_tokens - n_prompt
    values.update(token_ids=token_ids, tokens=tokens, n_prompt=n_prompt)
    values["steps"] = _steps(field_at(raw, "steps", where, dict), f"{where}.steps", n_steps)
    values["messages"] = messages_at(field_at(raw, "messages", where, list), f"{where}.messages")
    for name in ("model_id", "prompt_text", "reply_text", "stop_reason"):
        values[name] = field_at(raw, name, where, str)
    values["params"] = _params(field_at(raw, "params", where, dict), f"{where}.params")
    values["special_ids"] = ints_at(field_at(raw, "special_ids", where, list), f"{where}.special_ids")
    values["candidate_pieces"] = _pieces(field_at(raw, "candidate_pieces", where, dict), f"{where}.candidate_pieces")
    optional = {f.name: f for f in dataclasses.fields(TurnRecord) if f.name not in values}
    for name, f in optional.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise Damaged(f"{where}.{name} is missing")
            continue  # an older file: the field's default
        value = raw[name]
        at = f"{where}.{name}"
        if name == "segments":
            values[name] = None if value is None else _segments(value, at, n_tokens)
        elif name in ("dropped_messages", "truncated_tokens"):
            values[name] = int_at(value, at, 0, None)
        elif name == "forced":
            values[name] = int_at(value, at, 0, n_steps)
        elif name in ("system_handling",):
            values[name] = None if value is None else typed_at(value, at, str)
        elif name == "dtype":
            values[name] = typed_at(value, at, str)
        elif name == "warnings":
            values[name] = strings_at(typed_at(value, at, list), at)
        elif name == "steering_kl":
            kl = None if value is None else typed_at(value, at, dict)
            values[name] = None if kl is None else array_at(kl, at, kind="f", shape=(n_steps,))
        elif name in ("probes", "timings"):
            values[name] = typed_at(decode(typed_at(value, at, dict), at), at, dict)
            if name == "probes":
                _check_probes(values[name], at, n_tokens)
        elif name in ("steering", "branch"):
            values[name] = None if value is None else typed_at(decode(typed_at(value, at, dict), at), at, dict)
        else:  # a field this reader has no rule for: read back as it was written
            values[name] = decode(value, at)
    return TurnRecord(**values)


def _steps(raw: dict, where: str, n_steps: int) -> StepDistributions:
    arrays = {}
    for name in StepDistributions.__dataclass_fields__:
        kind = "iu" if name.endswith("_ids") else "f"
        ndim = 1 if name.startswith("chosen") else 2
        arrays[name] = array_at(field_at(raw, name, where, dict), f"{where}.{name}", kind=kind, ndim=ndim)
        if arrays[name].shape[0] != n_steps:
            raise Damaged(
                f"{where}.{name} has {arrays[name].shape[0]} steps but the reply has {n_steps} tokens "
                "(token_ids minus n_prompt): one step per reply token"
            )
    for ids, probs in (("raw_ids", "raw_probs"), ("warped_ids", "warped_probs")):
        if arrays[ids].shape != arrays[probs].shape:
            raise Damaged(f"{where}.{ids} has shape {arrays[ids].shape} but {probs} has {arrays[probs].shape}")
    return StepDistributions(**arrays)


def _segments(raw: Any, where: str, n_tokens: int) -> Segments:
    raw = typed_at(raw, where, dict)
    names = strings_at(field_at(raw, "names", where, list), f"{where}.names")
    of_token = array_at(field_at(raw, "of_token", where, dict), f"{where}.of_token", kind="iu", shape=(n_tokens,))
    if of_token.size and (of_token.min() < 0 or of_token.max() >= len(names)):
        raise Damaged(f"{where}.of_token must index into its {len(names)} names")
    return Segments(names, of_token)


def _params(raw: dict, where: str) -> dict[str, Any]:
    params = typed_at(decode(raw, where), where, dict)
    numbers = {"temperature": float, "top_p": float, "repetition_penalty": float}
    for name in ("temperature", "top_k", "top_p", "max_new_tokens", "seed"):
        if name not in params:
            raise Damaged(f"{where}.{name} is missing")
    for name, value in params.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if name in numbers and not ok:
            raise Damaged(f"{where}.{name} must be a number, but is {value!r}")
        if name in ("top_k", "max_new_tokens") or (name == "seed" and value is not None):
            int_at(value, f"{where}.{name}", 0, None)
    return params


def _pieces(raw: dict, where: str) -> dict[int, str]:
    pieces = {}
    for key, piece in raw.items():
        if not (key.isdigit() and key.isascii()):
            raise Damaged(f"{where} keys must be token ids, but one is {key!r}")
        pieces[int(key)] = typed_at(piece, f"{where}[{key}]", str)
    return pieces


def _check_probes(probes: dict, where: str, n_tokens: int) -> None:
    for name, probe in probes.items():
        if isinstance(probe, SparseActivations):
            at = f"{where}.{name}"
            if probe.top_ids.ndim != 2 or probe.top_ids.shape[0] != n_tokens:
                shape = probe.top_ids.shape
                raise Damaged(f"{at}.top_ids has shape {shape}; expected ({n_tokens}, k), a row per token")
            if probe.top_values.shape != probe.top_ids.shape:
                shapes = probe.top_values.shape, probe.top_ids.shape
                raise Damaged(f"{at}.top_values has shape {shapes[0]}, unlike top_ids {shapes[1]}")
            if probe.feature_values.shape != (n_tokens,):
                raise Damaged(f"{at}.feature_values has shape {probe.feature_values.shape}; expected ({n_tokens},)")
