"""A multi-turn conversation: the per-session state of a chat (messages and one record per turn).

A conversation is a tree: a turn can be branched (its reply regenerated from a token, or steered), and
each branch is kept as the whole path from the first turn to its last, sharing the earlier turns' records
with the branch it came from (records are never copied). The chat continues from the active branch.
"""

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
class Branch:
    """One path through the conversation tree: its messages (user/assistant alternating) and a record per turn."""

    messages: list[dict[str, str]] = field(default_factory=list)
    records: list[TurnRecord] = field(default_factory=list)
    label: str = "main"  # where it came from, for the branch picker
    parent: int | None = None  # the branch it was made from
    from_turn: int | None = None  # the 0-based turn it replaces in its parent


@dataclass
class Conversation:
    """Messages alternate user/assistant; `records[i]` is the capture of the i-th model reply of the active
    branch.

    A turn is appended only when its reply is complete, so a failure mid-generation leaves the
    conversation exactly as it was.
    """

    system_prompt: str | None = ""
    branches: list[Branch] = field(default_factory=lambda: [Branch()])
    active: int = 0

    @property
    def branch(self) -> Branch:
        return self.branches[self.active]

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.branch.messages

    @messages.setter
    def messages(self, messages: list[dict[str, str]]) -> None:
        self.branch.messages = messages

    @property
    def records(self) -> list[TurnRecord]:
        return self.branch.records

    @records.setter
    def records(self, records: list[TurnRecord]) -> None:
        self.branch.records = records

    def fork(self, turn: int, user_message: str, record: TurnRecord, label: str) -> int:
        """A new branch: the active one's turns before `turn`, then `record` as turn `turn`. It becomes the
        active branch (the chat continues from it); the branch it came from is kept unchanged."""
        if not 0 <= turn <= len(self.records):
            raise ConversationError(f"Turn {turn + 1} does not exist: this branch has {len(self.records)} turns.")
        source = self.branch
        branch = Branch(
            messages=[*source.messages[: 2 * turn], {"role": "user", "content": user_message},
                      {"role": "assistant", "content": record.reply_text}],
            records=[*source.records[:turn], record],
            label=label, parent=self.active, from_turn=turn,
        )  # fmt: skip
        self.branches.append(branch)
        self.active = len(self.branches) - 1
        return self.active

    def switch(self, branch: int) -> None:
        if not 0 <= branch < len(self.branches):
            raise ConversationError(
                f"Branch {branch + 1} does not exist: this conversation has {len(self.branches)} branch(es)."
            )
        self.active = branch

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
