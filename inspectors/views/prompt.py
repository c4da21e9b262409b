"""The exact templated prompt, with special tokens visibly marked, and what is off about it."""

from __future__ import annotations

import html

from inspectors.engine.record import TurnRecord


def prompt_warnings(record: TurnRecord) -> list[str]:
    """What is off about the prompt: trimming, system folding, a doubled or missing `<bos>`, control tokens
    typed as text (found when the turn was captured, from its token ids and the model's tokenizer)."""
    return list(record.warnings)


def prompt_html(record: TurnRecord) -> str:
    """The prompt token by token: special tokens as marked chips, text as is (escaped), line breaks kept."""
    special = set(record.special_ids)
    parts = []
    for token_id, piece in zip(record.prompt_ids.tolist(), record.tokens[: record.n_prompt], strict=True):
        if token_id in special:
            parts.append(f'<span class="gi-special" title="special token, id {token_id}">{html.escape(piece)}</span>')
        else:
            parts.append(html.escape(piece.replace("▁", " ")))
    return '<pre class="gi-prompt">' + "".join(parts) + "</pre>"
