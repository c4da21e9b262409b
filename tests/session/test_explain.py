"""The "why" panels of a session: logit lens, attribution and turn-aware attention, for any turn."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pytest

from inspectors.errors import InvalidParameterError
from inspectors.session import Session, Shared
from inspectors.settings import Settings


@pytest.fixture(scope="module")
def session(tiny_dirs):
    session = Session(
        Shared(Settings(model_id=str(tiny_dirs["gemma2"]), max_context_tokens=256, max_new_tokens_limit=64))
    )
    for text in ("Name a colour.", "And another one?"):
        assert list(session.send(text, "Be brief.", 0, 0, 1, 5, ""))[-1].ok
    return session


def test_the_lens_panel_reads_every_layer_of_the_chosen_turn(session):
    record = session.records[0]
    panel = session.lens_panel(0)
    n_layers = session.model().n_layers
    assert panel.columns == list(range(record.n_prompt - 1, record.n_tokens - 1))
    assert len(panel.rows) == n_layers * record.steps.n_steps
    last = [row for row in panel.rows if row[0] == n_layers - 1]
    # the last layer's top-1 is the Next token tab's most probable candidate, step by step
    assert [row[4] for row in last] == pytest.approx(record.steps.raw_probs[:, 0].tolist(), abs=1e-5)
    assert len(panel.commitment) == record.steps.n_steps and panel.figure.data[0].type == "heatmap"
    assert panel.cell[0][0] == 1 and len(panel.cell) == 10
    assert len(session.lens_panel(1, with_prompt=True).rows) == n_layers * (session.records[1].n_tokens - 1)
    with pytest.raises(InvalidParameterError, match=r"`layer` must be a whole number in \[0, 3\]"):
        session.lens_panel(0, layer=9)


def test_the_why_panel_rolls_up_by_segment_and_word(session):
    record = session.records[1]
    panel = session.why_panel(1, 2, "gradient")
    scores = np.array([row[3] for row in panel.rows])
    assert len(scores) == record.n_prompt + 2  # every token before the explained one
    by_segment = defaultdict(float)
    for _, _, segment, score in panel.rows:
        by_segment[segment] += score
    assert by_segment.keys() == panel.totals.keys()
    for name, total in panel.totals.items():
        assert total == pytest.approx(by_segment[name], abs=1e-4)
    assert {"system prompt", "user message 1", "model reply 1", "current user message", "reply so far"} <= set(
        panel.totals
    )
    strengths = [abs(score) for _, score in panel.words]
    assert strengths == sorted(strengths, reverse=True) and len(panel.words) <= 20
    occlusion = session.why_panel(1, 2, "occlusion")
    assert len(occlusion.rows) == len(panel.rows)
    tops = {max(p.totals, key=p.totals.get) for p in (panel, occlusion)}
    assert bool(panel.warning) == (len(tops) == 2)  # a warning exactly when the methods disagree
    with pytest.raises(InvalidParameterError, match="`method` must be one of"):
        session.why_panel(1, 0, "saliency")
    with pytest.raises(InvalidParameterError, match=r"`step` must be a whole number in \[0, 4\]"):
        session.why_panel(1, 9)


def test_turn_attention_shares_sum_to_one(session):
    record = session.records[1]
    panel = session.turn_attention_panel(1, "mean", "mean")
    per_position = defaultdict(float)
    for position, _, share in panel.rows:
        per_position[position] += share
    assert sorted(per_position) == list(range(record.n_prompt, record.n_tokens))
    assert all(total == pytest.approx(1.0, abs=1e-3) for total in per_position.values())
    one = session.turn_attention_panel(1, 2, 1)
    assert one.rows != panel.rows and len(one.rows) == len(panel.rows)
    with pytest.raises(InvalidParameterError, match=r"`head` must be a whole number in \[0, 3\]"):
        session.turn_attention_panel(1, 2, 7)


def test_words_join_pieces_and_keep_their_summed_scores():
    from inspectors.views.attribution import words

    pieces = ["<bos>", "Time", "▁tra", "vel", "▁is", "\n", "fun"]
    joined = words(pieces, np.array([0.5, 1.0, 2.0, 3.0, -1.0, 0.25, 0.5]))
    assert joined == [("<bos>", 0.5), ("Time", 1.0), ("␣travel", 5.0), ("␣is", -1.0), ("↵fun", 0.75)]


def test_the_lens_reuses_the_recorded_output_and_computes_one_page(session, monkeypatch):
    """The reply's last layer is the recorded distributions (the model's own output), passed to the engine; a
    page of `LENS_COLUMNS` positions is all that is computed, whatever the turn's length."""
    from inspectors.engine import calls
    from inspectors.session import explain

    seen = []
    real = calls.logit_lens

    def spy(ref, token_ids, positions, known_output=None, precision="auto"):
        grid = real(ref, token_ids, positions, known_output, precision)
        seen.append((positions.copy(), known_output, precision, grid))
        return grid

    monkeypatch.setattr(calls, "logit_lens", spy)
    monkeypatch.setattr(explain, "LENS_COLUMNS", 7)
    record = session.records[1]
    panel = session.lens_panel(1, with_prompt=True, start=5, precision="float32")
    positions, known, precision, _ = seen[-1]
    np.testing.assert_array_equal(positions, np.arange(5, 12))
    assert panel.columns == list(range(5, 12)) and precision == "float32"
    assert "Every layer in float32" in panel.summary
    np.testing.assert_array_equal(known.top_ids, record.steps.raw_ids)
    np.testing.assert_array_equal(known.positions, record.n_prompt - 1 + np.arange(record.steps.n_steps))
    # on the reply's positions the last layer is the recorded output itself, bit for bit
    session.lens_panel(1, start=0)
    grid = seen[-1][3]
    np.testing.assert_array_equal(grid.top_probs[-1], record.steps.raw_probs[:7, :10])
    np.testing.assert_array_equal(grid.target_probs[-1], record.steps.chosen_raw_prob[:7])
    # steered: the lens reads the unsteered model, so the steered output is not its last layer
    steered = dataclasses.replace(record, steering={"layer": 1, "description": "feature 5"})
    assert explain._recorded_output(session, steered) is None
    assert explain._recorded_output(session, dataclasses.replace(record, dtype="bfloat16")) is None


def test_a_bad_lens_precision_is_named(session):
    with pytest.raises(InvalidParameterError, match="`precision` must be one of"):
        session.lens_panel(0, precision="int4")
