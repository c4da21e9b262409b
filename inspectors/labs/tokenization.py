"""Lab 3 (HW3 section 3): a sentence's tokens and ids, as the course listed them.

`encode(sentence, add_special_tokens=False)` and `convert_ids_to_tokens`: no `<bos>`, and each token is
the tokenizer's own piece (`▁` marks a leading space in SentencePiece vocabularies such as Gemma's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.labs.generation import check_text


@dataclass
class TokenizationResult:
    model_id: str
    sentence: str
    ids: list[int]
    tokens: list[str]  # tokenizer pieces, one per id
    pieces: list[str]  # each id decoded on its own: the text it stands for

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run(lm: LoadedModel, *, sentence: str, progress: ProgressFn | None = None) -> TokenizationResult:
    """The tokens of `sentence`, without special tokens."""
    check_text("sentence", sentence)
    tokenizer = lm.tokenizer
    ids = [int(i) for i in tokenizer.encode(sentence, add_special_tokens=False)]
    return TokenizationResult(
        model_id=lm.model_id,
        sentence=sentence,
        ids=ids,
        tokens=tokenizer.convert_ids_to_tokens(ids),
        pieces=[tokenizer.decode([i]) for i in ids],
    )
