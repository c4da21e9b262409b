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
from collections import Counter, defaultdict
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
        # Inverted indexes, built once: a query costs a scan of the distinct token words plus its postings,
        # not a pass over every feature's every context.
        self._token_postings: dict[str, set[tuple[int, int]]] = defaultdict(set)  # token word -> (card, context)
        self._nearby_postings: dict[str, set[tuple[int, int]]] = defaultdict(set)  # context word -> (card, context)
        for i, card in enumerate(self.cards):
            for j, c in enumerate(card.contexts):
                for word in _words(c.token):
                    self._token_postings[word].add((i, j))
                for word in set(_words(c.left + c.token + c.right)):
                    self._nearby_postings[word].add((i, j))

    @classmethod
    def load(cls, path: str | Path) -> FeatureIndex:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return cls(json.load(f))

    def __len__(self) -> int:
        return len(self.cards)

    def card(self, feature: int) -> FeatureCard:
        return self.cards[feature]

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """Features ranked by how strongly their top contexts fire on (or near) the query's words.

        A context scores TOKEN_HIT per query word its token matches (see `_matches`), else NEARBY_HIT per
        word in its surrounding text, times its activation relative to the feature's maximum; a feature's
        score is the mean over its contexts and the query's words."""
        words = _words(query)
        if not words:
            return []
        matched: dict[tuple[int, int], float] = defaultdict(float)  # (card, context) -> hits of the query
        for word, count in Counter(words).items():
            on_token = set().union(*(p for t, p in self._token_postings.items() if _matches(word, [t])))
            for key in on_token:
                matched[key] += count * TOKEN_HIT
            for key in self._nearby_postings.get(word, set()) - on_token:
                matched[key] += count * NEARBY_HIT
        by_card: dict[int, list[tuple[float, int]]] = defaultdict(list)  # card -> (score, context index)
        for (i, j), hits in matched.items():
            card = self.cards[i]
            weight = card.contexts[j].act / card.max_act if card.max_act > 0 else 0.0
            if weight * hits > 0:
                by_card[i].append((weight * hits, j))
        results = []
        for i, scored in by_card.items():
            card = self.cards[i]
            best = min(scored, key=lambda item: (-item[0], item[1]))[1]  # the strongest; the first of equals
            total = sum(value for value, _ in scored)
            n = len(words) * max(1, len(card.contexts))
            results.append(SearchHit(card.feature, total / n, card.contexts[best]))
        results.sort(key=lambda hit: (-hit.score, hit.feature))
        return results[:limit]


@functools.cache
def index_for(sae_dir: str) -> FeatureIndex | None:
    """The shipped contexts next to an SAE's weights, or None when it has none (e.g. Gemma Scope)."""
    path = Path(sae_dir) / CONTEXTS_FILE
    return FeatureIndex.load(path) if path.is_file() else None
