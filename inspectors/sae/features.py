"""Offline feature cards and word search for SAEs that ship their top activating contexts.

Gemma Scope features are explained on Neuronpedia; the project's own SAE has no such page, so it
ships each feature's top contexts from its training corpus (contexts.json.gz, written by
`python -m inspectors.sae.train`). Searching "travel" ranks features whose top contexts fire on a
token containing the word, then those with the word nearby.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

CONTEXTS_FILE = "contexts.json.gz"
_WORD = re.compile(r"[a-z0-9]+")
TOKEN_HIT = 1.0  # the word is (part of) the token the feature fired on
NEARBY_HIT = 0.25  # the word is in the context around that token


@dataclass(frozen=True)
class Context:
    left: str
    token: str
    right: str
    act: float


@dataclass(frozen=True)
class FeatureCard:
    feature: int
    density: float  # fraction of training tokens on which the feature fires
    max_act: float
    contexts: tuple[Context, ...]


@dataclass(frozen=True)
class SearchHit:
    feature: int
    score: float
    example: Context | None


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _matches(word: str, token_words: list[str]) -> bool:
    # "travel" matches the tokens "travel", "travelling" and the piece "trav" of a split word
    return any(word in t or (len(t) >= 4 and word.startswith(t)) for t in token_words)


class FeatureIndex:
    def __init__(self, data: dict):
        self.cards = tuple(
            FeatureCard(
                feature=i,
                density=float(entry["density"]),
                max_act=float(entry["max"]),
                contexts=tuple(Context(**c) for c in entry["contexts"]),
            )
            for i, entry in enumerate(data["features"])
        )
        self._token_words = [[_words(c.token) for c in card.contexts] for card in self.cards]
        self._nearby_words = [[set(_words(c.left + c.token + c.right)) for c in card.contexts] for card in self.cards]

    @classmethod
    def load(cls, path: str | Path) -> FeatureIndex:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return cls(json.load(f))

    def __len__(self) -> int:
        return len(self.cards)

    def card(self, feature: int) -> FeatureCard:
        return self.cards[feature]

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """Features ranked by how strongly their top contexts fire on (or near) the query's words."""
        words = _words(query)
        if not words:
            return []
        hits = []
        for card, token_words, nearby in zip(self.cards, self._token_words, self._nearby_words, strict=True):
            score, best, best_context = 0.0, 0.0, None
            for context, tokens, around in zip(card.contexts, token_words, nearby, strict=True):
                weight = context.act / card.max_act if card.max_act > 0 else 0.0
                matched = sum(TOKEN_HIT if _matches(w, tokens) else NEARBY_HIT if w in around else 0.0 for w in words)
                score += weight * matched
                if weight * matched > best:
                    best, best_context = weight * matched, context
            if score > 0:
                hits.append(SearchHit(card.feature, score / (len(words) * max(1, len(card.contexts))), best_context))
        hits.sort(key=lambda hit: (-hit.score, hit.feature))
        return hits[:limit]


@functools.cache
def index_for(sae_dir: str) -> FeatureIndex | None:
    """The shipped contexts next to an SAE's weights, or None when it has none (e.g. Gemma Scope)."""
    path = Path(sae_dir) / CONTEXTS_FILE
    return FeatureIndex.load(path) if path.is_file() else None
