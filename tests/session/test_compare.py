"""Compare, through the session: a turn against its message without the template, or against another turn."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from inspectors.session import Session, Shared
from tests.helpers import argmax_loop

SAMPLING = ("", 0, 0, 1, 6, "")  # no system prompt, greedy, max 6 new tokens, no seed
MESSAGE = "Name a colour."


@pytest.fixture(scope="module")
def settings(sae_settings):
    return sae_settings


@pytest.fixture
def session(settings):
    session = Session(Shared(settings))
    assert list(session.send(MESSAGE, *SAMPLING))[-1].ok
    return session


def state(session):
    return session.chat_messages(), list(session.records), len(session.conversation.branches)


def test_a_turn_against_its_message_without_the_template(session):
    record = session.records[0]
    before = state(session)
    panel = session.compare()
    assert panel.ok, panel.status
    assert panel.against == "no template" and panel.turn_a == 0 and panel.turn_b is None
    assert state(session) == before  # read-only

    pieces_a = [piece for piece, _ in panel.tokens_a]
    pieces_b = [piece for piece, _ in panel.tokens_b]
    assert "<start_of_turn>" in pieces_a and pieces_a.count("<bos>") == 1
    lm = session.model()
    plain_ids = lm.tokenizer(MESSAGE)["input_ids"]  # the tokenizer's own encoding: one <bos>, no markers
    n_plain = len(plain_ids)
    assert pieces_b[0] == "<bos>" and pieces_b.count("<bos>") == 1
    assert "<start_of_turn>" not in pieces_b[:n_plain] and len(pieces_b) > n_plain
    assert [part for _, part in panel.tokens_b[:n_plain]] == ["template", *["prompt"] * (n_plain - 1)]
    reference = argmax_loop(lm, plain_ids, int(record.params["max_new_tokens"]))  # greedy, by hand
    assert len(pieces_b) == n_plain + len(reference)
    assert panel.reply_a == record.reply_text
    answer = [t for t in reference if t not in lm.stop_token_ids]
    assert panel.reply_b == lm.tokenizer.decode(answer, skip_special_tokens=True).strip()

    c = panel.comparison
    # A's first-token distribution is the one the capture recorded while generating the turn
    assert c.top_ids_a.tolist() == record.steps.raw_ids[0, :10].tolist()
    np.testing.assert_allclose(c.top_probs_a, record.steps.raw_probs[0, :10], rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([plain_ids])).logits[0, -1].double()
    q = torch.softmax(logits, dim=0).numpy()
    assert c.top_ids_b.tolist() == np.argsort(-q)[:10].tolist()
    assert c.kl_ab > 0 and c.kl_ba > 0 and c.cosine.shape == (4,)
    assert c.sae is not None and c.sae.layer == 2

    assert f"{c.kl_ab:.3f}" in panel.status and "without the template" in panel.label_b
    assert "greedy" in panel.status and panel.figure is not None
    assert len(panel.top_rows) == 10 and len(panel.layer_rows) == 4 and panel.sae_rows
    api = json.loads(json.dumps(panel.api()))
    assert api["kl_a_b"] == pytest.approx(c.kl_ab, abs=1e-6) and api["top10_overlap"] == c.overlap
    assert api["b"]["tokens"] == pieces_b and api["cosine_per_layer"] == pytest.approx(c.cosine.tolist(), abs=1e-5)
    assert api["sae"]["layer"] == 2 and api["sae"]["common"] == c.sae.common


def test_a_turn_against_itself_is_kl_zero_cosine_one_and_every_feature_shared(session):
    panel = session.compare(0, 0, "turn")
    assert panel.ok, panel.status
    c = panel.comparison
    assert c.kl_ab == pytest.approx(0.0, abs=1e-7) and c.kl_ba == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(c.cosine, 1.0, atol=1e-5)
    assert c.overlap == 10 and c.jaccard == 1.0
    assert c.sae.common == c.sae.top_ids_a.tolist() and len(c.sae.common) > 0
    assert all(row[3] == "A and B" for row in panel.sae_rows)
    assert panel.tokens_a == panel.tokens_b and "same turn" in panel.status


def test_two_turns_differ_and_the_figure_shows_both(session):
    assert list(session.send("And another one?", *SAMPLING))[-1].ok
    panel = session.compare("0", "", "turn")  # empty turn_b: the latest
    assert panel.ok, panel.status
    assert panel.turn_a == 0 and panel.turn_b == 1 and panel.label_b == "turn 2"
    c = panel.comparison
    assert c.kl_ab > 0 and (c.cosine < 1 - 1e-4).any() and c.n_prompt_b > c.n_prompt_a
    assert len(panel.figure.data) == 5
    later = session.compare(1)  # a later turn against its message alone says what B leaves out
    assert later.ok and "1 earlier turn" in later.status


def test_turns_of_different_models_are_refused(session):
    assert list(session.send("And another one?", *SAMPLING))[-1].ok
    records = session.conversation.records
    records[1] = dataclasses.replace(records[1], model_id="someone/other-model")
    panel = session.compare(0, 1, "turn")
    assert not panel.ok and "different models" in panel.status and "someone/other-model" in panel.status
    assert panel.comparison is None and panel.figure is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"against": "magic"}, "`against` must be one of ['no template', 'turn']"),
        ({"turn_a": 5}, "`turn_a` must be a whole number in [0, 0]"),
        ({"turn_a": "abc"}, "`turn_a` must be a whole number in [0, 0]"),
        ({"turn_a": 0.5}, "`turn_a` must be a whole number"),
        ({"turn_b": 3, "against": "turn"}, "`turn_b` must be a whole number in [0, 0]"),
        ({"turn_b": -1, "against": "turn"}, "`turn_b` must be a whole number in [0, 0]"),
    ],
)
def test_bad_inputs_say_what_is_wrong_and_change_nothing(session, kwargs, message):
    before = state(session)
    panel = session.compare(**kwargs)
    assert not panel.ok and message in panel.status, panel.status
    assert panel.comparison is None and state(session) == before
    assert json.dumps(panel.api())


def test_an_empty_chat_is_refused(settings):
    panel = Session(Shared(settings)).compare()
    assert not panel.ok and "send a message first" in panel.status
