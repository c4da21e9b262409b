"""The session layer on a tiny random model: chat, every tab's panel, bad inputs, stop, model switching."""

from __future__ import annotations

import threading
import time
import types

import gradio as gr
import numpy as np
import pytest

from inspectors.engine.attention import layer_attention
from inspectors.errors import InvalidParameterError
from inspectors.session import Session, Shared, sampling_params
from inspectors.session.session import BUSY
from inspectors.settings import Settings
from inspectors.views.tokens import REPLY
from tests.helpers import hold_generation_until_stopped

CONTROLS = ("", 0, 0, 1, 6, "")  # system prompt, temperature, top-k, top-p, max new tokens, seed


@pytest.fixture
def shared(tiny_dirs):
    return Shared(Settings(model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256, max_new_tokens_limit=64))


@pytest.fixture
def session(shared):
    return Session(shared, "alice")


def chat(session, message, controls=CONTROLS, **kwargs):
    return list(session.send(message, *controls, **kwargs))


def test_chat_streams_then_keeps_the_turn(session):
    updates = chat(session, "Hello there")
    assert len(updates) >= 2 and not updates[0].done and updates[0].status == "Generating…"
    last = updates[-1]
    assert last.done and last.ok and [m["role"] for m in last.messages] == ["user", "assistant"]
    assert last.messages[0]["content"] == "Hello there"
    assert last.status.startswith("Turn 1:") and last.box == ""
    assert chat(session, "And again")[-1].status.startswith("Turn 2:")
    assert len(session.records) == 2 and session.records[1].model_id == session.model_id


@pytest.mark.parametrize(
    ("message", "controls", "expected"),
    [
        ("   ", CONTROLS, "empty"),
        ("hi", ("", -1, 0, 1, 6, ""), "`temperature` must be a number in [0, 5], but is -1"),
        ("hi", ("", "abc", 0, 1, 6, ""), "`temperature` must be a number in [0, 5], but is 'abc'"),
        ("hi", ("", "nan", 0, 1, 6, ""), "`temperature`"),
        ("hi", ("", 0, 2.5, 1, 6, ""), "`top_k` must be a whole number >= 0, but is 2.5"),
        ("hi", ("", 0, 0, 1, 999, ""), "`max_new_tokens` must be at most 64"),
        ("hi", ("", 0, 0, 1, 6, "abc"), "`seed` must be a whole number in [0, 4294967295], but is 'abc'"),
        ("hi", (None, 0, 0, 1, 6, ""), None),  # a missing system prompt is no system prompt
        (12, CONTROLS, "`message` must be text"),
    ],
)
def test_bad_input_gives_a_message_and_keeps_the_history(session, message, controls, expected):
    chat(session, "first")
    before = session.chat_messages()
    last = chat(session, message, controls)[-1]
    if expected is None:
        assert last.ok and len(session.records) == 2
        return
    assert expected in last.status and last.status.startswith("⚠️") and not last.ok
    assert last.messages == before and session.chat_messages() == before
    assert last.box == (message if isinstance(message, str) else "")  # the message stays in the box


def test_numeric_strings_are_fine(session):
    last = chat(session, "hi", ("", "0.7", "40", "0.9", "5", "12"))[-1]
    assert last.ok and session.records[-1].params == {**session.records[-1].params, "temperature": 0.7, "seed": 12}
    assert session.records[-1].params["top_k"] == 40 and session.records[-1].steps.n_steps <= 5


def test_sampling_params_from_raw_values():
    assert sampling_params("0.7", 40.0, "0.9", 128.0, "").top_k == 40
    assert sampling_params(0, 0, 1, 8, 12.0).seed == 12
    with pytest.raises(InvalidParameterError, match=r"`top_k` must be a whole number >= 0, but is 2\.5"):
        sampling_params(1, 2.5, 1, 8, None)
    with pytest.raises(InvalidParameterError, match="`top_p` must be a number in"):
        sampling_params(1, 0, float("inf"), 8, None)


def test_overlong_message_is_cut_with_a_visible_notice(session):
    last = chat(session, "word " * 600)[-1]
    assert "cut by" in last.status
    assert session.records[-1].n_prompt <= 256 - 6


def test_model_failure_mid_generation_keeps_history(session, monkeypatch):
    chat(session, "first")

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setattr(session.model().model, "generate", broken)
    last = chat(session, "second")[-1]
    assert "device-side assert" in last.status and len(last.messages) == 2 and last.box == "second"


def test_undo_retry_clear(session):
    chat(session, "first")
    chat(session, "second")
    retried = list(session.retry(*CONTROLS))[-1]
    assert len(session.records) == 2 and retried.messages[-2]["content"] == "second"
    undone = session.undo()
    assert len(undone.messages) == 2 and undone.box == "second"
    cleared = session.clear()
    assert cleared.messages == [] and session.records == []
    assert session.undo().status == "Nothing to undo."
    assert list(session.retry(*CONTROLS))[-1].status == "Nothing to retry yet."


def test_a_failed_retry_keeps_the_previous_reply(session, monkeypatch):
    chat(session, "first")
    before, record = session.chat_messages(), session.records[0]

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(session.model().model, "generate", broken)
    last = list(session.retry(*CONTROLS))[-1]
    assert "out of memory" in last.status and not last.ok
    assert last.messages == before and session.chat_messages() == before and session.records == [record]


def test_stop_ends_only_this_sessions_reply(shared, monkeypatch):
    hold_generation_until_stopped(monkeypatch)
    mine, other = Session(shared, "mine"), Session(shared, "other")
    stream = mine.send("Tell me everything", "", 0, 0, 1, 60, "")
    next(stream)
    assert other.stop() == "Stopped."  # nothing of the other session's is running
    assert mine.stop() == "Stopping…"
    last = list(stream)[-1]
    assert "stopped by stopped" in last.status and mine.records[-1].steps.n_steps < 60


def test_stop_pressed_while_the_reply_waits_in_the_queue(session):
    asked = time.monotonic()
    session.stop()  # after the user asked, before the reply started
    last = chat(session, "Are you there?", submitted_at=asked)[-1]
    assert "Stopped before the reply started" in last.status and last.box == "Are you there?"
    assert session.records == []
    # a message sent after that Stop is answered as usual
    assert chat(session, "Are you there?", submitted_at=time.monotonic())[-1].ok and len(session.records) == 1


def test_a_second_action_while_a_reply_streams_is_refused(session, monkeypatch):
    hold_generation_until_stopped(monkeypatch)
    stream = session.send("Tell me everything", "", 0, 0, 1, 30, "")
    next(stream)
    assert BUSY in chat(session, "me too")[-1].status
    assert BUSY in session.undo().status and BUSY in session.clear().status
    assert BUSY in session.load_model(session.model_id).status
    session.stop()
    list(stream)
    assert len(session.records) == 1


def test_every_tab_shows_the_chosen_turn(session):
    chat(session, "first question")
    chat(session, "second question")
    assert [c[1] for c in session.turn_choices()] == [0, 1]
    record = session.records[1]

    prompt = session.prompt_panel(0)
    assert prompt.text == session.records[0].prompt_text and "gi-special" in prompt.html
    assert "second question" in session.prompt_panel("1").text
    assert session.prompt_panel(None).turn == 1  # empty: the latest

    tokens = session.tokens_panel(1)
    assert [r[1] for r in tokens.rows] == record.token_ids.tolist()
    assert sum(1 for _, part in tokens.chips if part == REPLY) >= 1

    step = session.next_token_panel(1, 2)
    assert step.summary.startswith("Step 2:") and len(step.reply_chips) == record.steps.n_steps
    np.testing.assert_allclose(step.figure.data[0].x[::-1], record.steps.raw_probs[2][:10])
    assert step.api()["rows"] == step.rows and step.n_steps == record.steps.n_steps

    lm = session.model()
    attention = session.attention_panel(1, 1, "2", 0)
    np.testing.assert_allclose(attention.heatmap.data[0].z, layer_attention(lm, record, 1)[2], atol=1e-3)
    assert len(attention.overview.data) == lm.n_heads
    rows = attention.api()["weights"]
    np.testing.assert_allclose(np.asarray(rows).sum(axis=1), 1, atol=1e-2)  # each query row is a distribution
    assert session.attention_panel(1, None).layer == lm.n_layers // 2  # empty: the middle layer

    session.shared.sae(session.model_id, wait=True)
    assert "No sparse autoencoder is known for" in session.sae_panel(1).summary
    assert session.tokenize("Hello world") == [[0, 9259, "Hello"], [1, 1902, "␣world"]]


@pytest.mark.parametrize(
    ("panel", "args", "message"),
    [
        ("prompt_panel", (5,), r"`turn` must be a whole number in \[0, 0\], but is 5"),
        ("prompt_panel", ("x",), r"`turn` must be a whole number in \[0, 0\], but is 'x'"),
        ("next_token_panel", (0, 6), r"`step` must be a whole number in \[0, 5\], but is 6"),
        ("next_token_panel", (0, -1), r"`step` must be a whole number in \[0, 5\]"),
        ("next_token_panel", (0, "2.5"), r"`step` must be a whole number"),
        ("attention_panel", (0, 4), r"`layer` must be a whole number in \[0, 3\], but is 4"),
        ("attention_panel", (0, 1, "7"), r"`head` must be a whole number in \[0, 3\], but is '7'"),
        ("attention_panel", (0, 1, "mean", 10_000), r"`query_start` must be a whole number in \[0, "),
        ("sae_panel", (0, 99), r"`layer` must be a whole number in \[0, 3\], but is 99"),
        ("tokenize", ("x" * 30_000,), r"`text` must be at most 20,000 characters long"),
        ("search_panel", ("travel " * 100,), r"`query` must be at most 200 characters long"),
    ],
)
def test_bad_choices_name_the_value_and_the_range_of_the_chosen_turn(session, panel, args, message):
    chat(session, "first")
    with pytest.raises(InvalidParameterError, match=message):
        getattr(session, panel)(*args)


def test_tabs_before_any_turn(session):
    assert session.prompt_panel().text == "" and session.tokens_panel().rows == []
    assert session.next_token_panel().summary == "No generated tokens yet."
    assert session.attention_panel().heatmap is None
    with pytest.raises(InvalidParameterError, match="has nothing to choose from: this conversation has none yet"):
        session.prompt_panel(0)


def test_a_failed_or_empty_model_load_keeps_the_model_and_the_conversation(session, tmp_path):
    chat(session, "first")
    model = session.model_id
    for bad, reason in [
        ("", "must name a model"),
        (str(tmp_path), "holds no model (missing: config.json, weights, tokenizer)"),
        (str(tmp_path / "missing-model"), "was not found"),
        ("/etc", "holds no model"),
    ]:
        switch = session.load_model(bad)
        assert not switch.ok and reason in switch.status, switch.status
        assert f"Still using {model}" in switch.status and "Your conversation is kept (1 turn)" in switch.status
        assert session.model_id == model and len(session.records) == 1


def test_switching_models_keeps_the_conversation_and_names_each_turns_model(session, tiny_dirs):
    chat(session, "first")
    switch = session.load_model(str(tiny_dirs["gemma2"]))
    assert switch.ok and "Your conversation is kept" in switch.status
    assert session.model_id == str(tiny_dirs["gemma2"])
    chat(session, "second")
    assert [r.model_id for r in session.records] == [str(tiny_dirs["gemma3"]), str(tiny_dirs["gemma2"])]
    assert [label.split(":")[0] for label, _ in session.turn_choices()] == ["Turn 1 · gemma3", "Turn 2 · gemma2"]
    # an earlier turn's views use the model that wrote it (gemma3 has 4 heads, so does gemma2 here)
    assert session.attention_panel(0, 1).n_layers == 4 and session.prompt_panel(0).text.startswith("<bos>")


def test_sessions_are_independent_under_concurrency(shared):
    sessions = [Session(shared, name) for name in ("alice", "bob", "carol", "dave")]
    errors = []

    def talk(session):
        try:
            for i in range(2):
                assert chat(session, f"{session.id} question {i}")[-1].ok
        except Exception as err:  # reported below, with the session's name
            errors.append((session.id, err))

    threads = [threading.Thread(target=talk, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for session in sessions:
        users = [m["content"] for m in session.chat_messages() if m["role"] == "user"]
        assert users == [f"{session.id} question 0", f"{session.id} question 1"]
        assert all(f"{session.id} question" in r.prompt_text for r in session.records)


def test_sae_tab_with_a_configured_sae(tiny_dirs, tmp_path):
    from inspectors.sae.activations import SAE_PROBE
    from inspectors.sae.sparse import SparseActivations
    from tests.helpers import save_tiny_sae

    sae_dir = save_tiny_sae(tmp_path / "sae", d_in=64, layer=2)
    settings = Settings(
        model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256, max_new_tokens_limit=64, sae=str(sae_dir),
        sae_feature=3,
    )  # fmt: skip
    session = Session(Shared(settings))
    session.shared.sae(session.model_id, wait=True)
    chat(session, "Time travel is fun")
    record = session.records[-1]
    acts = record.probes[SAE_PROBE]
    assert isinstance(acts, SparseActivations) and acts.feature == 3 and acts.layer == 2

    panel = session.sae_panel(0, None, 3, 4)
    assert "Feature **3**" in panel.summary and "neuronpedia.org/tiny-gemma/2-res-test/3" in panel.summary
    assert "Feature 3 on Neuronpedia" in panel.card and panel.feature == 3
    assert len(panel.shading) == record.n_tokens
    np.testing.assert_allclose(panel.figure.data[0].y, acts.feature_values)
    top = [int(f) for f, v in zip(acts.top_ids[4], acts.top_values[4], strict=True) if v > 0]
    assert [r[1] for r in panel.rows] == top

    other = session.sae_panel(0, "", "11", 0)  # another feature: computed on demand for the same turn
    assert "Feature **11**" in other.summary and session.sae_feature == 11
    chat(session, "More")
    assert session.records[-1].probes[SAE_PROBE].feature == 11
    with pytest.raises(InvalidParameterError, match=r"`feature` must be a whole number in \[0, 127\], but is 500"):
        session.sae_panel(0, None, 500, 0)
    with pytest.raises(InvalidParameterError, match=r"`position` must be a whole number in \[0, "):
        session.sae_panel(0, None, 3, 10_000)


def test_an_sae_for_another_model_is_explained_not_fatal(tiny_dirs, tmp_path):
    from tests.helpers import save_tiny_sae

    sae_dir = save_tiny_sae(tmp_path / "sae", d_in=32, layer=1)
    shared = Shared(Settings(model_id=str(tiny_dirs["gemma3"]), max_new_tokens_limit=64, sae=str(sae_dir)))
    session = Session(shared)
    shared.sae(session.model_id, wait=True)
    assert chat(session, "hello")[-1].status.startswith("Turn 1:")  # chat works without the SAE
    assert "pick an SAE trained on this model" in session.sae_panel(0).summary


def test_catalog_sae_that_cannot_be_downloaded_is_explained(tiny_dirs, monkeypatch):
    import huggingface_hub.constants

    from inspectors.sae import sources as sae_sources
    from inspectors.sae.catalog import release_for

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(sae_sources, "release_for", lambda model_id: release_for("google/gemma-3-270m"))
    session = Session(Shared(Settings(model_id=str(tiny_dirs["gemma3"]), max_new_tokens_limit=64)))
    lsae, reason = session.shared.sae(session.model_id, wait=True)
    assert lsae is None
    assert "Could not load the SAE gemma-scope-2-270m-pt-res / layer_9_width_16k_l0_medium" in reason
    assert "cannot be reached" in reason
    assert chat(session, "hello")[-1].status.startswith("Turn 1:")
    assert session.sae_panel(0).summary == reason


def test_close_frees_the_stop_flag(session):
    session.stop()
    assert session._stop.is_set()
    session.close()
    assert not session._stop.is_set()


def test_newest_is_the_latest_turn_whenever_it_is_read(session, shared):
    """The turn picker's "newest" entry: a tab opened with it in the instant before the picker learns of a new
    turn still shows that new turn (an index read then would show the one before it)."""
    from inspectors.inputs import NEWEST
    from inspectors.ui.inspect import InspectArea

    chat(session, "first question")
    picked = NEWEST  # what the browser holds
    assert session.prompt_panel(picked).turn == 0
    chat(session, "second question")
    assert session.prompt_panel(picked).turn == 1 and "second question" in session.prompt_panel(picked).text
    assert session.turn(" Newest ") == 1 and session.compare(picked, 0, "turn").turn_a == 1
    with pytest.raises(InvalidParameterError, match="`turn` must be"):
        session.turn("newer")

    # the UI selects it after every change of the conversation, ahead of the numbered turns
    with gr.Blocks():
        area = InspectArea(shared.settings, SessionStoreOf(session))
    picker, turn_b = area.turns(types.SimpleNamespace(session_hash="alice"))
    assert picker.value == NEWEST and picker.choices[0] == ("Newest: " + session.turn_choices()[-1][0], NEWEST)
    assert [value for _, value in picker.choices[1:]] == [0, 1] and turn_b.value == 0


class SessionStoreOf:
    """A store that hands every request the one session under test."""

    def __init__(self, session):
        self.session = session

    def get(self, session_hash):
        return self.session
