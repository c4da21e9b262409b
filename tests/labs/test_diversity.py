from __future__ import annotations

import warnings

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from inspectors.errors import InvalidParameterError
from inspectors.labs.diversity import distinct_n, self_bleu, self_bleu_per_sentence

A = "the cat sat on the mat"
B = "the cat sat on the hat"
C = "dogs bark loudly at night"
D = "the cat ran away"  # shares 1- and 2-grams with A and B but no 3-gram: nltk warns, BLEU ~ 0
SENTENCES = [A, B, C, D, "a cat sat on a mat today", "the cat sat on the mat"]


def nltk_self_bleu(sentences: list[str], smoothing_function=None) -> float:
    """The course's loop, written out independently."""
    totals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, sentence in enumerate(sentences):
            scores = [
                sentence_bleu([other.split()], sentence.split(), smoothing_function=smoothing_function)
                for j, other in enumerate(sentences)
                if j != i
            ]
            totals.append(sum(scores) / len(scores))
    return sum(totals) / len(totals)


def test_self_bleu_hand_checked():
    # A vs B (equal length, no brevity penalty): precisions 5/6, 4/5, 3/4, 2/3 -> BLEU = (1/3) ** (1/4);
    # C shares no word with either, so every pair with C scores 0.
    expected_pair = (1 / 3) ** 0.25
    assert self_bleu([A, B]) == pytest.approx(expected_pair, abs=1e-12)
    assert self_bleu_per_sentence([A, B, C]) == pytest.approx([expected_pair / 2, expected_pair / 2, 0.0], abs=1e-12)
    assert self_bleu([A, B, C]) == pytest.approx(expected_pair / 3, abs=1e-12)


def test_self_bleu_equals_nltk_and_stays_quiet():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = self_bleu(SENTENCES)
    assert ours == pytest.approx(nltk_self_bleu(SENTENCES), abs=1e-12)
    assert not [w for w in caught if "hypothesis contains 0 counts" in str(w.message)]


def test_identical_sentences_score_one_and_disjoint_zero():
    assert self_bleu([A, A, A]) == pytest.approx(1.0)
    assert self_bleu(["a b c d", "e f g h", "i j k l"]) == 0.0


def test_smoothing_is_nltks():
    smoothed = self_bleu(SENTENCES, smoothing="method1")
    assert smoothed == pytest.approx(nltk_self_bleu(SENTENCES, SmoothingFunction().method1), abs=1e-12)
    assert smoothed > self_bleu(SENTENCES)  # D's zero 3/4-gram counts now score above 0


@pytest.mark.parametrize(
    ("sentences", "smoothing", "match"),
    [
        ([A, B], "method9", "smoothing"),
        ([A], None, "at least 2"),
        ("the cat", None, "list of strings"),
        ([A, 3], None, "list of strings"),
    ],
)
def test_self_bleu_rejects_bad_input(sentences, smoothing, match):
    with pytest.raises(InvalidParameterError, match=match):
        self_bleu(sentences, smoothing)


def test_distinct_n_hand_checked():
    sentences = ["a b a b", "a c"]
    # 1-grams a b a b a c: 3 unique of 6; 2-grams (a b) (b a) (a b) (a c): 3 unique of 4, none across sentences.
    assert distinct_n(sentences, 1) == pytest.approx(3 / 6)
    assert distinct_n(sentences, 2) == pytest.approx(3 / 4)
    assert distinct_n(["a b", "a b"], 2) == 0.5  # "b a" across the boundary is not a bigram (else 2/3)
    assert distinct_n([A, A], 1) == pytest.approx(5 / 12)
    assert distinct_n(["", "one"], 2) == 0.0


def test_distinct_n_rejects_bad_n():
    with pytest.raises(InvalidParameterError, match="`n` must be an integer >= 1"):
        distinct_n([A], 0)
