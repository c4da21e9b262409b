"""Per-browser-session state. Nothing per user lives on module globals except stop flags keyed by session."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from inspectors.engine.conversation import Conversation
from inspectors.engine.record import TurnRecord
from inspectors.errors import InvalidParameterError


@dataclass
class Session:
    model_id: str
    conversation: Conversation = field(default_factory=Conversation)
    sae_layer: int | None = None  # the SAE layer this session looks at; None: the model's default
    sae_feature: int | None = None  # the SAE feature this session looks at; None: the configured default

    def record(self, turn: int | None) -> TurnRecord | None:
        """The record of turn `turn` (0-based), or the latest when None; None before the first reply."""
        records = self.conversation.records
        if not records:
            return None
        if turn is None:
            return records[-1]
        if not 0 <= turn < len(records):
            raise InvalidParameterError("turn", f"must be in [0, {len(records) - 1}]", turn)
        return records[turn]

    def turn_choices(self) -> list[tuple[str, int]]:
        """Dropdown entries: 'Turn 2: <start of the user message>' -> index."""
        choices = []
        for i, record in enumerate(self.conversation.records):
            text = record.messages[-1]["content"].strip().replace("\n", " ")
            choices.append((f"Turn {i + 1}: {text[:40]}{'…' if len(text) > 40 else ''}", i))
        return choices


class StopFlags:
    """One threading.Event per browser session, so Stop ends that session's reply and nobody else's."""

    def __init__(self):
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def fresh(self, session_hash: str) -> threading.Event:
        with self._lock:
            event = self._events[session_hash] = threading.Event()
            return event

    def stop(self, session_hash: str) -> None:
        with self._lock:
            event = self._events.get(session_hash)
        if event is not None:
            event.set()

    def discard(self, session_hash: str) -> None:
        with self._lock:
            self._events.pop(session_hash, None)
