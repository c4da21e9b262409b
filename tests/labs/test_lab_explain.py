"""The explain lab: the course's sentences through the logit lens and attribution, checked against the engine's
own lens and attributions run separately, and shown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspectors.engine.attribution import attribute
from inspectors.engine.lens import logit_lens
from inspectors.errors import InvalidParameterError
from inspectors.labs import explain
from inspectors.labs.presets import load_preset
from inspectors.views import lab_explain as view

SENTENCES = ["Time travel will become a reality.", "I love taking a course."]


@pytest.fixture(scope="module")
def result(tiny_lm):
    return explain.run(tiny_lm, sentences=SENTENCES, max_new_tokens=3, steps=8)


def test_each_sentence_is_continued_and_explained(tiny_lm, result):
    assert [item.sentence for item in result.sentences] == SENTENCES
    for item in result.sentences:
        prompt = tiny_lm.tokenizer(item.sentence)["input_ids"]
        assert item.n_prompt == len(prompt) and len(item.tokens) > item.n_prompt
        assert len(item.lens_target_prob) == tiny_lm.n_layers and len(item.gradient) == item.n_prompt
        assert len(item.integrated_gradients) == item.n_prompt and item.ig_delta >= 0


def test_the_numbers_are_the_engines(tiny_lm, result):
    item = result.sentences[0]
    prompt = tiny_lm.tokenizer(item.sentence)["input_ids"]
    from inspectors.labs.generation import greedy_generate

    generated = greedy_generate(tiny_lm, prompt, 3)
    ids = np.asarray(prompt + generated[: len(item.tokens) - item.n_prompt])
    grid = logit_lens(tiny_lm, ids, np.arange(len(prompt) - 1, len(ids) - 1), precision="float32")
    np.testing.assert_allclose(item.lens_target_prob, grid.target_probs[:, 0], atol=1e-5)
    assert item.commitment == grid.commitment().tolist()
    gradient = attribute(tiny_lm, ids, len(prompt), "gradient")
    np.testing.assert_allclose(item.gradient, gradient.scores, atol=1e-5)


def test_json_and_views(result):
    json.dumps(result.to_json())
    figures = view.figures(result)
    assert len(figures) == len(SENTENCES) <= view.N_FIGURES
    assert "IG delta" in view.summary_markdown(result)
    preset = load_preset("explain")
    assert preset["sentences"][0].startswith("Time travel will become a reality")


def test_bad_inputs(tiny_lm):
    with pytest.raises(InvalidParameterError, match="`sentences`"):
        explain.run(tiny_lm, sentences=[])
    with pytest.raises(InvalidParameterError, match="`steps`"):
        explain.run(tiny_lm, sentences=["Hi."], steps=1)
