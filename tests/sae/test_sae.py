from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.engine.capture import run_turn
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import InvalidParameterError
from inspectors.sae.activations import SAE_PROBE, feature_column, sae_probe, turn_activations
from inspectors.sae.loading import SAELoadError, check_fits, layer_of_hook, load_sae_from_disk, load_sae_from_release
from inspectors.views.sae_view import feature_figure, feature_shading, feature_summary, top_feature_rows
from tests.helpers import save_tiny_sae

QUESTION = [{"role": "user", "content": "Time travel will become a reality as technology continues to advance."}]


@pytest.fixture(scope="module")
def tiny_sae(tiny_lm, tmp_path_factory):
    path = save_tiny_sae(tmp_path_factory.mktemp("sae"), d_in=tiny_lm.text_config.hidden_size, layer=1)
    return load_sae_from_disk(path)


def hand_hooked_resid(lm, token_ids, layer):
    """Independent reference: a hand-written forward hook on decoder layer `layer` over a full pass."""
    seen = {}
    handle = lm.decoder_layers[layer].register_forward_hook(
        lambda m, a, out: seen.__setitem__("resid", out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            out = lm.model(torch.tensor(token_ids[None, :], dtype=torch.long), output_hidden_states=True)
    finally:
        handle.remove()
    return seen["resid"][0], out.hidden_states


def test_loads_with_sae_lens_and_reads_its_hook(tiny_sae, tiny_lm):
    assert tiny_sae.layer == 1 and tiny_sae.hook_name == "blocks.1.hook_resid_post"
    assert tiny_sae.d_sae == 128
    assert tiny_sae.feature_url(7) == "https://www.neuronpedia.org/tiny-gemma/1-res-test/7"
    check_fits(tiny_sae, tiny_lm)


def test_sparse_record_equals_the_dense_computation_on_the_right_layer(tiny_sae, tiny_lm):
    record = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=5), probes=[sae_probe(tiny_sae, 3)])
    acts = record.probes[SAE_PROBE]
    resid, hidden_states = hand_hooked_resid(tiny_lm, record.token_ids, layer=1)
    torch.testing.assert_close(resid, hidden_states[2][0])  # blocks.1.hook_resid_post == hidden_states[1 + 1]
    with torch.no_grad():
        dense = tiny_sae.sae.encode(resid).numpy()  # (T, d_sae)
    assert acts.top_ids.shape == (record.n_tokens, 16)
    for t in range(record.n_tokens):
        expected = np.sort(dense[t])[::-1][:16]
        np.testing.assert_allclose(acts.top_values[t], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dense[t, acts.top_ids[t]], acts.top_values[t], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(acts.feature_values, dense[:, 3], rtol=1e-4, atol=1e-5)
    assert (dense > 0).sum() > 0 and (dense == 0).sum() > 0  # JumpReLU: sparse, not empty
    # another feature, on demand: one partial forward pass, the same numbers as the dense encode
    np.testing.assert_allclose(feature_column(tiny_lm, tiny_sae, record, 9), dense[:, 9], rtol=1e-4, atol=1e-5)
    assert record.serialized_size() < 64 * 1024  # no dense T x d_sae array in the record


def test_turn_activations_from_the_record_or_one_pass_equal_the_dense_encode(tiny_sae, tiny_lm):
    captured = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=4), probes=[sae_probe(tiny_sae, 3)])
    assert turn_activations(tiny_lm, tiny_sae, captured, 3) is captured.probes[SAE_PROBE]
    uncaptured = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=4))  # no SAE when it ran
    for record in (captured, uncaptured):
        resid, _ = hand_hooked_resid(tiny_lm, record.token_ids, layer=1)
        with torch.no_grad():
            dense = tiny_sae.sae.encode(resid).numpy()
        acts = turn_activations(tiny_lm, tiny_sae, record, 9)
        assert acts.feature == 9 and acts.sae_name == tiny_sae.name
        np.testing.assert_allclose(acts.feature_values, dense[:, 9], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(acts.top_values[:, 0], dense.max(axis=1), rtol=1e-4, atol=1e-5)
    assert turn_activations(tiny_lm, tiny_sae, uncaptured, 9) is turn_activations(tiny_lm, tiny_sae, uncaptured, 9)


def test_sae_views(tiny_sae, tiny_lm):
    record = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=4), probes=[sae_probe(tiny_sae, 5)])
    acts = record.probes[SAE_PROBE]
    values = acts.feature_values
    shading = feature_shading(record.tokens, values)
    assert len(shading) == record.n_tokens and max(v for _, v in shading) == pytest.approx(1.0)
    np.testing.assert_allclose(feature_figure(record.tokens, values, 5, 1).data[0].y, values)
    rows = top_feature_rows(acts, 4)
    assert [r[1] for r in rows] == [int(f) for f, v in zip(acts.top_ids[4], acts.top_values[4], strict=True) if v > 0]
    assert rows[0][3].startswith("https://www.neuronpedia.org/tiny-gemma/1-res-test/")
    assert "Feature **5**" in feature_summary(acts, 5, values, record.tokens)
    with pytest.raises(InvalidParameterError, match="`position`"):
        top_feature_rows(acts, record.n_tokens)


def test_bad_features_hooks_and_mismatched_models(tiny_sae, tiny_lm, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"`feature` must be an integer in \[0, 127\]"):
        sae_probe(tiny_sae, 128)
    with pytest.raises(SAELoadError, match="only residual-stream SAEs"):
        layer_of_hook("blocks.3.attn.hook_z")
    wide = load_sae_from_disk(save_tiny_sae(tmp_path / "wide", d_in=32, layer=1))
    with pytest.raises(SAELoadError, match="pick an SAE trained on this model"):
        check_fits(wide, tiny_lm)
    with pytest.raises(SAELoadError, match="Could not load the SAE"):
        load_sae_from_disk(tmp_path / "missing")


def test_gemma_scope_release_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SAELoadError, match="Could not load the SAE gemma-scope-2b-pt-res-canonical"):
        load_sae_from_release("gemma-scope-2b-pt-res-canonical", "layer_20/width_16k/canonical")
