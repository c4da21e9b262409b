"""Token tables: every token of a turn with its id, its piece and its part (template / prompt / reply)."""

from __future__ import annotations

import html
from typing import Any

from inspectors.engine.record import TurnRecord

TEMPLATE, PROMPT, REPLY = "template", "prompt", "reply"
PART_COLORS = {TEMPLATE: "#c7d2fe", PROMPT: "#e5e7eb", REPLY: "#bbf7d0"}

_WHITESPACE = str.maketrans({"▁": "␣", " ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def show_whitespace(piece: str) -> str:
    """A tokenizer piece with its whitespace made visible ('▁the' -> '␣the', '\\n' -> '↵')."""
    return piece.translate(_WHITESPACE)


TURN_STARTS = {"<start_of_turn>", "<|im_start|>", "<|start_header_id|>", "<|end_header_id|>"}  # Gemma, ChatML, Llama 3
TURN_ENDS = {"<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>"}
ROLES = {"user", "model", "assistant", "system"}


def token_parts(record: TurnRecord) -> list[str]:
    """The part of each token, by id: special tokens and the role line after a turn's start marker are
    template; the rest is prompt (the messages' text) or reply (generated)."""
    special = set(record.special_ids)
    parts = []
    after_start = 0  # tokens of the 'user\n' / 'model\n' role line still to come
    for i, (token_id, piece) in enumerate(zip(record.token_ids.tolist(), record.tokens, strict=True)):
        if token_id in special:
            parts.append(TEMPLATE)
            after_start = 2 if piece in TURN_STARTS else 0
            if piece in TURN_ENDS:
                after_start = 1  # the newline that closes the turn
            continue
        if after_start and (piece.strip("▁ ") in ROLES or "\n" in piece):
            parts.append(TEMPLATE)
            after_start = after_start - 1 if "\n" not in piece else 0
            continue
        after_start = 0
        parts.append(PROMPT if i < record.n_prompt else REPLY)
    return parts


def token_rows(record: TurnRecord) -> list[list[Any]]:
    """[position, id, piece with visible whitespace, part] for every token."""
    return [
        [i, int(token_id), show_whitespace(piece), part]
        for i, (token_id, piece, part) in enumerate(
            zip(record.token_ids.tolist(), record.tokens, token_parts(record), strict=True)
        )
    ]


def highlighted_tokens(record: TurnRecord) -> list[tuple[str, str]]:
    """(piece, part) pairs for a Gradio HighlightedText, one per token, whitespace visible."""
    return [(show_whitespace(piece), part) for piece, part in zip(record.tokens, token_parts(record), strict=True)]


def reply_tokens(record: TurnRecord) -> list[tuple[str, float]]:
    """The reply's tokens, each shaded by the probability it was generated with (raw softmax), for
    choosing a step by clicking a token: a faint token was an unlikely pick."""
    pieces = record.tokens[record.n_prompt :]
    return [(show_whitespace(p), float(q)) for p, q in zip(pieces, record.steps.chosen_raw_prob, strict=True)]


def tokenize_rows(ids: list[int], pieces: list[str]) -> list[list[Any]]:
    """Free-text tokenizer: [position, id, piece] rows, whitespace visible."""
    return [[i, int(t), show_whitespace(p)] for i, (t, p) in enumerate(zip(ids, pieces, strict=True))]


def tokens_html(record: TurnRecord) -> str:
    """All tokens as coloured chips with id and position on hover."""
    chips = []
    for i, (token_id, piece, part) in enumerate(
        zip(record.token_ids.tolist(), record.tokens, token_parts(record), strict=True)
    ):
        chips.append(
            f'<span class="gi-tok gi-{part}" style="background:{PART_COLORS[part]}" '
            f'title="position {i} · id {token_id} · {part}">{html.escape(show_whitespace(piece))}</span>'
        )
    return '<div class="gi-tokens">' + "".join(chips) + "</div>"
