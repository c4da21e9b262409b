"""The exact templated prompt, with special tokens visibly marked, and what is off about it."""

from __future__ import annotations

import html

import numpy as np

from inspectors.engine.record import TurnRecord


def prompt_warnings(record: TurnRecord, bos_id: int = 2) -> list[str]:
    """The record's own warnings (trimming, system folding, <bos>) plus checks made on its ids."""
    warnings = list(record.warnings)
    n_bos = int(np.sum(record.prompt_ids == bos_id))
    if n_bos > 1 and not any("<bos>" in w for w in warnings):
        warnings.append(f"The prompt has {n_bos} <bos> tokens; Gemma expects exactly one.")
    return warnings


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
