"""Token pieces a person can read, whatever the tokenizer.

SentencePiece tokenizers (Gemma) write a leading space as '▁', which the views show as '␣'. Byte-level BPE
tokenizers (SmolLM2, Llama 3, Qwen) write each byte as a printable stand-in ('Ġthe' for ' the', 'Ċ' for a
newline); their own decoder turns a piece back into its text. Special tokens stay as they are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspectors.engine.templating import special_token_texts


def _byte_level_decoder(tokenizer: Any) -> Any | None:
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return decoder if type(decoder).__name__ == "ByteLevel" else None


def readable_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """One string per id: the tokenizer's piece, decoded to its text where the tokenizer is byte-level (a
    piece holding part of a multi-byte character reads as '�')."""
    pieces = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    decoder = _byte_level_decoder(tokenizer)
    if decoder is None:
        return pieces
    special = special_token_texts(tokenizer)
    return [piece if piece in special else decoder.decode([piece]) for piece in pieces]
