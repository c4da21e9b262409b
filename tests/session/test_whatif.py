"""What if, through the session: branches of the conversation and steered replies beside the default."""

from __future__ import annotations

import numpy as np
import pytest

from inspectors.session import Session, Shared

SAMPLING = ("Be brief.", 0, 0, 1, 6, "")  # system prompt, greedy, max 6 new tokens, no seed


@pytest.fixture(scope="module")
def settings(sae_settings):
    return sae_settings


@pytest.fixture
def session(settings):
    session = Session(Shared(settings))
    assert list(session.send("Name a colour.", *SAMPLING))[-1].ok
    return session


def last(updates):
    updates = list(updates)
    assert updates, "no update"
    return updates[-1]


def reply_ids(record):
    return record.token_ids[record.n_prompt :].tolist()


def test_a_branch_forces_the_token_keeps_the_original_and_the_chat_follows_it(session):
    original = session.records[0]
    token = int(original.steps.raw_ids[2, 1])  # the runner-up at step 2, as a click in the Next token tab
    update = last(session.branch(0, 2, token))
    assert update.ok, update.status
    assert "Branch 2" in update.status and "step 2" in update.status

    new = session.records[0]
    assert reply_ids(new)[:2] == reply_ids(original)[:2] and reply_ids(new)[2] == token
    assert new.branch["from_turn"] == 0 and new.branch["step"] == 2 and new.forced == 3
    assert new.params["seed"] == original.params["seed"]
    assert update.messages[-1]["content"] == new.reply_text
    assert [label for label, _ in session.branch_choices()][1].startswith("Branch 2 · turn 1, step 2 forced")

    # the chat continues from the branch; the original branch is untouched
    assert last(session.send("And another?", *SAMPLING)).ok
    branches = session.conversation.branches
    assert [len(b.records) for b in branches] == [1, 2] and branches[1].records[0] is new
    back = session.switch_branch(0)
    assert back.ok and session.records == [original]
    assert back.messages[-1]["content"] == original.reply_text


def test_typed_text_is_forced_token_by_token(session):
    original = session.records[0]
    update = last(session.branch(0, 1, None, " blue sky"))
    assert update.ok, update.status
    typed = session.model().tokenizer(" blue sky", add_special_tokens=False)["input_ids"]
    assert reply_ids(session.records[0])[: 1 + len(typed)] == [*reply_ids(original)[:1], *typed]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 0, 3), "`turn` must be a whole number in [0, 0]"),
        ((0, 99, 3), "`step` must be a whole number in [0, 5]"),
        ((0, 1, None, ""), "`token_id` is missing: click a candidate token, or type text"),
        ((0, 1, 7, "blue"), "`token_id` and text cannot both be given"),
        ((0, 1, 10**9), "`token_id` must be a whole number in [0, "),
        ((0, 1, "abc"), "`token_id` must be a whole number"),
    ],
)
def test_a_bad_branch_request_says_what_is_wrong_and_changes_nothing(session, args, message):
    before = (session.chat_messages(), list(session.records), len(session.conversation.branches))
    update = last(session.branch(*args))
    assert not update.ok and message in update.status
    assert (session.chat_messages(), list(session.records), len(session.conversation.branches)) == before


def test_branching_an_empty_chat_or_switching_to_a_missing_branch_is_refused(settings, session):
    empty = Session(Shared(settings))
    assert "send a message first" in last(empty.branch(None, 0, 1)).status
    refused = session.switch_branch(3)
    assert not refused.ok and "`branch` must be a whole number in [0, 0]" in refused.status


def test_strength_zero_steering_gives_the_default_reply_and_zero_kl(session):
    update = last(session.steer("Tell me more.", None, "SAE features", "", "5", 0.0, "residual norm"))
    assert update.chat.ok, update.chat.status
    default, steered = session.conversation.branches[0].records[-1], session.records[-1]
    assert steered.steering is not None and default.steering is None
    assert reply_ids(steered) == reply_ids(default) and update.steered_text == update.default_text
    np.testing.assert_allclose(steered.steps.raw_probs, default.steps.raw_probs, atol=1e-6)
    np.testing.assert_allclose(steered.steering_kl, 0.0, atol=1e-6)
    assert steered.params["seed"] == default.params["seed"]
    assert "feature 5" in update.summary.lower() or "Feature 5" in update.summary
    assert len(update.rows) == steered.steps.n_steps and update.figure is not None


def test_regenerating_a_turn_steered_keeps_its_seed_and_prompt_and_reports_the_scale(session):
    original = session.records[0]
    update = last(session.steer("", 0, "SAE features", "", "5, 9", 3.0, "residual norm"))
    assert update.chat.ok, update.chat.status
    steered = session.records[0]
    assert steered.token_ids[: steered.n_prompt].tolist() == original.token_ids[: original.n_prompt].tolist()
    assert steered.params == original.params and update.default_text == original.reply_text
    assert "features 5, 9 at layer 2" in steered.steering["description"]
    assert "typical residual norm" in update.summary
    assert steered.steering["norm"] > 0 and (steered.steering_kl > 0).all()
    assert len(session.conversation.branches) == 2 and session.conversation.branches[0].records == [original]


def test_activation_addition_steers_without_an_sae(session):
    positive, negative = "I love it.\nWonderful!", "I hate it."
    update = last(session.steer("", None, "activation addition", 1, "", 8.0, "", positive, negative))
    assert update.chat.ok, update.chat.status
    assert "activation addition at layer 1" in session.records[0].steering["description"]
    assert update.figure is not None and "Feature" not in update.summary


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": ""}, "`features` must list at least one number"),
        ({"features": "500"}, "`feature` must be a whole number in [0, 127]"),
        ({"features": "1", "strength": 9}, "`strength` must be a number in [-4, 4]"),
        ({"features": "1", "scale": "volts"}, "`scale` must be one of"),
        ({"features": "1", "scale": "max activation"}, "does not ship"),
        ({"mode": "magic"}, "`mode` must be one of"),
        ({"mode": "activation addition", "layer": 1, "prompts_a": "x"}, "`prompts_b` must have at least one"),
        ({"mode": "activation addition", "layer": 40, "prompts_a": "x", "prompts_b": "y"}, "`layer` must be"),
    ],
)
def test_bad_steering_says_what_is_wrong_and_changes_nothing(session, kwargs, message):
    before = (session.chat_messages(), list(session.records), len(session.conversation.branches))
    args = {"message": "", "turn": None, "mode": "SAE features", "layer": "", "features": "1", "strength": 1.0,
            "scale": "residual norm", "prompts_a": "", "prompts_b": "", **kwargs}  # fmt: skip
    update = last(session.steer(**args))
    assert not update.chat.ok and message in update.chat.status, update.chat.status
    assert (session.chat_messages(), list(session.records), len(session.conversation.branches)) == before


def test_a_busy_session_refuses_a_branch_and_steering(session):
    assert session._begin()
    try:
        assert "still being generated" in last(session.branch(0, 0, 1)).status
        assert "still being generated" in last(session.steer("Hi")).chat.status
        assert "still being generated" in session.switch_branch(0).status
    finally:
        session._end()
