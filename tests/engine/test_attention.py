from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from inspectors.engine.attention import clear_cache, layer_attention
from inspectors.engine.capture import run_turn
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import InvalidParameterError

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
    layer = 1
    module = tiny_lm.decoder_layers[layer].self_attn
    seen = {}

    def grab_inputs(mod, args, kwargs):
        seen["hidden"] = kwargs.get("hidden_states", args[0] if args else None)
        seen["cos_sin"] = kwargs["position_embeddings"]

    handle = module.register_forward_pre_hook(grab_inputs, with_kwargs=True)
    try:
        with torch.no_grad():
            tiny_lm.model(torch.tensor(turn.token_ids[None, :], dtype=torch.long))
    finally:
        handle.remove()
    hidden, (cos, sin) = seen["hidden"], seen["cos_sin"]
    config = tiny_lm.text_config
    head_dim, n_heads, n_kv = config.head_dim, config.num_attention_heads, config.num_key_value_heads
    with torch.no_grad():
        q = module.q_proj(hidden).view(1, -1, n_heads, head_dim).transpose(1, 2)
        k = module.k_proj(hidden).view(1, -1, n_kv, head_dim).transpose(1, 2)
        if hasattr(module, "q_norm"):  # Gemma 3 normalises queries and keys per head
            q, k = module.q_norm(q), module.k_norm(k)

        def rotate(x):
            half = x.shape[-1] // 2
            return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

        q = q * cos[:, None] + rotate(q) * sin[:, None]
        k = k * cos[:, None] + rotate(k) * sin[:, None]
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) * config.query_pre_attn_scalar**-0.5
        if getattr(config, "attn_logit_softcapping", None):
            cap = config.attn_logit_softcapping
            scores = torch.tanh(scores / cap) * cap
        t = scores.shape[-1]
        query, key = torch.arange(t)[:, None], torch.arange(t)[None, :]
        allowed = key <= query
        if config.layer_types[layer] == "sliding_attention":
            allowed &= query - key < config.sliding_window
        manual = torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)[0].numpy()
    np.testing.assert_allclose(layer_attention(tiny_lm, turn, layer), manual, atol=1e-3)


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
