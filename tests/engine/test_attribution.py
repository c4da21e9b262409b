"""Input attribution with Captum: gradient x embedding checked by hand, integrated gradients complete
(they sum to f(x) - f(baseline) within the reported delta), occlusion equal to a hand-run ablation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.engine.attribution import attribute
from inspectors.engine.capture import run_turn
from inspectors.engine.sampling import SamplingParams

QUESTION = [{"role": "user", "content": "Name a colour of the rainbow, please."}]


@pytest.fixture(scope="module")
def turn(tiny_lm):
    return run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=4))


def log_prob(lm, ids, target):
    with torch.no_grad():
        logits = lm.model(torch.tensor([list(ids)])).logits[0, -1].double()
    return float(torch.log_softmax(logits, -1)[target])


def test_gradient_times_embedding_by_hand(tiny_lm, turn):
    position = turn.n_prompt + 1
    got = attribute(tiny_lm, turn.token_ids, position, "gradient")
    ids = torch.tensor([turn.token_ids[:position].tolist()])
    embeds = tiny_lm.model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = tiny_lm.model(inputs_embeds=embeds).logits[0, -1]
    torch.log_softmax(logits.float(), -1)[int(turn.token_ids[position])].backward()
    expected = (embeds.grad * embeds).sum(-1)[0].detach().numpy()
    np.testing.assert_allclose(got.scores, expected, rtol=1e-3, atol=1e-4)
    assert got.target_logprob == pytest.approx(log_prob(tiny_lm, turn.token_ids[:position], got.target_id), abs=1e-4)


def test_integrated_gradients_are_complete(tiny_lm, turn):
    """Completeness: the scores sum to f(x) - f(baseline), f computed here, up to the delta reported."""
    position = turn.n_prompt
    baseline = [tiny_lm.pad_token_id] * position
    for steps in (8, 64):
        got = attribute(tiny_lm, turn.token_ids, position, "integrated_gradients", steps=steps)
        difference = got.target_logprob - log_prob(tiny_lm, baseline, got.target_id)
        assert abs(float(got.scores.sum()) - difference) == pytest.approx(got.convergence_delta, abs=1e-3)
        assert got.steps == steps


def test_occlusion_by_segment_equals_a_hand_run_ablation(tiny_lm, turn):
    position = turn.n_prompt + 2
    segments = turn.segments.of_token
    got = attribute(tiny_lm, turn.token_ids, position, "occlusion", segment_of_token=segments)
    full = log_prob(tiny_lm, turn.token_ids[:position], got.target_id)
    for segment in np.unique(segments[:position]):
        pairs = zip(turn.token_ids[:position], segments[:position], strict=True)
        ablated = [tiny_lm.pad_token_id if s == segment else t for t, s in pairs]
        drop = full - log_prob(tiny_lm, ablated, got.target_id)
        chosen = segments[:position] == segment
        np.testing.assert_allclose(got.scores[chosen], drop, atol=1e-3)  # one score per segment, on each token
