"""Chat event handlers: streamed replies into a Gradio 6 Chatbot, with per-session Conversation state."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from inspectors.conversation import Conversation
from inspectors.errors import InspectorError
from inspectors.loading import LoadedModel
from inspectors.sampling import coerce_params

log = logging.getLogger(__name__)


def chat_history(conversation: Conversation) -> list[dict[str, str]]:
    """The Chatbot's messages: the conversation itself, which the next turn is templated from."""
    return [dict(m) for m in conversation.messages]


def respond(
    lm: LoadedModel,
    message: str,
    conversation: Conversation | None,
    system_prompt: str,
    temperature: float,
    top_k: float,
    top_p: float,
    max_new_tokens: float,
    seed: float | str | None,
) -> Iterator[tuple[list[dict[str, str]], Conversation, str]]:
    """Yields (chatbot messages, conversation, status) as the reply streams.

    Any failure leaves the conversation as it was and says why in the status line.
    """
    conversation = conversation or Conversation()
    conversation.system_prompt = system_prompt or ""
    history = chat_history(conversation)
    try:
        params = coerce_params(temperature, top_k, top_p, max_new_tokens, 1.0, seed)
        pending = [*history, {"role": "user", "content": message}]
        for progress in conversation.stream(lm, message, params):
            if progress.record is None:
                yield [*pending, {"role": "assistant", "content": progress.reply_text}], conversation, "Generating…"
        record = conversation.records[-1]
        status = f"{record.steps.n_steps} tokens, stopped by {record.stop_reason}, seed {record.params['seed']}"
        if record.warnings:
            status += " · " + " ".join(record.warnings)
        yield chat_history(conversation), conversation, status
    except InspectorError as err:
        yield history, conversation, f"⚠️ {err}"
    except Exception as err:  # one user's failure must not break the app; the history stays
        log.exception("chat turn failed")
        yield history, conversation, f"⚠️ Unexpected error ({type(err).__name__}: {err}). Your conversation is kept."


def latest_prompt(conversation: Conversation | None) -> str:
    if not conversation or not conversation.records:
        return ""
    return conversation.records[-1].prompt_text


def latest_tokens(conversation: Conversation | None) -> list[list[Any]]:
    if not conversation or not conversation.records:
        return []
    record = conversation.records[-1]
    return [
        [i, int(token_id), piece, "prompt" if i < record.n_prompt else "reply"]
        for i, (token_id, piece) in enumerate(zip(record.token_ids.tolist(), record.tokens, strict=True))
    ]
