"""Every tab's handler on a tiny random model, as the UI and the API call them."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from inspectors.engine.attention import layer_attention
from inspectors.settings import Settings
from inspectors.ui.handlers import Handlers
from inspectors.ui.session import Session
from inspectors.views.tokens import REPLY

CONTROLS = ("", 0, 0, 1, 6, "")  # system prompt, temperature, top-k, top-p, max new tokens, seed


class FakeRequest:
    def __init__(self, session_hash: str):
        self.session_hash = session_hash


@pytest.fixture
def handlers(tiny_dirs):
    return Handlers(Settings(model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256, max_new_tokens_limit=64))


def chat(handlers, message, session, controls=CONTROLS, who="a"):
    return list(handlers.chat(message, session, *controls, request=FakeRequest(who)))


def test_chat_streams_then_keeps_the_turn(handlers):
    updates = chat(handlers, "Hello there", None)
    assert len(updates) >= 2  # at least one streamed update, then the final one
    messages, session, status, box = updates[-1]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "Hello there"
    assert status.startswith("Turn 1:") and box == ""
    assert updates[0][2] == "Generating…"
    updates = chat(handlers, "And again", session)
    assert len(updates[-1][1].conversation.records) == 2


@pytest.mark.parametrize(
    ("message", "controls", "expected"),
    [
        ("   ", CONTROLS, "empty"),
        ("hi", ("", -1, 0, 1, 6, ""), "`temperature`"),
        ("hi", ("", 0, 2.5, 1, 6, ""), "`top_k` must be a whole number"),
        ("hi", ("", 0, 0, 1, 999, ""), "`max_new_tokens` must be at most 64"),
        ("hi", ("", 0, 0, 1, 6, "abc"), "`seed`"),
    ],
)
def test_bad_input_gives_a_message_and_keeps_the_history(handlers, message, controls, expected):
    session = chat(handlers, "first", None)[-1][1]
    before = [dict(m) for m in session.conversation.messages]
    messages, session, status, box = chat(handlers, message, session, controls)[-1]
    assert expected in status and status.startswith("⚠️")
    assert messages == before and session.conversation.messages == before
    assert box == message  # the message stays in the box to fix and resend


def test_overlong_message_is_cut_with_a_visible_notice(handlers):
    _messages, session, status, _ = chat(handlers, "word " * 600, None)[-1]
    assert "cut by" in status
    assert session.conversation.records[-1].n_prompt <= 256 - 6


def test_model_failure_mid_generation_keeps_history(handlers, monkeypatch):
    session = chat(handlers, "first", None)[-1][1]
    lm = handlers.model(session)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setattr(lm.model, "generate", broken)
    messages, session, status, box = chat(handlers, "second", session)[-1]
    assert "device-side assert" in status and len(messages) == 2 and box == "second"


def test_undo_retry_clear(handlers):
    session = chat(handlers, "first", None)[-1][1]
    session = chat(handlers, "second", session)[-1][1]
    retried = list(handlers.retry(session, *CONTROLS, request=FakeRequest("a")))[-1]
    assert len(retried[1].conversation.records) == 2 and retried[0][-2]["content"] == "second"
    messages, session, _status, box = handlers.undo(retried[1])
    assert len(messages) == 2 and box == "second"
    messages, session, _status, box = handlers.clear(session)
    assert messages == [] and session.conversation.records == []
    assert handlers.undo(session)[2] == "Nothing to undo."


def test_a_failed_retry_keeps_the_previous_reply(handlers, monkeypatch):
    session = chat(handlers, "first", None)[-1][1]
    before = [dict(m) for m in session.conversation.messages]

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(handlers.model(session).model, "generate", broken)
    messages, session, status, box = list(handlers.retry(session, *CONTROLS, request=FakeRequest("a")))[-1]
    assert "out of memory" in status
    assert messages == before and session.conversation.messages == before
    assert len(session.conversation.records) == 1


def test_stop_ends_only_this_sessions_reply(handlers):
    stream = handlers.chat("Tell me everything", None, "", 0, 0, 1, 60, "", request=FakeRequest("mine"))
    next(stream)
    handlers.stop(FakeRequest("someone-else"))
    handlers.stop(FakeRequest("mine"))
    _messages, session, status, _ = list(stream)[-1]
    assert "stopped by stopped" in status
    assert session.conversation.records[-1].steps.n_steps < 60


def test_every_tab_shows_the_chosen_turn(handlers):
    session = chat(handlers, "first question", None)[-1][1]
    session = chat(handlers, "second question", session)[-1][1]
    dropdown = handlers.turns(session)
    assert [c[1] for c in dropdown.choices] == [0, 1] and dropdown.value == 1

    text, marked, _notes = handlers.prompt(session, 0)
    assert text == session.conversation.records[0].prompt_text and "gi-special" in marked
    assert "second question" in handlers.prompt(session, 1)[0]

    chips, rows = handlers.tokens(session, 1)
    record = session.conversation.records[1]
    assert [r[1] for r in rows] == record.token_ids.tolist()
    assert sum(1 for _, part in chips if part == REPLY) >= 1

    figure, _table, summary, reply, _slider = handlers.next_token(session, 1, 2)
    assert summary.startswith("Step 2:") and len(reply) == record.steps.n_steps
    np.testing.assert_allclose(figure.data[0].x[::-1], record.steps.raw_probs[2][:10])
    assert handlers.next_token(session, 1, 99)[2].startswith(f"Step {record.steps.n_steps - 1}:")  # clamped

    lm = handlers.model(session)
    heatmap, overview = handlers.attention(session, 1, 1, "2", 0)
    np.testing.assert_allclose(heatmap.data[0].z, layer_attention(lm, record, 1)[2], atol=1e-6)
    assert len(overview.data) == lm.n_heads
    handlers.sae_for(lm, wait=True)
    assert "No sparse autoencoder is known for" in handlers.sae(session, 1, None, 0, 0)[0]

    free = handlers.tokenize(session, "Hello world")
    assert [r[1] for r in free] == lm.tokenizer("Hello world", add_special_tokens=False)["input_ids"]


def test_tabs_before_any_turn_and_bad_choices(handlers):
    assert handlers.prompt(None, None)[0] == ""
    assert handlers.tokens(None, None) == ([], [])
    assert handlers.next_token(None, None, 0)[2] == "No generated tokens yet."
    session = chat(handlers, "first", None)[-1][1]
    with pytest.raises(gr.Error, match="`turn` must be in"):
        handlers.prompt(session, 5)
    with pytest.raises(gr.Error, match="`head` must be"):
        handlers.attention(session, 0, 1, "7", 0)


def test_failed_model_load_keeps_the_current_model(handlers, tmp_path):
    session = chat(handlers, "first", None)[-1][1]
    kept, status, _card, picked = handlers.switch_model(str(tmp_path / "missing-model"), session)
    assert status.startswith("⚠️") and "was not found" in status and "Still using" in status
    assert kept is session and picked == session.model_id
    assert len(kept.conversation.records) == 1


def test_sessions_are_independent(handlers):
    alice = chat(handlers, "alice's question", None, who="alice")[-1][1]
    bob = chat(handlers, "bob's question", Session(model_id=handlers.settings.model_id), who="bob")[-1][1]
    assert alice.conversation.messages[0]["content"] == "alice's question"
    assert bob.conversation.messages[0]["content"] == "bob's question"
    assert len(alice.conversation.records) == len(bob.conversation.records) == 1


def test_sae_tab_with_a_configured_sae(tiny_dirs, tmp_path):
    from inspectors.sae.activations import SAE_PROBE
    from inspectors.sae.sparse import SparseActivations
    from tests.helpers import save_tiny_sae

    sae_dir = save_tiny_sae(tmp_path / "sae", d_in=64, layer=2)
    settings = Settings(
        model_id=str(tiny_dirs["gemma3"]),
        max_context_tokens=256,
        max_new_tokens_limit=64,
        sae=str(sae_dir),
        sae_feature=3,
    )
    handlers = Handlers(settings)
    handlers.sae_for(handlers.model(None), wait=True)
    session = chat(handlers, "Time travel is fun", None)[-1][1]
    record = session.conversation.records[-1]
    acts = record.probes[SAE_PROBE]
    assert isinstance(acts, SparseActivations) and acts.feature == 3 and acts.layer == 2

    summary, shading, figure, rows, card, shown = handlers.sae(session, 0, None, 3, 4)
    assert "Feature **3**" in summary and "neuronpedia.org/tiny-gemma/2-res-test/3" in summary
    assert "Feature 3 on Neuronpedia" in card and "ships no feature contexts" not in card and shown == 3
    assert len(shading) == record.n_tokens
    np.testing.assert_allclose(figure.data[0].y, acts.feature_values)
    assert [r[1] for r in rows] == [int(f) for f, v in zip(acts.top_ids[4], acts.top_values[4], strict=True) if v > 0]

    other = handlers.sae(session, 0, "", 11, 0)  # another feature: computed on demand for the same turn
    assert "Feature **11**" in other[0] and session.sae_feature == 11
    assert chat(handlers, "More", session)[-1][1].conversation.records[-1].probes[SAE_PROBE].feature == 11
    with pytest.raises(gr.Error, match=r"`feature` must be an integer in \[0, 127\]"):
        handlers.sae(session, 0, None, 500, 0)


def test_an_sae_for_another_model_is_explained_not_fatal(tiny_dirs, tmp_path):
    from tests.helpers import save_tiny_sae

    sae_dir = save_tiny_sae(tmp_path / "sae", d_in=32, layer=1)
    handlers = Handlers(Settings(model_id=str(tiny_dirs["gemma3"]), max_new_tokens_limit=64, sae=str(sae_dir)))
    handlers.sae_for(handlers.model(None), wait=True)
    messages, session, status, _ = chat(handlers, "hello", None)[-1]
    assert status.startswith("Turn 1:")  # chat works without the SAE
    assert "pick an SAE trained on this model" in handlers.sae(session, 0, None, 0, 0)[0]


def test_catalog_sae_that_cannot_be_downloaded_is_explained(tiny_dirs, monkeypatch):
    import huggingface_hub.constants

    from inspectors.sae import sources as sae_sources
    from inspectors.sae.catalog import release_for

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(sae_sources, "release_for", lambda model_id: release_for("google/gemma-3-270m"))
    handlers = Handlers(Settings(model_id=str(tiny_dirs["gemma3"]), max_new_tokens_limit=64))
    lsae, reason = handlers.sae_for(handlers.model(None), wait=True)
    assert lsae is None
    assert "Could not load the SAE gemma-scope-2-270m-pt-res / layer_9_width_16k_l0_medium" in reason
    assert "cannot be reached" in reason
    messages, session, status, _ = chat(handlers, "hello", None)[-1]
    assert status.startswith("Turn 1:")
    assert reason == handlers.sae(session, 0, None, None, 0)[0]
