"""Save and share through the session: a saved conversation opens in a fresh session with the same tabs and no
model run, a re-run reproduces greedy, seeded and branched turns token for token, the page is self-contained,
and a bad upload changes nothing."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from inspectors.engine import calls
from inspectors.errors import InspectorError
from inspectors.session import Session, Shared

GREEDY = ("Be brief.", 0, 0, 1, 6, "")  # system prompt, temperature, top-k, top-p, max new tokens, seed
SEEDED = ("Be brief.", 0.9, 40, 0.95, 6, 1234)


@pytest.fixture(scope="module")
def settings(sae_settings):
    return sae_settings


def fresh(settings) -> Session:
    session = Session(Shared(settings))
    session.shared.sae(session.model_id, None, wait=True)  # ready, so turns keep its feature and the tab shows it
    return session


@pytest.fixture(scope="module")
def chatted(settings):
    """Turn 1 greedy, turn 2 sampled with a fixed seed; both keep the SAE feature in their record."""
    session = fresh(settings)
    assert last(session.send("Name a colour.", *GREEDY)).ok
    assert last(session.send("And a fruit?", *SEEDED)).ok
    assert all("sae" in r.probes for r in session.records)
    return session


@pytest.fixture(scope="module")
def saved_path(chatted):
    result = chatted.save(None, "conversation", "json")
    assert result.ok, result.status
    return result.path


def last(updates):
    updates = list(updates)
    assert updates, "no update"
    return updates[-1]


def same(a, b) -> bool:
    """Panel api() dicts equal, NaN included (a warped-only candidate has no raw probability)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def test_saving_writes_a_named_file_in_a_fresh_folder(chatted):
    result = chatted.save(1, "turn", "json")
    assert result.ok and result.filename == "gemma-inspector-turn-2.json"
    assert "with the 1 turn before it" in result.status and "Re-run" in result.status
    assert Path(result.path).is_file() and Path(result.path).parent != Path(chatted.save().path).parent
    expected = {"ok": True, "status": result.status, "server_path": result.path, "filename": result.filename}
    assert result.api() == expected
    assert json.loads(Path(result.path).read_text(encoding="utf-8"))["format"] == "gemma-inspector/conversation"


def test_a_saved_conversation_opens_with_the_same_tabs_and_no_model_run(settings, chatted, saved_path, monkeypatch):
    session = fresh(settings)
    update = session.open_saved(saved_path)
    assert update.ok, update.status
    assert "Opened `gemma-inspector-conversation.json`" in update.status and "2 turns on 1 branch" in update.status
    assert update.messages == chatted.chat_messages()
    assert session.conversation.system_prompt == "Be brief."

    def no_model_run(*args, **kwargs):
        raise AssertionError("a stored view ran the model")

    for name in ("stream_reply", "sae_activations", "attention", "logit_lens", "attribute"):
        monkeypatch.setattr(calls, name, no_model_run)
    for turn in (0, 1):
        assert same(session.prompt_panel(turn).api(), chatted.prompt_panel(turn).api())
        assert same(session.tokens_panel(turn).api(), chatted.tokens_panel(turn).api())
        for step in range(chatted.records[turn].steps.n_steps):
            assert same(session.next_token_panel(turn, step).api(), chatted.next_token_panel(turn, step).api())
        mine, theirs = session.sae_panel(turn), chatted.sae_panel(turn)
        assert mine.values and same(mine.api(), theirs.api())


def test_saving_one_turn_keeps_the_turns_before_it(settings, chatted):
    for turn, n_turns in ((0, 1), (1, 2)):
        session = fresh(settings)
        update = session.open_saved(chatted.save(turn).path)
        assert update.ok and len(session.records) == n_turns, update.status
        assert f"turn {turn + 1} of a conversation" in update.status


def test_rerun_reproduces_seeded_and_greedy_turns_token_for_token(settings, chatted, saved_path):
    session = fresh(settings)
    assert session.open_saved(saved_path).ok
    originals = list(chatted.records)
    for turn in (1, 0):  # the seeded turn first: each re-run becomes the active branch, ending at its turn
        update = last(session.rerun(turn))
        assert update.ok, update.status
        assert "**identical** to the saved reply" in update.status and "seed" in update.status
        new = session.records[turn]
        assert new is not originals[turn] and new.token_ids.tolist() == originals[turn].token_ids.tolist()
        np.testing.assert_allclose(new.steps.chosen_raw_prob, originals[turn].steps.chosen_raw_prob, atol=1e-5)
        assert new.params == originals[turn].params and new.branch["rerun"]
        assert session.conversation.branch.label == f"turn {turn + 1} re-run on {Path(session.model_id).name}"
    assert len(session.conversation.branches) == 3 and session.conversation.branches[0].records[1].params["seed"]


def test_rerun_of_a_branch_forces_the_same_tokens(settings):
    session = fresh(settings)
    assert last(session.send("Name a colour.", *GREEDY)).ok
    token = int(session.records[0].steps.raw_ids[2, 1])
    assert last(session.branch(0, 2, token)).ok
    reopened = fresh(settings)
    assert reopened.open_saved(session.save(None, "conversation").path).ok
    assert reopened.conversation.active == 1 and reopened.records[0].forced == 3
    update = last(reopened.rerun(0))
    assert update.ok and "**identical**" in update.status, update.status
    assert reopened.records[0].token_ids.tolist() == session.records[0].token_ids.tolist()


def test_a_steered_turn_is_re_run_steered_from_its_file(settings):
    session = fresh(settings)
    assert last(session.steer("Tell me more.", None, "SAE features", "", "5", 1.0, "residual norm")).chat.ok
    steered = session.records[-1]
    reopened = fresh(settings)
    assert reopened.open_saved(session.save(None, "conversation").path).ok
    update = last(reopened.rerun())
    assert update.ok and "**identical**" in update.status, update.status
    assert reopened.records[-1].steering["description"] == steered.steering["description"]
    np.testing.assert_array_equal(reopened.records[-1].steering["vector"], steered.steering["vector"])


def test_a_steered_turn_whose_record_keeps_the_vector_is_re_run_with_it(settings, saved_path):
    session = fresh(settings)
    assert session.open_saved(saved_path).ok
    zero = {"layer": 1, "vector": np.zeros(64, dtype=np.float32), "description": "a zero vector"}
    session.records[0].steering = zero  # what a record would hold if steering kept its vector
    reopened = fresh(settings)
    assert reopened.open_saved(session.save(0).path).ok  # the vector travels in the file
    assert np.array_equal(reopened.records[0].steering["vector"], zero["vector"])
    update = last(reopened.rerun(0))
    assert update.ok and "**identical**" in update.status, update.status
    assert reopened.records[0].steering["description"] == "a zero vector"


def test_the_page_is_self_contained(chatted):
    result = chatted.save(None, "conversation", "html")
    assert result.ok and result.filename == "gemma-inspector-conversation.html", result.status
    page = Path(result.path).read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", page) and not re.search(r"<link[^>]*href=['\"]?https?:", page)
    assert page.count("* plotly.js v") == 1  # the library, once
    assert 'class="plotly-graph-div"' in page or "plotly-graph-div" in page
    assert "Name a colour." in page and "And a fruit?" in page and 'class="gi-prompt"' in page
    assert "gi-special" in page and "gi-shading" in page and "least sure" in page
    for record in chatted.records:
        assert record.reply_text.replace("'", "&#x27;") in page or not record.reply_text


def test_a_bad_upload_changes_nothing_and_says_why(chatted, tmp_path):
    before = (chatted.chat_messages(), list(chatted.records), len(chatted.conversation.branches))
    foreign = tmp_path / "notes.json"
    foreign.write_text(json.dumps({"format": "other-app/notes", "version": 1}), encoding="utf-8")
    cases = [
        (b"not json at all", "is not valid JSON"),
        (str(foreign), "`notes.json` is not a Gemma Inspector file"),
        (foreign, "its format is 'other-app/notes'"),
        ({"path": str(foreign)}, "`notes.json`"),
        (str(tmp_path / "missing.json"), "`missing.json` does not exist"),
        (None, "`file` is missing"),
        (42, "`file` must be a file's path or its bytes"),
    ]
    for file, message in cases:
        update = chatted.open_saved(file)
        assert not update.ok and message in update.status and "unchanged" in update.status, update.status
        assert (chatted.chat_messages(), list(chatted.records), len(chatted.conversation.branches)) == before


def test_turns_of_another_model_open_and_their_model_views_say_what_is_missing(settings, saved_path, tmp_path):
    doc = json.loads(Path(saved_path).read_text(encoding="utf-8"))
    for record in doc["records"]:
        record["model_id"] = "someone/not-here"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc), encoding="utf-8")
    session = fresh(settings)
    update = session.open_saved(other)
    assert update.ok and "Its turns come from someone/not-here" in update.status, update.status
    assert session.tokens_panel(0).rows and session.next_token_panel(0, 0).rows  # stored views work
    with pytest.raises(InspectorError):  # the UI shows the message; nothing crashes
        session.attention_panel(0)
    rerun = last(session.rerun(0))  # on the session's own model: the prompt is the same text
    assert rerun.ok and "saved from someone/not-here" in rerun.status, rerun.status


def test_hosted_deployments_open_only_uploaded_files(settings, saved_path, tmp_path):
    hosted = dataclasses.replace(settings, hosted=True, allowed_model_ids=[settings.model_id])
    session = Session(Shared(hosted))
    update = session.open_saved("/etc/hostname")
    assert not update.ok and "only uploaded files are opened" in update.status
    assert session.open_saved(saved_path).ok  # written in the temp folder, where uploads land


def test_an_empty_chat_or_a_bad_choice_saves_nothing(settings, chatted):
    empty = Session(Shared(settings))
    result = empty.save()
    assert not result.ok and "send a message first" in result.status and result.path is None
    assert "`kind` must be one of ['json', 'html']" in chatted.save(None, "turn", "pdf").status
    assert "`turn` must be a whole number in [0, 1]" in chatted.save(7).status
    assert "nothing to re-run yet" in last(empty.rerun()).status


def test_a_busy_session_refuses_to_open_or_re_run(chatted, saved_path):
    assert chatted._begin()
    try:
        assert "still being generated" in chatted.open_saved(saved_path).status
        assert "still being generated" in last(chatted.rerun(0)).status
    finally:
        chatted._end()
