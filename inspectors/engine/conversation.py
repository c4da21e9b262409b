"""A multi-turn conversation: the per-session state of a chat (messages and one record per turn)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from inspectors.engine.capture import LayerProbe, TurnProgress, stream_turn
from inspectors.engine.loading import LoadedModel
from inspectors.engine.record import TurnRecord
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.templating import flatten_content
from inspectors.errors import ConversationError


@dataclass
class Conversation:
    """Messages alternate user/assistant; `records[i]` is the capture of the i-th model reply.

    A turn is appended only when its reply is complete, so a failure mid-generation leaves the
    conversation exactly as it was.
    """

    system_prompt: str | None = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    records: list[TurnRecord] = field(default_factory=list)

    def request(self, user_message: object) -> list[dict[str, str]]:
        """The messages to send for a new user message (system prompt first, if any)."""
        text = flatten_content(user_message)
        if not text.strip():
            raise ConversationError("The message is empty: type something to send.")
        system_prompt = self.system_prompt or ""
        system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
        return [*system, *self.messages, {"role": "user", "content": text}]

    def stream(
        self,
        lm: LoadedModel,
        user_message: object,
        params: SamplingParams | None = None,
        *,
        probes: Sequence[LayerProbe] = (),
        stop_event: threading.Event | None = None,
    ) -> Iterator[TurnProgress]:
        request = self.request(user_message)
        for progress in stream_turn(lm, request, params, probes=probes, stop_event=stop_event):
            if progress.record is not None:
                self.append(request[-1]["content"], progress.record)
            yield progress

    def append(self, user_message: str, record: TurnRecord) -> None:
        """Add a finished turn: the user's message, the model's reply and the turn's record."""
        self.messages.extend(
            [{"role": "user", "content": user_message}, {"role": "assistant", "content": record.reply_text}]
        )
        self.records.append(record)

    def send(self, lm: LoadedModel, user_message: object, params: SamplingParams | None = None, **kwargs) -> TurnRecord:
        """One complete turn; returns its record."""
        for _ in self.stream(lm, user_message, params, **kwargs):
            pass
        return self.records[-1]

    def undo(self) -> None:
        """Remove the last user message and the model's reply to it."""
        del self.messages[-2:]
        del self.records[-1:]
