"""The SAE the project ships for the embedded Gemma 3 270M meets its model card on held-out text,
its features can be searched by words, and it stands in for Gemma Scope when the Hub is unreachable."""

from __future__ import annotations

import json

import huggingface_hub.constants
import pytest

from inspectors.engine.loading import load_model
from inspectors.sae import sources as sae_sources
from inspectors.sae.train.__main__ import (
    DEFAULT_LAYERS,
    HELDOUT_SAMPLE_FILE,
    MAX_SAE_BYTES,
    SAMPLE_LOSS_WINDOWS,
    sample_windows,
)
from inspectors.sae.train.activations import text_activations_by_layer
from inspectors.sae.train.evaluate import cross_entropy, evaluate, loss_metrics
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

pytestmark = pytest.mark.integration

SHIPPED = sorted(sae_sources.shipped_saes(EMBEDDED_MODEL_ID).items())


@pytest.fixture(scope="module")
def lm():
    return load_model(EMBEDDED_MODEL_ID, Settings.load(env={}))


def test_at_least_one_sae_is_shipped_for_the_embedded_model():
    assert SHIPPED, f"no SAE for {EMBEDDED_MODEL_ID} under {sae_sources.SHIPPED_DIR}"


@pytest.fixture(scope="module")
def sample():
    return (sae_sources.SHIPPED_DIR / HELDOUT_SAMPLE_FILE).read_text(encoding="utf-8").rstrip("\n")


@pytest.fixture(scope="module")
def sample_residuals(lm, sample):
    """The held-out sample's residuals at every shipped layer, from shared forward passes."""
    return text_activations_by_layer(lm, sample, [layer for layer, _ in SHIPPED])


@pytest.fixture(scope="module")
def sample_clean_ce(lm, sample):
    windows = sample_windows(lm, sample)[:SAMPLE_LOSS_WINDOWS]
    return windows, cross_entropy(lm, windows, SHIPPED[0][0])[0]


def test_the_shipped_saes_span_the_models_depth():
    assert [layer for layer, _ in SHIPPED] == DEFAULT_LAYERS


@pytest.mark.parametrize(("layer", "folder"), SHIPPED, ids=[f.name for _, f in SHIPPED])
def test_meets_its_model_card_on_held_out_text(lm, layer, folder, sample_residuals, sample_clean_ce):
    card = json.loads((folder / "card.json").read_text())
    assert (folder / "sae_weights.safetensors").stat().st_size <= MAX_SAE_BYTES
    assert card["layer"] == layer and card["hook_name"] == f"blocks.{layer}.hook_resid_post"
    held, loss = card["metrics"]["heldout"], card["metrics"]["heldout_loss"]
    assert held["explained_variance"] >= 0.75 and 10 <= held["l0"] <= 100 and held["dead_fraction"] < 0.10
    assert loss["ce_loss_recovered"] >= 0.85 and loss["ce_increase_nats"] <= 0.5, loss

    lsae = sae_sources.open_sae(lm, layer=layer, settings=Settings.load(env={"GEMMA_INSPECTOR_SAE": str(folder)}))
    measured = evaluate(lsae.sae, sample_residuals[layer])
    promised = card["metrics"]["heldout_sample"]
    assert measured.n_tokens == promised["n_tokens"]
    assert measured.explained_variance == pytest.approx(promised["explained_variance"], abs=0.01)
    assert measured.l0 == pytest.approx(promised["l0"], abs=0.5)
    windows, clean = sample_clean_ce
    measured_loss = loss_metrics(lm, lsae.sae, windows, layer, clean)
    promised_loss = card["metrics"]["heldout_sample_loss"]
    assert measured_loss.recovered == pytest.approx(promised_loss["ce_loss_recovered"], abs=0.01)
    assert measured_loss.increase == pytest.approx(promised_loss["ce_increase_nats"], abs=0.02)


def test_word_search_finds_features_that_fire_on_the_word(lm):
    lsae = sae_sources.open_sae(lm, settings=Settings.load(env={"GEMMA_INSPECTOR_SAE": str(SHIPPED[0][1])}))
    hits = lsae.features.search("travel")
    assert hits, "no feature's top contexts mention travel"
    card = lsae.features.card(hits[0].feature)
    assert any("trav" in c.token.lower() or "travel" in (c.left + c.token + c.right).lower() for c in card.contexts)
    assert lsae.default_feature == lsae.features.search(sae_sources.DEFAULT_FEATURE_QUERY)[0].feature


def test_stands_in_for_gemma_scope_when_the_hub_cannot_be_reached(lm, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    lsae = sae_sources.open_sae(lm)  # the catalog says Gemma Scope 2 layer 9; it cannot be downloaded here
    assert lsae.name == f"{sae_sources.shipped_saes(EMBEDDED_MODEL_ID)[lsae.layer].name} (shipped)"
    assert "Could not load the SAE gemma-scope-2-270m-pt-res" in lsae.note and "project's own SAE" in lsae.note
    assert lsae.features is not None and lsae.default_feature is not None


def test_the_sae_lab_reads_one_token_across_every_shipped_layer_offline(lm, monkeypatch):
    from inspectors.labs import sae as sae_lab
    from inspectors.labs.presets import load_preset

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    sae_sources.forget_opened()
    try:
        result = sae_lab.run(lm, **load_preset("sae"))
    finally:
        sae_sources.forget_opened()
    assert result.across.layers == DEFAULT_LAYERS, result.notes
    assert len(result.across.values) == len(DEFAULT_LAYERS)
    assert sae_lab.PER_LAYER_NOTE.format(feature=result.feature) in result.notes
