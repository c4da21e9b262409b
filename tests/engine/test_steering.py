"""Steering: a vector added after one decoder layer, checked against transformers' own hidden states and a
hand-computed KL; the hook never outlives the reply."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.engine.capture import run_turn
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.steering import (
    MAX_ACTIVATION,
    RESIDUAL_NORM,
    Steering,
    feature_steering,
    mean_difference_steering,
    steered,
    step_kl,
    typical_norm,
)

QUESTION = [{"role": "user", "content": "Tell me about rainbows and the colours in them, please."}]
GREEDY = SamplingParams(max_new_tokens=8)


def hidden_states(lm, ids):
    with torch.inference_mode():
        return lm.model(torch.tensor([ids]), output_hidden_states=True)


def random_vector(lm, scale, seed=0):
    d_model = lm.text_config.hidden_size
    return (np.random.default_rng(seed).standard_normal(d_model) * scale).astype(np.float32)


def layer_outputs(lm, ids):
    """Every decoder layer's output read by hand-written hooks, registered after any steering hook (so they
    see what the next layer receives; transformers' own hidden_states are recorded before it)."""
    outputs = {}

    def read(layer):
        def hook(module, args, output):
            outputs[layer] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        return hook

    handles = [block.register_forward_hook(read(i)) for i, block in enumerate(lm.decoder_layers)]
    try:
        logits = hidden_states(lm, ids).logits
    finally:
        for handle in handles:
            handle.remove()
    return outputs, logits


def test_the_layers_output_moves_by_exactly_the_vector_and_earlier_layers_do_not_move(tiny_lm):
    ids = tiny_lm.tokenizer("The sky is blue because")["input_ids"]
    layer = 1
    vector = random_vector(tiny_lm, 3.0)
    plain, plain_logits = layer_outputs(tiny_lm, ids)
    with steered(tiny_lm, Steering(layer, vector, "test")):
        pushed, pushed_logits = layer_outputs(tiny_lm, ids)
    for earlier in range(layer):
        torch.testing.assert_close(pushed[earlier], plain[earlier])
    torch.testing.assert_close(pushed[layer], plain[layer] + torch.as_tensor(vector), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(pushed_logits, plain_logits)


def test_the_hook_is_removed_after_the_block_also_on_an_error(tiny_lm):
    ids = tiny_lm.tokenizer("The sky is blue because")["input_ids"]
    before = hidden_states(tiny_lm, ids).logits
    hooks_before = [len(block._forward_hooks) for block in tiny_lm.decoder_layers]  # transformers keeps its own
    with pytest.raises(RuntimeError, match="boom"), steered(tiny_lm, Steering(0, random_vector(tiny_lm, 5.0), "x")):
        raise RuntimeError("boom")
    torch.testing.assert_close(hidden_states(tiny_lm, ids).logits, before)
    assert [len(block._forward_hooks) for block in tiny_lm.decoder_layers] == hooks_before


def test_a_zero_vector_changes_nothing_and_a_large_one_changes_the_reply(tiny_lm):
    default = run_turn(tiny_lm, QUESTION, GREEDY)
    zero = run_turn(tiny_lm, QUESTION, GREEDY, steering=Steering(1, random_vector(tiny_lm, 0.0), "zero"))
    assert zero.token_ids.tolist() == default.token_ids.tolist()
    np.testing.assert_allclose(zero.steering_kl, 0.0, atol=1e-6)
    kept = {key: value for key, value in zero.steering.items() if key != "vector"}
    assert kept == {"layer": 1, "description": "zero", "norm": 0.0}
    assert np.array_equal(zero.steering["vector"], np.zeros_like(zero.steering["vector"]))
    assert default.steering is None and default.steering_kl is None

    pushed = run_turn(tiny_lm, QUESTION, GREEDY, steering=Steering(1, random_vector(tiny_lm, 50.0, seed=3), "big"))
    assert pushed.token_ids[: pushed.n_prompt].tolist() == default.token_ids[: default.n_prompt].tolist()
    assert pushed.token_ids[pushed.n_prompt :].tolist() != default.token_ids[default.n_prompt :].tolist()
    assert len(pushed.steering_kl) == pushed.n_tokens - pushed.n_prompt
    assert (pushed.steering_kl > 0).all()
    # the record's next-token distributions are the steered model's: greedy picks their top token
    np.testing.assert_array_equal(pushed.steps.raw_ids[:, 0], pushed.token_ids[pushed.n_prompt :])


def test_step_kl_matches_a_hand_written_kl_over_full_forward_passes(tiny_lm):
    steering = Steering(1, random_vector(tiny_lm, 4.0, seed=5), "kl")
    turn = run_turn(tiny_lm, QUESTION, GREEDY, steering=steering)
    ids = turn.token_ids
    plain = hidden_states(tiny_lm, ids.tolist()).logits[0].double()
    with steered(tiny_lm, steering):
        pushed = hidden_states(tiny_lm, ids.tolist()).logits[0].double()
    rows = slice(turn.n_prompt - 1, len(ids) - 1)
    p, q = torch.log_softmax(pushed[rows], -1), torch.log_softmax(plain[rows], -1)
    expected = (p.exp() * (p - q)).sum(-1).numpy()
    np.testing.assert_allclose(step_kl(tiny_lm, ids, turn.n_prompt, steering), expected, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(turn.steering_kl, expected, rtol=1e-3, atol=1e-6)


def test_feature_steering_scales_to_what_it_says(tiny_lm):
    rows = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    by_norm = feature_steering(rows, [4, 9], 0.5, RESIDUAL_NORM, layer=2, residual_norm=300.0)
    assert by_norm.norm == pytest.approx(150.0, rel=1e-5)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    direction = unit.sum(0) / np.linalg.norm(unit.sum(0))
    np.testing.assert_allclose(by_norm.vector / by_norm.norm, direction, rtol=1e-5)
    assert "features 4, 9 at layer 2" in by_norm.description and "150.0" in by_norm.description

    by_peak = feature_steering(rows, [4, 9], 2.0, MAX_ACTIVATION, layer=2, max_activations=[3.0, 5.0])
    np.testing.assert_allclose(by_peak.vector, 2.0 * (3.0 * rows[0] + 5.0 * rows[1]), rtol=1e-5)
    with pytest.raises(ValueError, match="scale must be"):
        feature_steering(rows, [4], 1.0, "volts", layer=2)


def test_mean_difference_is_the_difference_of_hand_read_means(tiny_lm):
    a, b = ["I love this, it is wonderful.", "What a great day!"], ["I hate this.", "A terrible, awful day."]

    def hand_mean(prompts):
        rows = [layer_outputs(tiny_lm, tiny_lm.tokenizer(t)["input_ids"])[0][1][0, 1:] for t in prompts]
        return torch.cat(rows).double().mean(0).numpy()

    steering = mean_difference_steering(tiny_lm, 1, a, b, 2.0)
    np.testing.assert_allclose(steering.vector, 2.0 * (hand_mean(a) - hand_mean(b)), rtol=1e-4, atol=1e-5)
    assert steering.layer == 1 and "activation addition at layer 1" in steering.description


def test_typical_norm_is_the_mean_token_norm_without_bos(tiny_lm):
    ids = tiny_lm.tokenizer("The sky is blue because the air scatters light.")["input_ids"]
    resid = layer_outputs(tiny_lm, ids)[0][1][0, 1:]
    assert typical_norm(tiny_lm, 1, ids) == pytest.approx(float(resid.norm(dim=-1).mean()), rel=1e-5)
