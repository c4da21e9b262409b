"""The logit lens: the model's own head read at every layer. At the last layer it is the model's distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.engine.capture import run_turn
from inspectors.engine.lens import logit_lens
from inspectors.engine.sampling import SamplingParams

QUESTION = [{"role": "user", "content": "Tell me about rainbows and the colours in them, please."}]


@pytest.fixture(scope="module")
def turn(tiny_lm):
    return run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=8))


@pytest.fixture(scope="module")
def grid(tiny_lm, turn):
    positions = np.arange(turn.n_prompt - 1, turn.n_tokens - 1)  # each reply token's prediction
    return logit_lens(tiny_lm, turn.token_ids, positions)


def hand_lens(lm, token_ids, layer, position):
    """norm -> head -> Gemma 2's cap -> softmax, from transformers' hidden_states (layer L's output is
    hidden_states[L + 1], except after the last layer, where it is already normed)."""
    with torch.no_grad():
        out = lm.model(torch.tensor(token_ids[None, :]), output_hidden_states=True)
        if layer == lm.n_layers - 1:
            return torch.softmax(out.logits[0, position].double(), -1).numpy()  # the model's own
        normed = lm.model.model.norm(out.hidden_states[layer + 1][0, position])
        logits = lm.model.lm_head(normed).double()
    cap = getattr(lm.text_config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.softmax(logits, -1).numpy()


def test_the_last_layer_is_the_models_own_distribution(tiny_lm, turn, grid):
    last = tiny_lm.n_layers - 1
    for p, position in enumerate(grid.positions):
        expected = hand_lens(tiny_lm, turn.token_ids, last, position)
        np.testing.assert_allclose(grid.top_probs[last, p], np.sort(expected)[::-1][:10], atol=1e-5)
        assert grid.target_probs[last, p] == pytest.approx(expected[turn.token_ids[position + 1]], abs=1e-5)
    # the last layer's top-1 is what the Next token tab shows first for each step (greedy: the generated token)
    np.testing.assert_array_equal(grid.top_ids[last, :, 0], turn.steps.raw_ids[:, 0])
    np.testing.assert_allclose(grid.top_probs[last, :, 0], turn.steps.raw_probs[:, 0], atol=1e-5)


def test_every_layer_matches_a_hand_written_lens(tiny_lm, turn, grid):
    for layer in range(tiny_lm.n_layers - 1):
        for p in (0, len(grid.positions) - 1):
            expected = hand_lens(tiny_lm, turn.token_ids, layer, grid.positions[p])
            np.testing.assert_array_equal(grid.top_ids[layer, p], np.argsort(-expected, kind="stable")[:10])
            np.testing.assert_allclose(grid.top_probs[layer, p], np.sort(expected)[::-1][:10], rtol=1e-4, atol=1e-6)


def test_commitment_is_the_first_layer_from_which_the_top_token_stays(grid):
    committed = grid.commitment()
    hits = grid.top_ids[:, :, 0] == grid.target_ids[None, :]
    for p, layer in enumerate(committed):
        assert layer >= 0  # greedy: the last layer's top-1 is the generated token
        assert hits[layer:, p].all() and (layer == 0 or not hits[layer - 1, p])
