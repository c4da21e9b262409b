"""Diversity of a set of generated sentences: self-BLEU (course HW3 section 4) and distinct-n.

Both split sentences on whitespace, as the course did, so the numbers are comparable with its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.util import ngrams

from inspectors.errors import InvalidParameterError

UNIFORM_4GRAM = (0.25, 0.25, 0.25, 0.25)
# nltk's SmoothingFunction methods (Chen & Cherry 2014); method0 is nltk's own "no smoothing".
SMOOTHING_METHODS = tuple(f"method{i}" for i in range(8))


def smoothing_function(smoothing: str | None):
    """nltk's smoothing function named `smoothing` (None: no smoothing, as the course)."""
    if smoothing is None:
        return None
    if smoothing not in SMOOTHING_METHODS:
        raise InvalidParameterError(
            "smoothing", f"must be null (no smoothing, as the course) or one of {list(SMOOTHING_METHODS)}", smoothing
        )
    return getattr(SmoothingFunction(), smoothing)


def _check_sentences(sentences: Sequence[str]) -> list[str]:
    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise InvalidParameterError("sentences", "must be a list of strings", sentences)
    if len(sentences) < 2:
        raise InvalidParameterError("sentences", "needs at least 2 sentences to compare with each other", sentences)
    return list(sentences)


def self_bleu_per_sentence(sentences: Sequence[str], smoothing: str | None = None) -> list[float]:
    """For each sentence, the mean of nltk `sentence_bleu([other.split()], sentence.split())` over every
    other sentence (uniform 4-gram weights): how much of it the others already say. Higher = less diverse.

    Without smoothing, a pair sharing no n-gram of some order scores (practically) 0, which is what BLEU
    means there; nltk then warns once per pair, which is silenced here rather than repeated hundreds of times.
    """
    sentences = _check_sentences(sentences)
    method = smoothing_function(smoothing)
    split = [s.split() for s in sentences]
    scores = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*The hypothesis contains 0 counts", category=UserWarning)
        for i, hypothesis in enumerate(split):
            others = [
                sentence_bleu([reference], hypothesis, weights=UNIFORM_4GRAM, smoothing_function=method)
                for j, reference in enumerate(split)
                if j != i
            ]
            scores.append(float(sum(others) / len(others)))
    return scores


def self_bleu(sentences: Sequence[str], smoothing: str | None = None) -> float:
    """Course self-BLEU: `self_bleu_per_sentence` averaged over the sentences, in [0, 1]."""
    per_sentence = self_bleu_per_sentence(sentences, smoothing)
    return float(sum(per_sentence) / len(per_sentence))


def distinct_n(sentences: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / all n-grams, pooled over the sentences (an n-gram never
    spans two sentences). 1 = no n-gram repeats anywhere; 0 when there is no n-gram at all."""
    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise InvalidParameterError("sentences", "must be a list of strings", sentences)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError("n", "must be an integer >= 1", n)
    grams = [gram for sentence in sentences for gram in ngrams(sentence.split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0
