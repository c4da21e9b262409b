from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from inspectors.errors import InvalidParameterError
from inspectors.labs import sae as lab
from inspectors.labs.presets import load_preset, preset_info
from inspectors.sae import sources as sae_sources
from inspectors.sae.experiments import COURSE_VARIANT
from inspectors.sae.loading import SAELoadError, load_sae_from_disk
from inspectors.views import lab_sae as view
from tests.helpers import hooked_residuals, save_tiny_sae

PRESET = load_preset("sae")
FEATURE = 5


@pytest.fixture(scope="module")
def saes(tiny_lm, tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-saes")
    d_in = tiny_lm.text_config.hidden_size
    return {
        layer: load_sae_from_disk(save_tiny_sae(root / str(layer), d_in=d_in, layer=layer, seed=layer, d_sae=64))
        for layer in (1, 2, 3)
    }


def reference(lm, text):
    """Independent of inspectors.engine.forward: hand-written hooks on every block, plus output_hidden_states."""
    _, outputs, states = hooked_residuals(lm, text)
    return outputs, states


def column(lsae, resid, feature=FEATURE):
    with torch.no_grad():
        return lsae.sae.encode(resid).numpy()[:, feature]


def test_preset_matches_run_signature():
    params = set(inspect.signature(lab.run).parameters) - {"lm", "progress", "lsae", "saes_by_layer"}
    assert set(PRESET) == params
    info = preset_info("sae")
    assert info["title"].startswith("7.") and "course_variant" in info["description"]
    assert PRESET["course_variant"] is False and PRESET["token_index"] == 2


def test_default_reads_each_layer_with_its_own_sae(tiny_lm, saes):
    messages = []
    result = lab.run(
        tiny_lm,
        **{**PRESET, "feature": FEATURE},
        lsae=saes[2],
        saes_by_layer=saes,
        progress=lambda f, m: messages.append((f, m)),
    )
    assert [f for f, _ in messages] == sorted(f for f, _ in messages) and messages[-1][0] == 1.0
    maxima = []
    for got, text in zip(result.prompts, (PRESET["prompt_a"], PRESET["prompt_b"]), strict=True):
        outputs, _ = reference(tiny_lm, text)
        expected = column(saes[2], outputs[2])
        np.testing.assert_allclose(got.values, expected, rtol=1e-4, atol=1e-5)
        maxima.append(float(expected[1:].max()))  # <bos> left out
        assert got.max_activation == pytest.approx(maxima[-1], rel=1e-4, abs=1e-6)
    assert result.higher_prompt == ("prompt_a" if maxima[0] > maxima[1] else "prompt_b")

    outputs, _ = reference(tiny_lm, PRESET["sentence"])
    np.testing.assert_allclose(result.sentence.values, column(saes[2], outputs[2]), rtol=1e-4, atol=1e-5)
    assert result.across.layers == [1, 2, 3] and result.across.variant == "sae per layer"
    assert result.across.token == "▁travel"
    expected = [float(column(saes[layer], outputs[layer])[2]) for layer in (1, 2, 3)]
    np.testing.assert_allclose(result.across.values, expected, rtol=1e-4, atol=1e-5)

    data = json.loads(json.dumps(result.to_json()))
    assert data["unavailable"] is None and data["feature"] == FEATURE and data["sae"]["layer"] == 2
    assert data["settings"]["feature"] == FEATURE and data["settings"]["layer"] == 2
    assert data["prompts"]["prompt_a"]["tokens"][:3] == ["<bos>", "Time", "▁travel"]
    assert data["prompts"]["prompt_b"]["max_activation"] == pytest.approx(maxima[1], rel=1e-4, abs=1e-5)
    assert data["across_layers"]["layers"] == [1, 2, 3] and set(data["across_layers"]["saes"]) == {"1", "2", "3"}
    assert data["higher_prompt"] == result.higher_prompt
    assert any("different features" in note for note in data["notes"])


def test_course_variant_reads_hidden_states_one_layer_early(tiny_lm, saes):
    result = lab.run(tiny_lm, **{**PRESET, "feature": FEATURE, "course_variant": True}, lsae=saes[2])
    outputs, states = reference(tiny_lm, PRESET["prompt_a"])
    np.testing.assert_allclose(result.prompts[0].values, column(saes[2], states[2]), rtol=1e-4, atol=1e-5)
    # hidden_states[2] is block 1's output, not block 2's: the course's off-by-one
    torch.testing.assert_close(states[2], outputs[1])
    _, states = reference(tiny_lm, PRESET["sentence"])
    assert result.across.variant == COURSE_VARIANT
    assert result.across.layers == list(range(tiny_lm.n_layers + 1))
    expected = [float(column(saes[2], state)[2]) for state in states]
    np.testing.assert_allclose(result.across.values, expected, rtol=1e-4, atol=1e-5)
    assert result.to_json()["sae"]["reads"] == "hidden_states[layer]"
    titles = [fig.layout.title.text for _, fig in view.figures(result)]
    assert len(titles) == 3 and all("course variant" in t for t in titles)
    assert "course variant" in view.summary_markdown(result)

    kept = lab.run(
        tiny_lm, **{**PRESET, "feature": FEATURE, "course_variant": True, "across_layers": [0, 4]}, lsae=saes[2]
    )
    assert kept.across.layers == [0, 4]
    assert kept.across.values == pytest.approx([expected[0], expected[4]], rel=1e-4, abs=1e-5)


def test_feature_defaults_to_the_saes_own(tiny_lm, saes):
    saes[1].default_feature = 7
    try:
        result = lab.run(tiny_lm, **PRESET, lsae=saes[1])
    finally:
        saes[1].default_feature = None
    assert result.feature == 7 and result.settings["feature"] == 7
    assert result.across.layers == [1]  # an SAE passed in alone stands alone
    assert any("one point" in note for note in result.notes)
    assert lab.run(tiny_lm, **PRESET, lsae=saes[1]).feature == 0


def test_sae_sources_are_used_when_no_sae_is_given(tiny_lm, saes, monkeypatch):
    opened = []

    def open_sae(lm, layer=None):
        opened.append(layer)
        if layer == 3:
            raise SAELoadError("layer 3 is not downloadable here")
        return saes[1] if layer == 0 else saes[2 if layer is None else layer]  # layer 0: a stand-in from layer 1

    monkeypatch.setattr(sae_sources, "open_sae", open_sae)
    monkeypatch.setattr(sae_sources, "available_layers", lambda lm: [0, 1, 2, 3])
    monkeypatch.setattr(sae_sources, "shipped_saes", lambda model_id: {})
    result = lab.run(tiny_lm, **{**PRESET, "feature": FEATURE})
    assert opened == [None, 0, 1, 3] and result.sae_layer == 2
    assert result.across.layers == [1, 2]
    assert "Layer 3 left out: layer 3 is not downloadable here" in result.notes
    assert "No SAE reads layer(s) [0]: left out of 7.7-7.9." in result.notes

    only_two = lab.run(tiny_lm, **{**PRESET, "feature": FEATURE, "across_layers": [2, 3]})
    assert only_two.across.layers == [2]

    # the default SAE is a shipped stand-in (the release failed): only the shipped layers are asked for
    opened.clear()
    saes[2].note = "Gemma Scope cannot be downloaded here; showing the shipped SAE."
    monkeypatch.setattr(sae_sources, "shipped_saes", lambda model_id: {1: "folder-1", 2: "folder-2"})
    try:
        shipped = lab.run(tiny_lm, **{**PRESET, "feature": FEATURE})
    finally:
        saes[2].note = ""
    assert opened == [None, 1] and shipped.across.layers == [1, 2]
    assert shipped.to_json()["sae"]["note"].startswith("Gemma Scope cannot be downloaded")
    assert "_Gemma Scope cannot be downloaded here; showing the shipped SAE._" in view.summary_markdown(shipped)

    def refuse(lm, layer=None):
        raise SAELoadError("No SAE fits tiny-gemma: none is published and none is shipped.")

    monkeypatch.setattr(sae_sources, "open_sae", refuse)
    missing = lab.run(tiny_lm, **PRESET)
    assert missing.unavailable == "No SAE fits tiny-gemma: none is published and none is shipped."
    assert missing.to_json() == {"settings": PRESET | {"across_layers": None}, "unavailable": missing.unavailable}
    assert view.figures(missing) == []
    assert "none is shipped" in view.summary_markdown(missing)


def test_an_sae_for_another_model_is_reported_not_raised(tiny_lm, tmp_path):
    wrong = load_sae_from_disk(save_tiny_sae(tmp_path / "wrong", d_in=32, layer=1))
    result = lab.run(tiny_lm, **PRESET, lsae=wrong)
    assert "d_model" in result.unavailable


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token_index": 13}, "`token_index` must be an integer in [0, 12]"),
        ({"token_index": True}, "`token_index`"),
        ({"prompt_b": "  "}, "`prompt_b` must be a non-empty string"),
        ({"layer": 3}, "`layer` must be empty or 2, the layer of the SAE given"),
        ({"layer": 9}, "`layer` must be empty or an integer in [0, 3]"),
        ({"feature": 64}, "`feature` must be an integer in [0, 63]"),
        ({"across_layers": [1, 7]}, "`across_layers` must be empty or a list of integers in [0, 3]"),
        ({"course_variant": "yes"}, "`course_variant` must be true or false"),
    ],
)
def test_bad_inputs_say_what_to_fix(tiny_lm, saes, change, message):
    with pytest.raises(InvalidParameterError) as err:
        lab.run(tiny_lm, **{**PRESET, **change}, lsae=saes[2])
    assert message in str(err.value)


def test_figures_and_summary_show_the_numbers(tiny_lm, saes):
    result = lab.run(tiny_lm, **{**PRESET, "feature": FEATURE}, lsae=saes[2], saes_by_layer=saes)
    figs = view.figures(result)
    assert len(figs) == view.N_FIGURES
    histogram, per_token, across = (fig for _, fig in figs)
    np.testing.assert_allclose(histogram.data[0].x, result.prompts[0].values[1:])
    np.testing.assert_allclose(per_token.data[0].y, result.sentence.values)
    assert list(across.data[0].x) == [1, 2, 3] and list(across.data[0].y) == result.across.values
    text = view.summary_markdown(result)
    assert f"feature **{FEATURE}**" in text
    assert f"{result.prompts[0].max_activation:.3f}" in text and f"{result.sentence.max_activation:.3f}" in text
    assert "| activation | " + " | ".join(f"{v:.3f}" for v in result.across.values) + " |" in text
