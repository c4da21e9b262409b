from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from inspectors.engine.templating import build_prompt
from inspectors.errors import InvalidParameterError
from inspectors.labs import multiturn
from inspectors.labs.presets import load_preset
from inspectors.views import lab_multiturn as view
from tests.helpers import argmax_loop

TURNS = [
    "Name a color in a rainbow, please just answer in a word without any emoji.",
    "That's great! Now, could you tell me another color that I can find in a rainbow?",
    "Could you continue and name yet another color from the rainbow?",
]
N = 6


@pytest.fixture(scope="module")
def result(tiny_lm):
    return multiturn.run(tiny_lm, user_turns=TURNS, max_new_tokens=N, top_k=10)


def manual_distribution(lm, ids: list[int]) -> np.ndarray:
    """softmax of the last position's logits from a hand-run forward pass, in float64."""
    with torch.no_grad():
        row = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].double()
    exp = torch.exp(row - row.max())
    return (exp / exp.sum()).numpy()


def test_each_round_retemplates_the_whole_history(tiny_lm, result):
    assert [r.user for r in result.rounds] == TURNS
    history = []
    for r in result.rounds:
        history.append({"role": "user", "content": r.user})
        expected = build_prompt(tiny_lm.tokenizer, tiny_lm.chat_template, history, 10_000)
        assert r.prompt_text == expected.text
        assert r.n_prompt_tokens == len(expected.ids)
        history.append({"role": "assistant", "content": r.reply_text})
    last = result.rounds[-1].prompt_text
    assert last.count("<bos>") == 1 and last.count("<start_of_turn>user") == 3
    assert last.endswith("<start_of_turn>model\n")
    for earlier in result.rounds[:-1]:
        assert f"{earlier.user}<end_of_turn>" in last


def test_top_k_are_the_softmax_of_a_hand_run_forward_pass(tiny_lm, result):
    for r in result.rounds:
        ids = tiny_lm.tokenizer(r.prompt_text, add_special_tokens=False)["input_ids"]
        probs = manual_distribution(tiny_lm, ids)
        top = np.argsort(-probs)[:10]
        assert r.top_ids == top.tolist()
        np.testing.assert_allclose(r.top_probs, probs[top], rtol=1e-4, atol=1e-7)
        assert r.top_tokens == tiny_lm.tokenizer.convert_ids_to_tokens(top.tolist())


def test_replies_are_greedy_and_cut_at_the_stop_token(tiny_lm, result):
    stops = set(tiny_lm.stop_token_ids)
    end_of_turn = tiny_lm.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    for r in result.rounds:
        ids = tiny_lm.tokenizer(r.prompt_text, add_special_tokens=False)["input_ids"]
        generated = argmax_loop(tiny_lm, ids, N)
        assert r.reply_ids == [t for t in generated if t not in stops]
        assert r.reply_text == tiny_lm.tokenizer.decode(r.reply_ids, skip_special_tokens=True).strip()
        if generated[-1] in stops:
            assert r.stop_reason == ("end_of_turn" if generated[-1] == end_of_turn else "eos")
        else:
            assert r.stop_reason == "max_new_tokens" and len(r.reply_ids) == N
        if r.reply_ids:
            assert r.reply_ids[0] == r.top_ids[0]  # greedy starts with the most probable first token


def test_views(result):
    figs = view.figures(result)
    assert [title for title, _ in figs] == [f"Round {i}: top-10 first tokens" for i in (1, 2, 3)]
    for (_, fig), r in zip(figs, result.rounds, strict=True):
        assert list(fig.data[0].x) == r.top_probs[::-1]  # most probable drawn on top
    summary = view.summary_markdown(result)
    assert result.rounds[-1].prompt_text in summary
    assert f"{result.rounds[0].top_probs[0]:.4f}" in summary


def test_result_is_json_and_reproducible(tiny_lm, result):
    again = multiturn.run(tiny_lm, user_turns=TURNS, max_new_tokens=N, top_k=10)
    assert json.dumps(result.to_json()) == json.dumps(again.to_json())


def test_preset_has_the_course_turns():
    preset = load_preset("multiturn")
    assert preset["user_turns"] == TURNS
    assert preset["max_new_tokens"] == 200 and preset["top_k"] == 10
    assert load_preset("multiturn", quick=True)["max_new_tokens"] < 200


@pytest.mark.parametrize(
    ("name", "value"),
    [("user_turns", []), ("user_turns", "Hello"), ("user_turns", ["Hi"] * 9), ("user_turns[2]", ""),
     ("max_new_tokens", 0), ("top_k", 0), ("top_k", 1000)],
)  # fmt: skip
def test_bad_inputs_are_refused(tiny_lm, name, value):
    inputs = {"user_turns": TURNS[:1], "max_new_tokens": 2}
    if name == "user_turns[2]":
        inputs["user_turns"] = [TURNS[0], value]
    else:
        inputs[name] = value
    with pytest.raises(InvalidParameterError, match=re.escape(f"`{name}`")):
        multiturn.run(tiny_lm, **inputs)


@pytest.mark.parametrize("course_variant", [False, True])
def test_one_bos_or_the_courses_two_and_how_much_round_one_moves(tiny_lm, course_variant):
    out = multiturn.run(tiny_lm, user_turns=TURNS[:2], max_new_tokens=3, top_k=5, course_variant=course_variant)
    assert out.course_variant is course_variant
    assert [r.n_bos for r in out.rounds] == [2 if course_variant else 1] * 2
    first = build_prompt(tiny_lm.tokenizer, tiny_lm.chat_template, [{"role": "user", "content": TURNS[0]}], 10_000)
    one = manual_distribution(tiny_lm, first.ids)
    two = manual_distribution(tiny_lm, [tiny_lm.tokenizer.bos_token_id, *first.ids])
    comparison = out.bos_comparison
    assert comparison.token_id == int(one.argmax())
    assert comparison.p_one_bos == pytest.approx(float(one.max()), rel=1e-4)
    assert comparison.p_two_bos == pytest.approx(float(two[comparison.token_id]), rel=1e-4)
    shown = out.rounds[0].top_probs[0]
    assert shown == pytest.approx(float(two.max() if course_variant else one.max()), rel=1e-4)
    assert out.to_json()["bos_comparison"]["delta"] == pytest.approx(comparison.p_two_bos - comparison.p_one_bos)
    summary = view.summary_markdown(out)
    assert f"p = {comparison.p_one_bos:.4f}" in summary and f"p = {comparison.p_two_bos:.4f}" in summary
    assert ("course variant" in summary) is course_variant
