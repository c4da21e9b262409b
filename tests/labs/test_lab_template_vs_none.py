from __future__ import annotations

import functools
import json

import pytest

from inspectors.engine.templating import build_prompt
from inspectors.errors import InvalidParameterError
from inspectors.labs import coherence, template_vs_none
from inspectors.labs.coherence import DEFAULT_CROSS_ENCODER, STAND_IN_LABEL, load_cross_encoder
from inspectors.labs.generation import greedy_generate, split_at_stop
from inspectors.labs.presets import load_preset
from inspectors.views import lab_template_vs_none as view
from tests.helpers import argmax_loop, save_tiny_cross_encoder

QUESTION = "Please tell me about the key differences between supervised learning and unsupervised learning."
N = 10


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory):
    return str(save_tiny_cross_encoder(tmp_path_factory.mktemp("scorer")))


@pytest.fixture(scope="module")
def result(tiny_lm, scorer_dir):
    return template_vs_none.run(tiny_lm, question=QUESTION, max_new_tokens=N, scorer_model=scorer_dir)


def test_greedy_generate_equals_an_argmax_loop(tiny_lm):
    prompt = tiny_lm.tokenizer("The colours of a rainbow are")["input_ids"]
    assert greedy_generate(tiny_lm, prompt, 12) == argmax_loop(tiny_lm, prompt, 12)


def test_greedy_generate_reports_each_step(tiny_lm):
    steps = []
    new = greedy_generate(tiny_lm, tiny_lm.tokenizer("Hello")["input_ids"], 5, steps.append)
    assert len(new) >= 2  # so one call could not pass for all of them
    assert steps == list(range(1, len(new) + 1))  # once per generated token, with the count so far


def test_prompts_with_and_without_template(tiny_lm, result):
    tokenizer = tiny_lm.tokenizer
    built = build_prompt(tokenizer, tiny_lm.chat_template, [{"role": "user", "content": QUESTION}], 10_000)
    assert result.with_template.prompt_ids == built.ids
    assert result.with_template.prompt_text == built.text
    raw = [tokenizer.bos_token_id, *tokenizer(QUESTION, add_special_tokens=False)["input_ids"]]
    assert result.without_template.prompt_ids == raw
    assert result.with_template.n_bos == result.without_template.n_bos == 1
    assert result.with_template.prompt_tokens[:2] == ["<bos>", "<start_of_turn>"]


def test_answers_are_the_generated_ids_before_the_stop_token(tiny_lm, result):
    for reply in result.replies:
        generated = argmax_loop(tiny_lm, reply.prompt_ids, N)
        expected, stop = split_at_stop(tiny_lm, generated)
        assert reply.answer_ids == expected
        assert reply.answer_text == tiny_lm.tokenizer.decode(expected, skip_special_tokens=True).strip()
        end_of_turn = tiny_lm.tokenizer.convert_tokens_to_ids("<end_of_turn>")
        expected_reason = "max_new_tokens" if stop is None else ("end_of_turn" if stop == end_of_turn else "eos")
        assert reply.stop_reason == expected_reason


def test_answer_extraction_cuts_at_the_stop_token_by_id(tiny_lm, scorer_dir, monkeypatch):
    tokenizer = tiny_lm.tokenizer
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    words = tokenizer(" red green", add_special_tokens=False)["input_ids"]
    after = tokenizer(" blue", add_special_tokens=False)["input_ids"]
    seen_prompts = []

    def fake_generate(lm, prompt_ids, max_new_tokens, on_step=None):
        seen_prompts.append(list(prompt_ids))
        return [*words, end_of_turn, *after]  # generate never goes past a stop; the cut must not either

    monkeypatch.setattr(template_vs_none, "greedy_generate", fake_generate)
    out = template_vs_none.run(tiny_lm, question=QUESTION, max_new_tokens=N, scorer_model=scorer_dir)
    for reply, prompt in zip(out.replies, seen_prompts, strict=True):
        assert reply.prompt_ids == prompt
        assert reply.answer_ids == words  # neither the prompt nor the stop token nor what follows
        assert reply.answer_text == "red green"
        assert reply.stop_reason == "end_of_turn"


def test_coherence_is_the_cross_encoder_logit_of_question_and_answer(result, scorer_dir):
    scorer = load_cross_encoder(scorer_dir)
    for reply in result.replies:
        assert reply.coherence == pytest.approx(scorer.score(QUESTION, reply.answer_text), abs=1e-6)
        assert reply.stand_in_similarity is None
    assert result.coherence_message is None and result.stand_in_label is None


def test_course_variant_has_two_bos(tiny_lm, scorer_dir):
    out = template_vs_none.run(
        tiny_lm, question=QUESTION, max_new_tokens=2, course_variant=True, scorer_model=scorer_dir
    )
    text = out.with_template.prompt_text
    assert out.with_template.prompt_ids == tiny_lm.tokenizer(text, add_special_tokens=True)["input_ids"]
    assert out.with_template.prompt_ids[:2] == [tiny_lm.tokenizer.bos_token_id] * 2
    assert out.with_template.n_bos == 2 and out.without_template.n_bos == 1
    assert out.course_variant and any("course variant" in note for note in out.notes)
    assert "course variant" in view.summary_markdown(out)


def _offline(monkeypatch, tmp_path):
    monkeypatch.setattr(coherence, "_hub_reachable", lambda: False)
    monkeypatch.setattr(
        template_vs_none, "load_cross_encoder", functools.partial(load_cross_encoder, cache_dir=str(tmp_path))
    )


def test_offline_scorer_gives_no_score_and_says_why(tiny_lm, monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    out = template_vs_none.run(tiny_lm, question=QUESTION, max_new_tokens=2, stand_in_when_offline=False)
    assert out.scorer_model == DEFAULT_CROSS_ENCODER
    assert all(reply.coherence is None and reply.stand_in_similarity is None for reply in out.replies)
    assert "No coherence score" in out.coherence_message and "offline" in out.coherence_message
    assert out.stand_in_label is None
    assert out.coherence_message in view.summary_markdown(out)
    assert view.figures(out) == []


def test_offline_stand_in_is_labelled_as_such(tiny_lm, monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    monkeypatch.setattr(template_vs_none, "load_offline_stand_in", lambda: _FixedEmbedder())
    out = template_vs_none.run(tiny_lm, question=QUESTION, max_new_tokens=2)
    assert all(reply.coherence is None for reply in out.replies)
    assert [reply.stand_in_similarity for reply in out.replies] == [0.25, 0.25]
    assert out.stand_in_label == STAND_IN_LABEL
    ((title, fig),) = view.figures(out)
    assert "not the coherence score" in title and "coherence score" not in fig.layout.yaxis.title.text
    assert STAND_IN_LABEL in view.summary_markdown(out)


class _FixedEmbedder:
    def cosine(self, a: str, b: str) -> float:
        return 0.25


def test_result_is_json_and_reproducible(tiny_lm, result, scorer_dir):
    again = template_vs_none.run(tiny_lm, question=QUESTION, max_new_tokens=N, scorer_model=scorer_dir)
    assert json.dumps(result.to_json()) == json.dumps(again.to_json())
    ((title, fig),) = view.figures(result)
    assert list(fig.data[0].y) == [r.coherence for r in result.replies]
    assert "chat template" in view.summary_markdown(result)


def test_preset_inputs_are_the_run_arguments():
    preset = load_preset("template_vs_none")
    assert preset["question"].startswith("Please tell me about the key differences")
    assert preset["max_new_tokens"] == 512 and preset["course_variant"] is False
    assert load_preset("template_vs_none", quick=True)["max_new_tokens"] < 512


@pytest.mark.parametrize(
    ("name", "value"),
    [("question", ""), ("question", "   "), ("max_new_tokens", 0), ("max_new_tokens", 10_000), ("max_new_tokens", 2.0),
     ("course_variant", "yes"), ("scorer_model", "")],
)  # fmt: skip
def test_bad_inputs_are_refused(tiny_lm, name, value):
    inputs = {"question": QUESTION, "max_new_tokens": 2, name: value}
    with pytest.raises(InvalidParameterError, match=f"`{name}`"):
        template_vs_none.run(tiny_lm, **inputs)
