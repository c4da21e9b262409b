from __future__ import annotations

import json

import pytest

from inspectors.errors import InvalidParameterError
from inspectors.labs import tokenization
from inspectors.labs.presets import load_preset
from inspectors.views import lab_tokenization as view

SENTENCE = "I love taking a Machine Learning course by Professor Hung-yi Lee, What about you?"


@pytest.fixture(scope="module")
def result(tiny_lm):
    return tokenization.run(tiny_lm, sentence=SENTENCE)


def test_tokens_and_ids_are_the_tokenizers_own(tiny_lm, result):
    tokenizer = tiny_lm.tokenizer
    ids = tokenizer.encode(SENTENCE, add_special_tokens=False)
    assert result.ids == ids
    assert result.tokens == tokenizer.convert_ids_to_tokens(ids)
    assert tokenizer.bos_token_id not in result.ids  # no special tokens added
    assert "".join(result.pieces) == SENTENCE  # SentencePiece pieces cover the text exactly
    assert result.n_tokens == len(ids)


def test_gemma_tokens_of_the_course_sentence(result):
    # Gemma's vocabulary: 'Hung-yi' splits in three, every word after the first carries its space.
    assert result.tokens == [
        "I", "▁love", "▁taking", "▁a", "▁Machine", "▁Learning", "▁course", "▁by", "▁Professor", "▁Hung", "-",
        "yi", "▁Lee", ",", "▁What", "▁about", "▁you", "?",
    ]  # fmt: skip


def test_whitespace_is_visible_in_the_views(tiny_lm):
    out = tokenization.run(tiny_lm, sentence="a  b\nc")
    shown = [row[2] for row in view.token_rows(out)]
    assert "".join(shown).replace("␣", " ").replace("↵", "\n") == "a  b\nc"
    assert not any(ch in piece for piece in shown for ch in " \n▁")
    summary = view.summary_markdown(out)
    assert "↵" in summary and f"**{out.n_tokens} tokens**" in summary


def test_views(result):
    ((title, fig),) = view.figures(result)
    assert "18 tokens" in title
    positions, ids, tokens = fig.data[0].cells.values
    assert list(ids) == result.ids and list(positions) == list(range(18))
    assert tokens[1] == "␣love"
    assert "| 12 | `␣Lee` | 11629 |" in view.summary_markdown(result)


def test_result_is_json(result):
    assert json.loads(json.dumps(result.to_json()))["ids"] == result.ids


def test_preset_is_the_course_sentence():
    assert load_preset("tokenization") == {"sentence": SENTENCE}


@pytest.mark.parametrize("sentence", ["", "  ", None, 3])
def test_bad_inputs_are_refused(tiny_lm, sentence):
    with pytest.raises(InvalidParameterError, match="`sentence`"):
        tokenization.run(tiny_lm, sentence=sentence)
