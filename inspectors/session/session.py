"""One user's session: the one door from the UI or the API into the engine.

A Session owns what belongs to one user: the conversation and the record of each turn, the model it
chats with, its SAE layer and feature, its stop flag and the tab it looks at. The turn to inspect is
named in every call (empty: the latest), so no hidden "current turn" can disagree with the picker.
It takes raw values (anything a widget or an API client sends), checks them in one place
(`inspectors.inputs`) and calls the engine only through `inspectors.engine.calls`, whose functions take
and return plain data, so on a ZeroGPU Space they run in a GPU worker while the session, here in the
server process, appends what comes back. A failure is a message; the conversation is never lost.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from inspectors.engine import calls
from inspectors.engine.conversation import Conversation
from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.record import TurnRecord
from inspectors.engine.sampling import MAX_SEED, MAX_TEMPERATURE, SamplingParams
from inspectors.engine.stop import StopSignal
from inspectors.errors import InspectorError, InvalidParameterError
from inspectors.inputs import (
    MAX_MESSAGE_CHARS,
    as_float,
    as_index,
    as_int,
    as_optional_int,
    as_text,
    means_newest,
)
from inspectors.session import compare as compare_mod
from inspectors.session import explain, share, tabs, whatif
from inspectors.session.shared import Shared

log = logging.getLogger(__name__)
T = TypeVar("T")

TABS = ("prompt", "tokens", "next_token", "attention", "layers", "why", "sae")
BUSY = "A reply is still being generated in this session: wait for it, or press Stop."


@dataclass
class ChatUpdate:
    """What the chat pane shows after (or during) an action."""

    messages: list[dict[str, str]]  # the chat pane's messages, user/assistant alternating
    status: str  # markdown under the chat: the turn's summary, or what went wrong and what to do
    box: str  # what the message box holds: emptied after a reply, the message kept after a failure
    done: bool = True  # False while a reply streams
    ok: bool = True  # False when the action failed (nothing changed)

    def api(self) -> dict[str, Any]:
        return {"messages": self.messages, "status": self.status, "message_box": self.box, "done": self.done}


@dataclass
class ModelSwitch:
    ok: bool
    status: str
    model_id: str  # the model the session uses now (the old one after a failure)


class Session:
    def __init__(self, shared: Shared, session_id: str = "local"):
        self.shared = shared
        self.id = session_id
        self._model_id: str | None = None  # None: the app's default (the configured model, or its fallback)
        self.conversation = Conversation()
        self.sae_layer: int | None = None  # None: the model's default SAE layer
        self.sae_feature: int | None = None  # None: the SAE's default feature
        self.visible_tab = TABS[0]
        self.last_used = time.monotonic()
        self._stop = StopSignal.new()
        self._stopped_at = -math.inf  # when Stop was last pressed (time.monotonic)
        self._busy = False
        self._closed = False
        self._lock = threading.Lock()

    # ---- state ----------------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._model_id or self.shared.default_model_id()

    @model_id.setter
    def model_id(self, model_id: str) -> None:
        self._model_id = model_id

    @property
    def records(self) -> list[TurnRecord]:
        return self.conversation.records

    def model(self, progress: ProgressFn | None = None) -> LoadedModel:
        return self.shared.model(self.model_id, progress)

    def turn(self, turn: Any = None) -> int | None:
        """A 0-based turn index from a raw value (None, "" or NEWEST: the latest), checked against this
        conversation."""
        if means_newest(turn):
            return len(self.records) - 1 if self.records else None
        return as_index("turn", turn, len(self.records), "this conversation")

    def record(self, turn: Any = None) -> tuple[int | None, TurnRecord | None]:
        index = self.turn(turn)
        return index, (None if index is None else self.records[index])

    def turn_choices(self) -> list[tuple[str, int]]:
        """Turn-picker entries, 'Turn 2 · gemma-3-270m: <start of the user message>' -> index."""
        choices = []
        for i, record in enumerate(self.records):
            text = record.messages[-1]["content"].strip().replace("\n", " ")
            model = record.model_id.rstrip("/").rsplit("/", 1)[-1]
            choices.append((f"Turn {i + 1} · {model}: {text[:40]}{'…' if len(text) > 40 else ''}", i))
        return choices

    def show_tab(self, tab: str) -> str:
        if tab not in TABS:
            raise InvalidParameterError("tab", f"must be one of {list(TABS)}", tab)
        self.visible_tab = tab
        return tab

    def chat_messages(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.conversation.messages]

    def _update(self, status: str, box: str = "", ok: bool = True) -> ChatUpdate:
        return ChatUpdate(self.chat_messages(), status, box, ok=ok)

    # ---- chat -----------------------------------------------------------------------------------------
    def send(
        self,
        message: Any,
        system_prompt: Any = "",
        temperature: Any = 0.0,
        top_k: Any = 0,
        top_p: Any = 1.0,
        max_new_tokens: Any = 64,
        seed: Any = None,
        *,
        submitted_at: float | None = None,
    ) -> Iterator[ChatUpdate]:
        """Stream a reply to `message`. `submitted_at` (time.monotonic) is when the user asked: a Stop
        pressed after it and before the reply started stops the reply before it starts."""
        kept = message if isinstance(message, str) else ""
        yield from self.exclusive(
            "chat turn",
            lambda: self._reply(message, system_prompt, temperature, top_k, top_p, max_new_tokens, seed),
            lambda status: self._update(status, kept, ok=False),
            submitted_at,
            "Stopped before the reply started; your message is back in the box.",
        )

    def exclusive(
        self,
        action: str,
        work: Callable[[], Iterator[T]],
        refused: Callable[[str], T],
        submitted_at: float | None = None,
        stopped: str = "",
    ) -> Iterator[T]:
        """Run `work` as this session's one model action at a time (chat, retry, branch, steer, re-run),
        streaming what it yields. Whatever goes wrong comes back as one update made by `refused(status)`,
        and the conversation is kept: the session busy; a Stop pressed after `submitted_at`, before the work
        began (`stopped`); bad input; any other failure, which is logged."""
        if not self._begin():
            yield refused(f"⚠️ {BUSY}")
            return
        try:
            if submitted_at is not None and self._stopped_at >= submitted_at:
                yield refused(stopped)
                return
            yield from work()
        except InspectorError as err:
            log.info("session %s: %s refused: %s", self.id, action, err)
            yield refused(f"⚠️ {err}")
        except Exception as err:  # one user's failure must never break the app or lose the history
            log.exception("session %s: %s failed", self.id, action)
            yield refused(f"⚠️ Unexpected error ({type(err).__name__}: {err}). Your conversation is kept.")
        finally:
            self._end()

    def _reply(self, message, system_prompt, temperature, top_k, top_p, max_new_tokens, seed) -> Iterator[ChatUpdate]:
        text = as_text("message", message, max_chars=MAX_MESSAGE_CHARS)
        system = as_text("system_prompt", system_prompt, max_chars=MAX_MESSAGE_CHARS)
        params = sampling_params(temperature, top_k, top_p, max_new_tokens, seed)
        self.model()  # loads on first use; a failure is a message like any other
        self.conversation.system_prompt = system
        request = self.conversation.request(text)
        layer, feature = self._probe_choice()
        pending = [*self.chat_messages(), {"role": "user", "content": text}]
        self._stop.clear()
        stream = calls.stream_reply(self.shared.ref(self.model_id), request, params, self._stop, layer, feature)
        for progress in stream:
            if progress.record is None:
                reply = {"role": "assistant", "content": progress.reply_text}
                yield ChatUpdate([*pending, reply], "Generating…", "", done=False)
            else:
                self.conversation.append(request[-1]["content"], progress.record)
        yield self._update(turn_status(self.records))

    def _probe_choice(self) -> tuple[int | None, int | None]:
        """(SAE layer, feature) whose activations the new turn's record keeps, if the SAE is ready."""
        lsae, _ = self.shared.sae(self.model_id, self.sae_layer)
        if lsae is None:
            return None, None
        return self.sae_layer, self.feature_for(lsae)

    def feature_for(self, lsae: Any) -> int:
        """This session's feature, else the configured one, else the SAE's default (e.g. 10004 on Gemma Scope)."""
        for choice in (self.sae_feature, self.shared.settings.sae_feature, lsae.default_feature):
            if choice is not None and 0 <= choice < lsae.d_sae:
                return choice
        return 0

    def stop(self) -> str:
        """Stop this session's reply, streaming or still waiting in the queue."""
        self._stopped_at = time.monotonic()
        self._stop.set()
        return "Stopping…" if self._busy else "Stopped."

    def undo(self) -> ChatUpdate:
        """Remove the last exchange and put its user message back in the box."""
        if not self._begin():
            return self._update(f"⚠️ {BUSY}", ok=False)
        try:
            if not self.records:
                return self._update("Nothing to undo.", ok=False)
            last_user = self.conversation.messages[-2]["content"]
            self.conversation.undo()
            return self._update("Removed the last turn.", last_user)
        finally:
            self._end()

    def retry(self, system_prompt: Any = "", *controls: Any, **named: Any) -> Iterator[ChatUpdate]:
        """Regenerate the last reply (a new seed unless one is set). If that fails, the old reply is put back."""
        if self._busy:
            yield self._update(f"⚠️ {BUSY}", ok=False)
            return
        if not self.records:
            yield self._update("Nothing to retry yet.", ok=False)
            return
        kept_messages, kept_records = list(self.conversation.messages), list(self.records)
        message = self.undo().box
        last = None
        for last in self.send(message, system_prompt, *controls, **named):
            yield last
        if last is None or not last.ok:  # the new reply failed: put the old one back
            self.conversation.messages, self.conversation.records = kept_messages, kept_records
            yield self._update(last.status if last else "Retry failed.", "", ok=False)

    def clear(self) -> ChatUpdate:
        if not self._begin():
            return self._update(f"⚠️ {BUSY}", ok=False)
        try:
            self.conversation = Conversation(system_prompt=self.conversation.system_prompt)
            return self._update("Conversation cleared.")
        finally:
            self._end()

    def _begin(self) -> bool:
        with self._lock:
            if self._busy:
                return False
            self._busy = True
            self.last_used = time.monotonic()
            return True

    def _end(self) -> None:
        with self._lock:
            self._busy = False
            if self._closed:
                self._stop.clear()

    # ---- model ----------------------------------------------------------------------------------------
    def load_model(self, model_id: Any, progress: ProgressFn | None = None) -> ModelSwitch:
        """Switch this session to another model. The conversation is kept either way: earlier turns stay
        as the model that wrote them left them (each record names it), and the next reply comes from the
        new model, which reads the whole history with its own chat template."""
        if not self._begin():
            return ModelSwitch(False, f"⚠️ {BUSY}", self.model_id)
        try:
            wanted = self.shared.check_model_id(model_id)
            lm = self.shared.model(wanted, progress)
        except InspectorError as err:
            log.info("session %s: model load refused: %s", self.id, err)
            n = len(self.records)
            kept = f" Your conversation is kept ({n} turn{'s' if n != 1 else ''})." if n else ""
            return ModelSwitch(False, f"⚠️ {err} Still using {self.model_id}.{kept}", self.model_id)
        finally:
            self._end()
        previous, self.model_id = self.model_id, lm.model_id
        if previous != lm.model_id:  # another model's SAE: its own layers and features
            self.sae_layer = self.sae_feature = None
        if not self.records or previous == lm.model_id:
            return ModelSwitch(True, f"Loaded {lm.model_id}.", lm.model_id)
        return ModelSwitch(
            True,
            f"Loaded {lm.model_id}. Your conversation is kept: its {len(self.records)} turns stay as {previous} "
            f"wrote them (the turn picker names each turn's model), and the next reply comes from {lm.model_id}, "
            "which reads the whole history with its own chat template. Clear the chat to start afresh.",
            lm.model_id,
        )

    # ---- what the tabs show, searches, the free tokenizer and the labs (inspectors.session.tabs) ---------
    prompt_panel = tabs.prompt_panel
    tokens_panel = tabs.tokens_panel
    next_token_panel = tabs.next_token_panel
    attention_panel = tabs.attention_panel
    sae_panel = tabs.sae_panel
    search_panel = tabs.search_panel
    tokenize = tabs.tokenize
    lab_panel = tabs.lab_panel
    lens_panel = explain.lens_panel
    why_panel = explain.why_panel
    turn_attention_panel = explain.turn_attention_panel
    branch = whatif.branch
    steer = whatif.steer
    switch_branch = whatif.switch_branch
    branch_choices = whatif.branch_choices
    save = share.save
    open_saved = share.open_saved
    rerun = share.rerun
    compare = compare_mod.compare

    def retry_default_model(self, progress: ProgressFn | None = None) -> ModelSwitch:
        """Try the app's configured model again (after a token was added, say); on success this session
        uses it, and its conversation is kept as with any switch."""
        status = self.shared.retry_default(progress)
        if self.shared.notice:
            return ModelSwitch(False, status, self.model_id)
        return self.load_model(self.shared.settings.model_id, progress)

    # ---- end ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """End the session: a reply still running stops at its next token, and the stop flag's file goes."""
        with self._lock:
            self._closed = True
            if self._busy:
                self._stop.set()  # removed by _end once the reply has stopped
            else:
                self._stop.clear()


def sampling_params(temperature: Any, top_k: Any, top_p: Any, max_new_tokens: Any, seed: Any) -> SamplingParams:
    """SamplingParams from raw values; every error names the parameter, its range and the value."""
    return SamplingParams(
        temperature=as_float("temperature", temperature, 0.0, MAX_TEMPERATURE),
        top_k=as_int("top_k", top_k, 0),
        top_p=as_float("top_p", top_p, 0.0, 1.0),
        max_new_tokens=as_int("max_new_tokens", max_new_tokens, 1),
        seed=as_optional_int("seed", seed, 0, MAX_SEED),
    )


def turn_status(records: list[TurnRecord]) -> str:
    record = records[-1]
    status = (
        f"Turn {len(records)}: {record.steps.n_steps} tokens from {record.model_id}, stopped by "
        f"{record.stop_reason}, seed {record.params['seed']}"
    )
    return status + "".join(f"  \n⚠️ {w}" for w in record.warnings)
