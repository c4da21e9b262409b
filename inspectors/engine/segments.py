"""The chat segments of a turn, from its token ids and the chat format's control tokens (numpy only).

`<bos>`, the template's own tokens (turn markers and role lines), the system prompt, each earlier user
message, each earlier model reply, the current user message and the reply so far. Found by walking the
ids: a turn-start marker and its role word open a segment, a turn-end marker closes it. A system prompt that
the template folds into the first user turn (Gemma) has no marker of its own: it is the run of that turn's
first tokens equal to the system prompt's own tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BOS, TEMPLATE, SYSTEM = "<bos>", "template", "system prompt"
CURRENT_USER, REPLY = "current user message", "reply so far"
TURN_STARTS = {"<start_of_turn>", "<|im_start|>", "<|start_header_id|>"}  # Gemma, ChatML, Llama 3
ROLE_CLOSERS = {"<|end_header_id|>"}  # Llama 3 writes the role between two markers
TURN_ENDS = {"<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>"}
ROLES = {"user": "user", "model": "model", "assistant": "model", "system": "system"}


@dataclass
class Segments:
    names: list[str]  # in order of first appearance
    of_token: np.ndarray  # (T,) int32: index into `names` of each token's segment

    def positions(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.of_token == self.names.index(name))

    def counts(self) -> dict[str, int]:
        return {name: int((self.of_token == i).sum()) for i, name in enumerate(self.names)}


def _role(piece: str) -> str | None:
    return ROLES.get(piece.strip("▁ \n").lower())


def chat_segments(record: Any, system_ids: list[int] | None = None) -> Segments:
    """The segment of every token of `record` (a TurnRecord). `system_ids`: the system prompt's own token ids,
    to find it where the template folds it into the first user turn."""
    special = set(record.special_ids)
    tokens, ids, n_prompt = record.tokens, record.token_ids.tolist(), record.n_prompt
    labels: list[str] = []
    role, counts, expect_role, after_role = None, {"user": 0, "model": 0}, False, False
    for i, (token_id, piece) in enumerate(zip(ids, tokens, strict=True)):
        if i >= n_prompt:
            labels.append(REPLY)
            continue
        if token_id in special:
            if i == 0 and piece not in TURN_STARTS:
                labels.append(BOS)
                continue
            labels.append(TEMPLATE)
            if piece in TURN_STARTS:
                expect_role, role = True, None
            elif piece in TURN_ENDS:
                role = None
            elif piece in ROLE_CLOSERS:
                after_role = True
            continue
        if expect_role and _role(piece):
            role, expect_role, after_role = _role(piece), False, True
            if role in counts:
                counts[role] += 1
            labels.append(TEMPLATE)
            continue
        if after_role and piece.strip("▁ \n") == "" and "\n" in piece:  # the role line's newline
            after_role = False
            labels.append(TEMPLATE)
            continue
        expect_role = after_role = False
        if role == "system":
            labels.append(SYSTEM)
        elif role == "user":
            labels.append(f"user message {counts['user']}")
        elif role == "model":
            labels.append(f"model reply {counts['model']}")
        else:
            labels.append(TEMPLATE)  # text outside any turn: a template's own words
    labels = _current_user(labels, counts["user"])
    if system_ids:
        labels = _folded_system(labels, ids, system_ids)
    names = list(dict.fromkeys(labels))
    return Segments(names, np.asarray([names.index(label) for label in labels], dtype=np.int32))


def _current_user(labels: list[str], n_users: int) -> list[str]:
    last = f"user message {n_users}"
    return [CURRENT_USER if label == last else label for label in labels]


def _folded_system(labels: list[str], ids: list[int], system_ids: list[int]) -> list[str]:
    """Relabel as the system prompt the first user turn's opening tokens that are the system prompt's."""
    if SYSTEM in labels:
        return labels  # the template gave it a turn of its own
    users = (i for i, label in enumerate(labels) if label.startswith("user message") or label == CURRENT_USER)
    first_user = next(users, None)
    if first_user is None:
        return labels
    # Folded as "system\n\nuser", the system prompt's last token can merge with what follows it: take the
    # common run of ids, and accept it when at most that last token differs.
    n = 0
    while n < len(system_ids) and first_user + n < len(ids) and ids[first_user + n] == system_ids[n]:
        n += 1
    if n >= max(1, len(system_ids) - 1):
        labels = list(labels)
        labels[first_user : first_user + n] = [SYSTEM] * n
    return labels
