from __future__ import annotations

import pytest
import yaml

from inspectors.errors import InvalidParameterError
from inspectors.sae.catalog import CATALOG_FILE, release_for


def test_gemma_2_2b_maps_to_gemma_scope_with_the_course_feature():
    for model_id in ("google/gemma-2-2b", "google/gemma-2-2b-it"):
        release = release_for(model_id)
        assert release.release == "gemma-scope-2b-pt-res-canonical"
        assert release.sae_id(20) == "layer_20/width_16k/canonical"
        assert (release.default_layer, release.default_feature) == (20, 10004)
        assert release.layers == tuple(range(26))
        assert release.neuronpedia_id(20) == "gemma-2-2b/20-gemmascope-res-16k"


def test_gemma_3_270m_and_the_embedded_model_map_to_gemma_scope_2():
    for model_id in ("google/gemma-3-270m", "embedded/gemma-3-270m"):
        release = release_for(model_id)
        assert release.release == "gemma-scope-2-270m-pt-res"
        assert release.layers == (5, 9, 12, 15)
        assert release.neuronpedia_id(9) == "gemma-3-270m/9-gemmascope-2-res-16k"
    assert release_for("google/gemma-3-270m-it").release == "gemma-scope-2-270m-it-res"
    with pytest.raises(InvalidParameterError, match=r"must be one of \[5, 9, 12, 15\]"):
        release_for("google/gemma-3-270m").sae_id(6)
    assert release_for("someone/other-model") is None


def test_every_catalog_entry_names_a_real_sae_lens_release_and_default_layer():
    for entry in yaml.safe_load(CATALOG_FILE.read_text()).values():
        release = release_for(entry["models"][0])
        assert release.default_layer in release.layers, entry
