"""Save and share: a turn (with the turns before it) or the whole conversation as JSON, to open again, or as a
standalone page; open a saved file; re-run a turn on the session's model with its own seed and settings.

Opening a file replaces the session's conversation (the status says how many turns were replaced): a saved
conversation has its own system prompt and branches, which do not graft onto another chat's. The opened
turns' stored views (prompt, tokens, next token, the SAE feature kept in the record) need no model run.

Bound to `Session` as methods (`session.save(...)`, `session.open_saved(file)`, `session.rerun(turn)`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inspectors.engine import saved
from inspectors.engine.loading import loaded_model_ids
from inspectors.engine.record import TurnRecord
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.steering import Steering
from inspectors.errors import InspectorError, InvalidParameterError, SavedFileError
from inspectors.inputs import as_choice
from inspectors.session.whatif import regenerate
from inspectors.views.share_html import share_page
from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.session.session import ChatUpdate, Session

log = logging.getLogger(__name__)

SAVE_WHAT = ("turn", "conversation")
SAVE_KINDS = ("json", "html")


@dataclass
class SavedFile:
    """A file written for download, or why none was."""

    ok: bool
    status: str  # markdown: what was saved and how to use it, or what went wrong
    path: str | None = None  # the file, alone in a fresh temporary folder, e.g. .../gemma-inspector-turn-3.json

    @property
    def filename(self) -> str | None:
        return Path(self.path).name if self.path else None

    def api(self) -> dict[str, Any]:
        # not "path": an API client takes a dict with a "path" for a file to download, and the server's
        # temporary folders are not served
        return {"ok": self.ok, "status": self.status, "server_path": self.path, "filename": self.filename}


# ---- save -----------------------------------------------------------------------------------------------
def save(session: Session, turn: Any = None, what: Any = "turn", kind: Any = "json") -> SavedFile:
    """Write turn `turn` (empty: the latest; the turns before it on its branch come along, as its prompt holds
    them) or the whole conversation (`what="conversation"`, every branch) as JSON or as a standalone page."""
    try:
        what = as_choice("what", what, SAVE_WHAT)
        kind = as_choice("kind", kind, SAVE_KINDS)
        if not session.records:
            return SavedFile(False, "Nothing to save yet: send a message first.")
        index = session.turn(turn) if what == "turn" else None
        conversation = session.conversation
        if kind == "json":
            text = saved.dumps(conversation, index)
        else:
            shown = conversation if index is None else saved.truncated(conversation, index)
            text = share_page(shown, saved_turn=index, app=saved.app_version(), saved_at=saved.timestamp())
        name = f"gemma-inspector-{'conversation' if index is None else f'turn-{index + 1}'}.{kind}"
        path = Path(tempfile.mkdtemp(prefix="gemma-inspector-")) / name
        path.write_text(text, encoding="utf-8")
    except InspectorError as err:
        log.info("session %s: save refused: %s", session.id, err)
        return SavedFile(False, f"⚠️ {err}")
    except Exception as err:  # one user's failure must never break the app
        log.exception("session %s: save failed", session.id)
        return SavedFile(False, f"⚠️ Saving failed unexpectedly ({type(err).__name__}: {err}).")
    return SavedFile(True, _saved_status(session, index, kind, name, path.stat().st_size), str(path))


def _saved_status(session: Session, index: int | None, kind: str, name: str, size: int) -> str:
    if index is None:
        n_branches = len(session.conversation.branches)
        what = f"The conversation ({_turns(len(session.records))} on this branch, {_branches(n_branches)} in all)"
    elif index:
        what = f"Turn {index + 1}, with the {_turns(index)} before it (its prompt),"
    else:
        what = "Turn 1"
    if kind == "json":
        return (
            f"{what} saved as `{name}` ({_size(size)}). Open it again with **Open saved**: the tabs show it "
            "without running the model, and **Re-run** reproduces a turn with its seed."
        )
    return f"{what} saved as a standalone page, `{name}` ({_size(size)}): it opens offline in any browser."


# ---- open -----------------------------------------------------------------------------------------------
def open_saved(session: Session, file: Any) -> ChatUpdate:
    """Open a saved .json file (a path, the file's bytes, or an upload object with `.path` or `.name`). Its
    conversation replaces this session's; a file that cannot be opened changes nothing and says why."""
    from inspectors.session.session import BUSY

    if not session._begin():
        return session._update(f"⚠️ {BUSY}", ok=False)
    try:
        data, name = _read(session, file)
        opened = saved.read_bytes(data, name)
        before = _summary(session.conversation)
        session.conversation = opened.conversation
        return session._update(_opened_status(session, opened, name, before))
    except InspectorError as err:
        log.info("session %s: open refused: %s", session.id, err)
        return session._update(f"⚠️ {err} Your conversation is unchanged.", ok=False)
    except Exception as err:
        log.exception("session %s: open failed", session.id)
        status = f"⚠️ Opening failed unexpectedly ({type(err).__name__}: {err}). Your conversation is unchanged."
        return session._update(status, ok=False)
    finally:
        session._end()


def _read(session: Session, file: Any) -> tuple[bytes, str]:
    """The bytes of an upload and a name for messages."""
    if file is None or (isinstance(file, str) and not file.strip()):
        raise InvalidParameterError("file", "is missing: choose a .json file saved by Gemma Inspector", file)
    if isinstance(file, (bytes, bytearray, memoryview)):
        return bytes(file), "the file"
    if isinstance(file, dict):
        path = file.get("path") or file.get("name")
    elif isinstance(file, (str, os.PathLike)):
        path = file
    else:
        path = getattr(file, "path", None) or getattr(file, "name", None)
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise InvalidParameterError("file", "must be a file's path or its bytes", type(file).__name__)
    path = Path(path)
    name = f"`{path.name}`"
    if session.shared.settings.hosted and not _uploaded(path):
        raise SavedFileError(f"{name} was not uploaded: on a hosted deployment only uploaded files are opened.")
    try:
        size = path.stat().st_size
        saved.check_size(size, name)
        if not path.is_file():
            raise SavedFileError(f"{name} is a folder, not a file: choose the .json file inside it.")
        return path.read_bytes(), name
    except FileNotFoundError:
        raise SavedFileError(f"{name} does not exist (was the upload finished?): choose the file again.") from None
    except OSError as err:
        raise SavedFileError(f"{name} cannot be read ({err.strerror or err}): choose the file again.") from None


def _uploaded(path: Path) -> bool:
    """Whether a path lies in a folder uploads land in (the temp folder, or Gradio's own)."""
    roots = [tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR", "")]
    resolved = path.resolve()
    return any(root and resolved.is_relative_to(Path(root).resolve()) for root in roots)


def _summary(conversation: Any) -> tuple[int, int]:
    """(turns, branches): every distinct turn record, and the branches."""
    return len({id(r) for b in conversation.branches for r in b.records}), len(conversation.branches)


def _opened_status(session: Session, opened: saved.Opened, name: str, before: tuple[int, int]) -> str:
    n_turns, n_branches = _summary(opened.conversation)
    what = f"turn {opened.turn + 1} of a conversation" if opened.saved == "turn" else "a conversation"
    origin = ", ".join(x for x in (opened.app, f"saved {opened.saved_at}" if opened.saved_at else "") if x)
    lines = [
        f"Opened {name}, {what}{f' ({origin})' if origin else ''}: {_turns(n_turns)} on {_branches(n_branches)}. "
        "The Prompt, Tokens and Next token tabs (and the SAE tab, for the feature the file keeps) show its turns as "
        f"saved, without running the model; **Re-run** regenerates a turn on {session.model_id} with its seed and "
        "settings."
    ]
    if before[0]:
        lines.append(
            f"It replaces the chat you had ({_turns(before[0])} on {_branches(before[1])}): save a chat first to "
            "keep it."
        )
    others = [m for m in opened.model_ids if m != session.model_id]
    for model_id in others:
        lines.append(f"Its turns come from {model_id}, not {session.model_id}: {_model_note(session, model_id)}")
    return "  \n".join(lines)


def _model_note(session: Session, model_id: str) -> str:
    """What the views that need a turn's own model (attention, layers, why, and the SAE tab, which opens that
    model's SAE) will do for another model's turns."""
    views = "the tabs that need a turn's own model (Attention, Layers, Why, SAE)"
    try:
        session.shared.check_model_id(model_id)
    except InspectorError as err:
        return f"{views} are unavailable for these turns ({err}); Prompt, Tokens and Next token work as saved."
    if model_id in loaded_model_ids():
        return f"{views} use that model, which is loaded here."
    return (
        f"{views} load that model first, if this machine can (if not, they say why; Prompt, Tokens and Next "
        "token work as saved). Load it with the model picker to re-run its turns on it."
    )


# ---- re-run ---------------------------------------------------------------------------------------------
def rerun(session: Session, turn: Any = None, *, submitted_at: float | None = None) -> Iterator[ChatUpdate]:
    """Regenerate turn `turn` (empty: the latest) on the session's model with the turn's own prompt messages,
    sampling settings and seed (and a branch's forced tokens). The result is a new branch, which the chat
    follows; the status says whether the reply's tokens are identical to the saved ones."""
    yield from session.exclusive(
        "re-run", lambda: _rerun(session, turn), lambda status: session._update(status, ok=False), submitted_at,
        "Stopped before the re-run started.",
    )  # fmt: skip


def _rerun(session: Session, turn: Any) -> Iterator[ChatUpdate]:
    index, record = session.record(turn)
    if record is None:
        raise InvalidParameterError("turn", "has nothing to re-run yet: send a message or open a saved file", turn)
    steering = _steering(record, index)
    session.model()  # loads on first use; a failure is a message like any other
    model_id = session.model_id
    unknown = sorted(set(record.params) - set(SamplingParams.__dataclass_fields__))
    if unknown:
        raise InspectorError(
            f"Turn {index + 1} was made with sampling settings this app does not have ({', '.join(unknown)}): "
            "it cannot be re-run exactly here. Update the app."
        )
    params = SamplingParams(**record.params)  # the seed actually used is in the record
    forced = record.reply_ids[: record.forced].tolist()  # a branch's given tokens
    new = yield from regenerate(session, index, model_id, record.messages, params, steering, forced, "Re-running…")
    new.branch = {**(record.branch or {}), "from_turn": index, "rerun": True, "saved_model_id": record.model_id}
    label = f"turn {index + 1} re-run on {_short(model_id)}"
    user_message = session.conversation.messages[2 * index]["content"]
    number = session.conversation.fork(index, user_message, new, label) + 1
    yield session._update(f"Branch {number}: {rerun_comparison(record, new, index)}")


def _steering(record: TurnRecord, index: int) -> Steering | None:
    """The vector a steered turn was made with, when its record keeps it; otherwise a steered turn cannot be
    reproduced and the message says what to do instead."""
    if not record.steering:
        return None
    vector = record.steering.get("vector")
    if isinstance(vector, np.ndarray) and isinstance(record.steering.get("layer"), int):
        return Steering(record.steering["layer"], vector, str(record.steering.get("description", "")))
    raise InspectorError(
        f"Turn {index + 1} was steered ({record.steering.get('description', 'a vector')}); a record keeps the "
        "steering's description, not its vector, so it cannot be re-run exactly: steer the turn again in the "
        "What if tab with the same settings."
    )


def rerun_comparison(saved_record: TurnRecord, new: TurnRecord, index: int) -> str:
    """Markdown: whether the re-run reply's tokens equal the saved ones, and how far the chosen tokens'
    probabilities moved (over the steps both replies share, before any difference)."""
    head = f"turn {index + 1} re-run on {new.model_id} with seed {new.params['seed']}"
    if saved_record.model_id != new.model_id:
        head += f" (saved from {saved_record.model_id})"
    if new.stop_reason == "stopped":
        head += f", stopped after {new.steps.n_steps} tokens"
    if not np.array_equal(saved_record.prompt_ids, new.prompt_ids):
        return (
            f"{head}. Its prompt tokenizes differently here ({new.n_prompt} tokens, saved {saved_record.n_prompt}): "
            "another model or chat template, so the replies cannot be compared token by token."
        )
    old_ids, new_ids = saved_record.reply_ids.tolist(), new.reply_ids.tolist()
    first = next((i for i, (a, b) in enumerate(zip(old_ids, new_ids, strict=False)) if a != b), None)
    shared = first if first is not None else min(len(old_ids), len(new_ids))
    drift = _max_drift(saved_record, new, shared)
    if first is None and len(old_ids) == len(new_ids):
        return (
            f"{head}: **identical** to the saved reply, all {len(new_ids)} tokens; the chosen tokens' "
            f"probabilities differ by at most {drift:.2g}."
        )
    if first is None:
        longer = "saved reply" if len(old_ids) > len(new_ids) else "re-run"
        return (
            f"{head}: the same first {shared} tokens, then the {longer} goes on ({len(old_ids)} saved, "
            f"{len(new_ids)} now); the chosen tokens' probabilities differ by at most {drift:.2g}."
        )
    was, now = (show_whitespace(r.tokens[r.n_prompt + first]) for r in (saved_record, new))
    return (
        f"{head}: **differs** from step {first} (saved {was!r}, id {old_ids[first]}; now {now!r}, id "
        f"{new_ids[first]}); before it the chosen tokens' probabilities differ by at most {drift:.2g}."
    )


def _max_drift(a: TurnRecord, b: TurnRecord, n_steps: int) -> float:
    if n_steps == 0:
        return 0.0
    diff = a.steps.chosen_raw_prob[:n_steps].astype(np.float64) - b.steps.chosen_raw_prob[:n_steps]
    return float(np.abs(diff).max())


def _short(model_id: str) -> str:
    return model_id.rstrip("/").rsplit("/", 1)[-1]


def _turns(n: int) -> str:
    return f"{n} turn{'s' if n != 1 else ''}"


def _branches(n: int) -> str:
    return f"{n} branch{'es' if n != 1 else ''}"


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{max(1, round(n_bytes / 1024))} KB"
