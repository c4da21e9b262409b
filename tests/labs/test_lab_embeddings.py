from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from inspectors.errors import InvalidParameterError
from inspectors.labs import embeddings
from inspectors.labs.presets import load_preset
from inspectors.views import lab_embeddings

SENTENCES = load_preset("embeddings")["sentences"]
TEXTS = [s["text"] for s in SENTENCES]
TOL = {"rtol": 1e-4, "atol": 1e-4}


def run(lm, **overrides):
    return embeddings.run(lm, **{**load_preset("embeddings"), **overrides})


def alone(lm, text: str, layer: int) -> torch.Tensor:
    """(T, d) hidden_states[layer] of the sentence by itself: no batch, no padding."""
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return lm.model(input_ids=ids, output_hidden_states=True, logits_to_keep=1).hidden_states[layer][0].float()


def test_preset_is_the_course():
    preset = load_preset("embeddings")
    assert [s["sense"] for s in SENTENCES] == ["fruit", "company", "fruit", "telecom", "company", "fruit"]
    assert TEXTS[0] == "I ate a fresh apple." and TEXTS[3] == "The Orange network has great coverage."
    assert (preset["layer"], preset["pooling"], preset["perplexity"], preset["seed"]) == (-1, "mean", 2, 42)
    assert preset["course_variant"] is False


@pytest.mark.parametrize("layer", [-1, 2])
def test_masked_mean_equals_each_sentence_alone(tiny_lm, layer):
    result = run(tiny_lm, layer=layer)
    assert len(set(result.n_tokens)) > 1  # the batch really is padded
    expected = np.stack([alone(tiny_lm, text, layer).mean(dim=0).numpy() for text in TEXTS])
    np.testing.assert_allclose(result.embeddings, expected, **TOL)


def test_mean_without_bos(tiny_lm):
    result = run(tiny_lm, include_bos=False)
    expected = np.stack([alone(tiny_lm, text, -1)[1:].mean(dim=0).numpy() for text in TEXTS])
    np.testing.assert_allclose(result.embeddings, expected, **TOL)
    assert "<bos> excluded" in result.pooling_label


def test_last_token_equals_each_sentence_alone(tiny_lm):
    result = run(tiny_lm, pooling="last", layer=3)
    expected = np.stack([alone(tiny_lm, text, 3)[-1].numpy() for text in TEXTS])
    np.testing.assert_allclose(result.embeddings, expected, **TOL)
    assert result.pooling == "last"


def test_course_variant_is_the_reference_and_differs_where_padded(tiny_lm):
    result = run(tiny_lm, course_variant=True)
    # The course's code: default tokenizer padding, mean over every position of the last hidden state.
    inputs = tiny_lm.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = tiny_lm.model(**inputs, output_hidden_states=True, logits_to_keep=1)
    reference = out.hidden_states[-1].mean(dim=1).numpy()
    np.testing.assert_allclose(result.embeddings, reference, **TOL)
    assert result.padding_side == tiny_lm.tokenizer.padding_side
    assert result.pooling == "course" and "course variant" in result.pooling_label
    masked = run(tiny_lm).embeddings
    longest = int(np.argmax(result.n_tokens))
    for i, n in enumerate(result.n_tokens):
        if n == max(result.n_tokens):
            np.testing.assert_allclose(result.embeddings[i], masked[i], **TOL)  # no pads: the same
        else:
            assert not np.allclose(result.embeddings[i], masked[i], **TOL)
    assert result.n_tokens[longest] > min(result.n_tokens)


def test_cosine_matrix_is_the_manual_one(tiny_lm):
    result = run(tiny_lm)
    unit = result.embeddings / np.linalg.norm(result.embeddings, axis=1, keepdims=True)
    np.testing.assert_allclose(result.cosine, unit @ unit.T, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.diag(result.cosine), 1.0, atol=1e-6)
    masked = result.cosine - 2 * np.eye(len(TEXTS))
    assert result.nearest == list(masked.argmax(axis=1))
    same = [
        result.cosine[i, j] for i in range(6) for j in range(i + 1, 6) if SENTENCES[i]["sense"] == SENTENCES[j]["sense"]
    ]
    assert result.sense_cosines()["same_sense"] == pytest.approx(np.mean(same))


def test_same_seed_same_coordinates(tiny_lm):
    first = run(tiny_lm)
    again = run(tiny_lm)
    assert first.coords.shape == (6, 2)
    assert json.dumps(first.to_json()) == json.dumps(again.to_json())
    # scikit-learn's default PCA start leaves nothing random for six points: the seed changes nothing ...
    np.testing.assert_allclose(run(tiny_lm, seed=7).coords, first.coords, rtol=1e-5)
    # ... a random start is drawn from the seed.
    random_start = run(tiny_lm, init="random", seed=7)
    assert random_start.init == "random"
    np.testing.assert_array_equal(run(tiny_lm, init="random", seed=7).coords, random_start.coords)
    assert not np.allclose(run(tiny_lm, init="random", seed=8).coords, random_start.coords)


@pytest.mark.parametrize("perplexity", [6, 6.5, 0, -1, float("nan"), "2", True])
def test_impossible_perplexity_is_refused(tiny_lm, perplexity):
    with pytest.raises(InvalidParameterError, match=r"less than the number of sentences \(6\)") as err:
        run(tiny_lm, perplexity=perplexity)
    assert "largest allowed is just under 6" in str(err.value)


def test_perplexity_just_under_the_limit_works(tiny_lm):
    assert run(tiny_lm, perplexity=5.5).perplexity == 5.5


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"layer": 5}, r"`layer` must be an integer in \[-5, 4\]"),
        ({"layer": -6}, r"`layer` must be an integer in \[-5, 4\]"),
        ({"layer": 1.0}, "`layer`"),
        ({"pooling": "max"}, "`pooling` must be one of"),
        ({"course_variant": True, "pooling": "last"}, "`course_variant` reproduces"),
        ({"course_variant": True, "include_bos": False}, "`course_variant` reproduces"),
        ({"sentences": SENTENCES[:2]}, "between 3 and"),
        ({"sentences": [*SENTENCES[:3], {"sense": "fruit"}]}, r"`sentences\[3\].text`"),
        ({"sentences": [*SENTENCES[:3], {"text": "x", "colour": "red"}]}, r"`sentences\[3\]` must be a mapping"),
        ({"seed": -1}, "`seed`"),
        ({"init": "spectral"}, "`init` must be one of"),
    ],
)
def test_bad_inputs_are_refused(tiny_lm, overrides, match):
    with pytest.raises(InvalidParameterError, match=match):
        run(tiny_lm, **overrides)


def test_layers_resolve_to_hidden_states_indices(tiny_lm):
    assert embeddings.resolve_layer(tiny_lm, -1) == tiny_lm.n_layers == 4
    assert embeddings.resolve_layer(tiny_lm, -5) == 0
    assert "last hidden state" in embeddings.layer_label(tiny_lm, 4)
    assert "output of block 1" in embeddings.layer_label(tiny_lm, 2)
    result = run(tiny_lm, layer=0)
    assert result.layer == 0 and "embeddings" in result.layer_label


def test_json_and_views(tiny_lm):
    progress = []
    result = run(tiny_lm, progress=lambda f, m: progress.append(f))
    data = json.loads(json.dumps(result.to_json()))
    assert [s["text"] for s in data["sentences"]] == TEXTS
    assert [s["sense"] for s in data["sentences"]] == [s["sense"] for s in SENTENCES]
    assert [[s["x"], s["y"]] for s in data["sentences"]] == result.coords.tolist()
    assert data["cosine"] == result.cosine.tolist() and data["perplexity"] == 2.0 and data["seed"] == 42
    assert progress[0] == 0.0 and progress[-1] == 1.0

    (scatter_title, scatter), (cosine_title, heatmap) = lab_embeddings.figures(result)
    assert isinstance(scatter, go.Figure) and isinstance(heatmap, go.Figure)
    assert [t.name for t in scatter.data] == ["fruit", "company", "telecom"]  # one colour per sense
    fruit = scatter.data[0]
    assert list(fruit.x) == [float(result.coords[i, 0]) for i in (0, 2, 5)]
    assert len({t.marker.color for t in scatter.data}) == 3
    np.testing.assert_array_equal(np.asarray(heatmap.data[0].z), result.cosine)
    summary = lab_embeddings.summary_markdown(result)
    assert all(text in summary for text in TEXTS)
    assert f"{result.cosine[0, 1]:.3f}" in summary and "same sense" in summary
