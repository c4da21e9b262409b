"""Offline feature search over shipped top contexts, and where an SAE comes from (sae_sources)."""

from __future__ import annotations

import json

import pytest

from inspectors.sae import sources as sae_sources
from inspectors.sae.catalog import release_for
from inspectors.sae.features import FeatureIndex
from inspectors.sae.loading import SAELoadError
from inspectors.sae.train.contexts import write_contexts
from tests.helpers import save_tiny_sae


def _context(left, token, right, act):
    return {"left": left, "token": token, "right": right, "act": act}


CONTEXTS = {
    "features": [
        {"density": 0.01, "max": 5.0, "contexts": [_context("a long ", "journey", " home", 5.0)]},
        {
            "density": 0.02,
            "max": 8.0,
            "contexts": [
                _context("they loved to", " travel", " abroad", 8.0),
                _context("the idea of time", " travel", " is old", 6.0),
            ],
        },
        {"density": 0.3, "max": 2.0, "contexts": [_context("we will", " travel", " soon", 0.5)]},
        {"density": 0.1, "max": 4.0, "contexts": [_context("in the course of time", ",", " things", 4.0)]},
    ]
}


def test_search_ranks_features_that_fire_on_the_word_first():
    index = FeatureIndex(CONTEXTS)
    hits = index.search("travel")
    assert [h.feature for h in hits] == [1, 2]  # 3 fires near "time", not on "travel"; 0 never mentions it
    assert hits[0].example.token == " travel" and hits[0].example.act == 8.0
    # both words: the feature firing on "travel" right after "time" comes first; "journey" matches neither
    both = index.search("time travel")
    assert both[0].feature == 1 and both[0].score > both[1].score and 0 not in [h.feature for h in both]
    assert index.search("  !! ") == [] and index.search("zebra") == []
    assert index.card(1).density == 0.02 and len(index) == 4


def test_contexts_file_round_trips_and_is_byte_stable(tmp_path):
    write_contexts(CONTEXTS, tmp_path / "a.json.gz")
    write_contexts(CONTEXTS, tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert FeatureIndex.load(tmp_path / "a.json.gz").card(1).contexts[1].left == "the idea of time"


@pytest.fixture
def shipped_root(tmp_path, tiny_lm, monkeypatch):
    """A tiny SAE 'shipped' for the tiny model, at layer 1, with contexts."""
    folder = save_tiny_sae(tmp_path / "tiny-l1", d_in=64, layer=1, d_sae=4)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"]["model_name"] = "tiny"
    (folder / "cfg.json").write_text(json.dumps(cfg))
    write_contexts(CONTEXTS, folder / "contexts.json.gz")
    monkeypatch.setattr(sae_sources, "SHIPPED_DIR", tmp_path)
    monkeypatch.setitem(sae_sources.SHIPPED_MODEL_ALIASES, tiny_lm.model_id, "tiny")
    return tmp_path


def test_falls_back_to_the_shipped_sae_when_the_release_cannot_be_downloaded(shipped_root, tiny_lm, monkeypatch):
    release = release_for("embedded/gemma-3-270m")
    monkeypatch.setattr(sae_sources, "release_for", lambda model_id: release)

    attempts = []

    def offline(*args, **kwargs):
        attempts.append(args)
        raise SAELoadError("Could not load the SAE: the Hugging Face Hub cannot be reached.")

    monkeypatch.setattr(sae_sources, "load_sae_from_release", offline)
    lsae = sae_sources.open_sae(tiny_lm, layer=release.default_layer)
    assert lsae.layer == 1  # the only shipped layer, the nearest to the one asked for
    assert "cannot be reached" in lsae.note and "project's own SAE" in lsae.note and "nearest is 1" in lsae.note
    assert lsae.default_feature == 1  # found by searching "time travel", not written down anywhere
    assert lsae.features.card(1).contexts[0].token == " travel"
    assert sae_sources.available_layers(tiny_lm) == sorted({*release.layers, 1})
    assert sae_sources.open_sae(tiny_lm, layer=release.default_layer) is lsae and len(attempts) == 1  # once


def test_no_release_and_nothing_shipped_says_what_to_do(tiny_lm):
    with pytest.raises(SAELoadError, match="GEMMA_INSPECTOR_SAE"):
        sae_sources.open_sae(tiny_lm)
    assert sae_sources.available_layers(tiny_lm) == []


def test_shipped_sae_without_a_release_is_used_directly(shipped_root, tiny_lm):
    lsae = sae_sources.open_sae(tiny_lm)
    assert lsae.layer == 1 and lsae.note.startswith("Showing the project's own SAE")


def brute_force_search(index, query: str, limit: int = 10):
    """The search's definition, feature by feature and context by context (the inverted index must agree)."""
    from inspectors.sae.features import NEARBY_HIT, TOKEN_HIT, SearchHit, _matches, _words

    words = _words(query)
    hits = []
    for card in index.cards:
        score, best, best_context = 0.0, 0.0, None
        for context in card.contexts:
            tokens, around = _words(context.token), set(_words(context.left + context.token + context.right))
            weight = context.act / card.max_act if card.max_act > 0 else 0.0
            matched = sum(TOKEN_HIT if _matches(w, tokens) else NEARBY_HIT if w in around else 0.0 for w in words)
            score += weight * matched
            if weight * matched > best:
                best, best_context = weight * matched, context
        if score > 0:
            hits.append(SearchHit(card.feature, score / (len(words) * max(1, len(card.contexts))), best_context))
    hits.sort(key=lambda hit: (-hit.score, hit.feature))
    return hits[:limit]


@pytest.mark.parametrize(
    "query",
    ["travel", "time travel", "Time TRAVEL time", "the history of the roman empire", "trav", "water river sea", "1990"],
)
def test_the_indexed_search_equals_the_brute_force_definition(query):
    from inspectors.sae.features import index_for
    from inspectors.sae.sources import shipped_saes
    from inspectors.settings import EMBEDDED_MODEL_ID

    index = index_for(str(shipped_saes(EMBEDDED_MODEL_ID)[6]))
    fast, slow = index.search(query, 15), brute_force_search(index, query, 15)
    assert [h.feature for h in fast] == [h.feature for h in slow]
    assert [h.score for h in fast] == pytest.approx([h.score for h in slow], rel=1e-12)
    assert [h.example for h in fast] == [h.example for h in slow]
