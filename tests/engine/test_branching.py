"""Branching: a reply regenerated from step i with token i forced, checked against the original turn and a
hand-run `generate` from the same prefix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.engine.capture import run_turn, stream_turn
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import InvalidParameterError

QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]
GREEDY = SamplingParams(max_new_tokens=10)


@pytest.fixture(scope="module")
def original(tiny_lm):
    return run_turn(tiny_lm, QUESTION, GREEDY)


def reply(record):
    return record.token_ids[record.n_prompt :].tolist()


def other_candidate(record, step):
    """The second most likely token at `step`: what a user clicks in the Next token tab."""
    return int(record.steps.raw_ids[step, 1])


@pytest.mark.parametrize("step", [0, 3])
def test_a_greedy_branch_keeps_the_prefix_forces_the_token_and_equals_a_hand_run_generate(tiny_lm, original, step):
    token = other_candidate(original, step)
    forced = [*reply(original)[:step], token]
    branch = run_turn(tiny_lm, QUESTION, GREEDY, forced=forced)

    assert branch.token_ids[: branch.n_prompt].tolist() == original.token_ids[: original.n_prompt].tolist()
    assert reply(branch)[:step] == reply(original)[:step]
    assert reply(branch)[step] == token
    assert branch.forced == step + 1 and branch.steps.n_steps == len(reply(branch)) <= GREEDY.max_new_tokens

    prefix = torch.tensor([[*original.token_ids[: original.n_prompt].tolist(), *forced]])
    with torch.inference_mode():
        expected = tiny_lm.model.generate(
            prefix, attention_mask=torch.ones_like(prefix), do_sample=False, top_k=None, top_p=None,
            max_new_tokens=GREEDY.max_new_tokens - len(forced), eos_token_id=tiny_lm.stop_token_ids,
            pad_token_id=tiny_lm.pad_token_id,
        )[0].tolist()  # fmt: skip
    assert branch.token_ids.tolist() == expected


def test_the_forced_steps_keep_the_distributions_the_model_had_there(tiny_lm, original):
    step = 3
    branch = run_turn(tiny_lm, QUESTION, GREEDY, forced=[*reply(original)[:step], other_candidate(original, step)])
    shared = slice(0, step + 1)  # the same context, so the same distributions, whatever was chosen at `step`
    np.testing.assert_array_equal(branch.steps.raw_ids[shared], original.steps.raw_ids[shared])
    np.testing.assert_allclose(branch.steps.raw_probs[shared], original.steps.raw_probs[shared], atol=1e-5)
    # the chosen token's probability at `step` is the clicked candidate's, not the original's
    assert branch.steps.chosen_raw_prob[step] == pytest.approx(float(original.steps.raw_probs[step, 1]), abs=1e-5)
    np.testing.assert_allclose(branch.steps.chosen_raw_prob[:step], original.steps.chosen_raw_prob[:step], atol=1e-5)


def test_a_forced_stop_token_ends_the_reply_and_a_full_prefix_generates_nothing(tiny_lm, original):
    stop = tiny_lm.stop_token_ids[0]
    ended = run_turn(tiny_lm, QUESTION, GREEDY, forced=[*reply(original)[:2], stop])
    assert reply(ended) == [*reply(original)[:2], stop]
    assert ended.stop_reason == tiny_lm.stop_name(stop) and ended.steps.n_steps == 3

    full = reply(original)[: GREEDY.max_new_tokens]
    full = full + [other_candidate(original, 0)] * (GREEDY.max_new_tokens - len(full))
    whole = run_turn(tiny_lm, QUESTION, GREEDY, forced=full)
    assert reply(whole) == full and whole.steps.n_steps == GREEDY.max_new_tokens


def test_the_stream_starts_with_the_forced_tokens(tiny_lm, original):
    forced = [*reply(original)[:2], other_candidate(original, 2)]
    progress = list(stream_turn(tiny_lm, QUESTION, GREEDY, forced=forced))
    assert progress[0].n_reply_tokens == 3
    assert progress[-1].record.forced == 3


def test_bad_forced_tokens_are_refused_with_the_range(tiny_lm):
    vocab = tiny_lm.model.get_input_embeddings().num_embeddings
    with pytest.raises(InvalidParameterError, match=rf"\[0, {vocab - 1}\]"):
        run_turn(tiny_lm, QUESTION, GREEDY, forced=[vocab])
    with pytest.raises(InvalidParameterError, match="at most max_new_tokens"):
        run_turn(tiny_lm, QUESTION, GREEDY, forced=[1] * (GREEDY.max_new_tokens + 1))
