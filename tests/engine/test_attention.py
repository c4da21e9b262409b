from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from inspectors.engine.attention import clear_cache, layer_attention
from inspectors.engine.capture import run_turn
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import InvalidParameterError
from tests.helpers import manual_attention

QUESTION = [{"role": "user", "content": "Tell me about rainbows and the colours in them, please."}]


@pytest.fixture(scope="module")
def turn(tiny_lm):
    return run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=8))


def test_rows_are_causal_probability_distributions(tiny_lm, turn):
    clear_cache()
    for layer in range(tiny_lm.n_layers):
        attention = layer_attention(tiny_lm, turn, layer)
        assert attention.shape == (tiny_lm.n_heads, turn.n_tokens, turn.n_tokens)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=2e-3)
        assert np.all(np.triu(attention, k=1) == 0)  # no query attends to a later key
    assert turn.n_tokens > 8  # longer than the sliding window, so local layers mask old keys
    local = layer_attention(tiny_lm, turn, 0)
    assert np.all(np.tril(local, k=-8) == 0)


def test_matches_transformers_eager_output_attentions(tiny_lm, turn):
    reference_model = AutoModelForCausalLM.from_pretrained(tiny_lm.model.name_or_path, attn_implementation="eager")
    with torch.no_grad():
        out = reference_model(torch.tensor(turn.token_ids[None, :], dtype=torch.long), output_attentions=True)
    for layer in range(tiny_lm.n_layers):
        np.testing.assert_allclose(layer_attention(tiny_lm, turn, layer), out.attentions[layer][0].numpy(), atol=1e-3)


def test_matches_a_hand_written_attention_computation(tiny_lm, turn):
    """softmax(q k^T * scale (+ softcap) + causal/sliding mask), from the layer's own inputs and projections."""
    np.testing.assert_allclose(
        layer_attention(tiny_lm, turn, 1), manual_attention(tiny_lm, turn.token_ids, 1), atol=1e-3
    )


def test_switching_heads_within_a_layer_runs_no_model(tiny_lm, turn):
    clear_cache()
    calls = []
    handle = tiny_lm.decoder_layers[0].register_forward_hook(lambda *args: calls.append(1))
    try:
        first = layer_attention(tiny_lm, turn, 2)
        assert len(calls) == 1
        heads = [layer_attention(tiny_lm, turn, 2)[h] for h in range(tiny_lm.n_heads)]
    finally:
        handle.remove()
    assert len(calls) == 1  # cached: no further forward pass
    np.testing.assert_array_equal(np.stack(heads), first)


def test_generation_attention_implementation_is_restored(tiny_lm, turn):
    before = tiny_lm.model.config._attn_implementation
    clear_cache()
    layer_attention(tiny_lm, turn, 3)
    assert tiny_lm.model.config._attn_implementation == before


def test_invalid_layer(tiny_lm, turn):
    with pytest.raises(InvalidParameterError, match=r"`layer` must be in \[0, 3\]"):
        layer_attention(tiny_lm, turn, 4)


def test_segment_shares_are_the_attention_rows_summed_by_segment(tiny_lm, turn):
    from inspectors.engine.attention import segment_attention

    segments = turn.segments.of_token
    queries = np.arange(turn.n_prompt, turn.n_tokens)
    shares = segment_attention(tiny_lm, turn.token_ids, segments, queries)
    assert shares.shape == (tiny_lm.n_layers, tiny_lm.n_heads, len(queries), len(turn.segments.names))
    np.testing.assert_allclose(shares.sum(-1), 1.0, atol=1e-4)  # every query's attention, all of it
    for layer in (0, tiny_lm.n_layers - 1):
        weights = manual_attention(tiny_lm, turn.token_ids, layer)  # (H, T, T), by hand
        for s in range(len(turn.segments.names)):
            expected = weights[:, queries][:, :, segments == s].sum(-1)
            np.testing.assert_allclose(shares[layer, :, :, s], expected, atol=1e-3)
