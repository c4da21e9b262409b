from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.errors import InvalidParameterError
from inspectors.sae.experiments import COURSE_VARIANT, compare_prompts, feature_on_text, token_across_layers
from inspectors.sae.loading import load_sae_from_disk
from tests.helpers import hooked_residuals, save_tiny_sae

PROMPTS = [
    "Time travel offers me the opportunity to correct past errors, but it comes with its own set of risks.",
    "I accept that my decisions shape my future, and though mistakes are inevitable, they define who I become.",
]


@pytest.fixture(scope="module")
def saes(tiny_lm, tmp_path_factory):
    root = tmp_path_factory.mktemp("saes")
    d_in = tiny_lm.text_config.hidden_size
    return {
        layer: load_sae_from_disk(save_tiny_sae(root / str(layer), d_in=d_in, layer=layer, seed=layer))
        for layer in (1, 2)
    }


def reference(lm, text):
    """Independent: a full forward with output_hidden_states and hand-written hooks on every layer."""
    return hooked_residuals(lm, text)


def dense(lsae, resid):
    with torch.no_grad():
        return lsae.sae.encode(resid).numpy()


def test_feature_on_text_and_prompt_comparison(tiny_lm, saes):
    lsae = saes[2]
    results = compare_prompts(tiny_lm, lsae, PROMPTS, feature=5)
    for text, result in zip(PROMPTS, results, strict=True):
        ids, outputs, _ = reference(tiny_lm, text)
        assert result.tokens[0] == "<bos>" and result.tokens.count("<bos>") == 1
        expected = dense(lsae, outputs[2])[:, 5]
        np.testing.assert_allclose(result.values, expected, rtol=1e-4, atol=1e-5)
        assert result.max_activation == pytest.approx(float(expected[1:].max()), rel=1e-4)
    with_bos = feature_on_text(tiny_lm, lsae, PROMPTS[0], 5, skip_bos=False)
    assert with_bos.max_activation == pytest.approx(float(with_bos.values.max()))


def test_token_across_layers_with_an_sae_per_layer(tiny_lm, saes):
    result = token_across_layers(tiny_lm, saes, PROMPTS[0], position=3, feature=7)
    _, outputs, _ = reference(tiny_lm, PROMPTS[0])
    assert result.layers == [1, 2] and result.variant == "sae per layer"
    for layer, value in zip(result.layers, result.values, strict=True):
        assert value == pytest.approx(float(dense(saes[layer], outputs[layer])[3, 7]), rel=1e-4, abs=1e-5)


def test_course_variant_applies_one_sae_to_every_hidden_state(tiny_lm, saes):
    result = token_across_layers(tiny_lm, {2: saes[2]}, PROMPTS[0], position=3, feature=7, course_variant=True)
    _, _, states = reference(tiny_lm, PROMPTS[0])
    assert result.variant == COURSE_VARIANT
    assert result.layers == list(range(tiny_lm.n_layers + 1))  # embeddings, then each layer
    expected = [float(dense(saes[2], state)[3, 7]) for state in states]
    np.testing.assert_allclose(result.values, expected, rtol=1e-4, atol=1e-5)


def test_bad_inputs(tiny_lm, saes):
    with pytest.raises(InvalidParameterError, match="`position`"):
        token_across_layers(tiny_lm, saes, "short", position=50, feature=1)
    with pytest.raises(InvalidParameterError, match="exactly one SAE"):
        token_across_layers(tiny_lm, saes, "short text", position=1, feature=1, course_variant=True)
    with pytest.raises(InvalidParameterError, match="`text` must not be empty"):
        feature_on_text(tiny_lm, saes[1], "  ", 1)
    with pytest.raises(InvalidParameterError, match="`feature`"):
        feature_on_text(tiny_lm, saes[1], "hello", 10_000)


def test_experiment_figures(tiny_lm, saes):
    from inspectors.views.sae_experiments_view import across_layers_figure, per_token_figure, prompts_histogram

    results = compare_prompts(tiny_lm, saes[2], PROMPTS, feature=5)
    histogram = prompts_histogram(results)
    assert len(histogram.data) == 2
    np.testing.assert_allclose(histogram.data[0].x, results[0].values[1:])  # <bos> excluded
    assert f"max {results[1].max_activation:.2f}" in histogram.data[1].name
    np.testing.assert_allclose(per_token_figure(results[0]).data[0].y, results[0].values)
    across = token_across_layers(tiny_lm, saes, PROMPTS[0], position=3, feature=7)
    line = across_layers_figure(across, 7)
    assert list(line.data[0].x) == [1, 2] and list(line.data[0].y) == across.values
