from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from inspectors.errors import InvalidParameterError
from inspectors.labs import attention_generation
from inspectors.labs.presets import load_preset
from inspectors.views import lab_attention_generation as view

N = 12  # with the 2 prompt tokens, longer than the tiny models' sliding window of 8


def stepwise_attention(lm, prompt_ids: list[int], n: int, layer: int, head: int) -> tuple[list[int], np.ndarray]:
    """The course's way: greedy one step at a time with the KV cache and output_attentions=True (eager),
    stacking each step's query rows; one more cached step gives the last generated token's row."""
    model = lm.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    rows: list[np.ndarray] = []
    ids = list(prompt_ids)
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), use_cache=True, output_attentions=True)
            prefill = out.attentions[layer][0, head].numpy()  # (T_prompt, T_prompt)
            for _ in range(n):
                ids.append(int(out.logits[0, -1].argmax()))
                out = model(
                    input_ids=torch.tensor([[ids[-1]]]),
                    cache=out.past_key_values,
                    use_cache=True,
                    output_attentions=True,
                )
                rows.append(out.attentions[layer][0, head, 0].numpy())  # (keys in the cache,)
                if ids[-1] in lm.stop_token_ids:
                    break
    finally:
        model.set_attn_implementation(previous)
    size, n_prompt = len(ids), len(prompt_ids)
    matrix = np.zeros((size, size))
    matrix[:n_prompt, :n_prompt] = prefill
    for q, row in enumerate(rows, start=n_prompt):
        # A sliding-window layer's cache holds only the last keys: its row ends at the query's own position.
        matrix[q, q + 1 - len(row) : q + 1] = row
    return ids[len(prompt_ids) :], matrix


@pytest.fixture(scope="module")
def prompt_ids(tiny_lm):
    return tiny_lm.tokenizer("Google", add_special_tokens=True)["input_ids"]


@pytest.mark.parametrize("layer", [0, 2])  # a sliding-window layer and Gemma 3's full-attention layer
def test_matrix_equals_a_stepwise_kv_cache_loop(tiny_lm, prompt_ids, layer):
    out = attention_generation.run(tiny_lm, prompt="Google", max_new_tokens=N, layer=layer, head=1)
    generated, expected = stepwise_attention(tiny_lm, prompt_ids, N, layer, 1)
    assert out.token_ids == prompt_ids + generated
    assert (out.layer, out.head) == (layer, 1)
    matrix = np.asarray(out.attention)
    assert matrix.shape == (len(out.token_ids), len(out.token_ids))
    np.testing.assert_allclose(matrix, expected, atol=2e-3)  # the shared attention cache keeps float16
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=5e-3)
    assert np.all(np.triu(matrix, k=1) == 0)  # causal


def test_bos_is_the_first_row_and_column(tiny_lm, prompt_ids):
    out = attention_generation.run(tiny_lm, prompt="Google", max_new_tokens=3, layer=1, head=0)
    assert out.token_ids[0] == tiny_lm.tokenizer.bos_token_id and out.tokens[0] == "<bos>"
    assert out.n_prompt == len(prompt_ids) == 2
    assert out.attention[0][0] == pytest.approx(1.0, abs=1e-3)  # <bos> can only attend to itself
    assert out.labels == [f"{i}:{t}" for i, t in enumerate(out.tokens)]
    assert out.notes == [] and out.stop_reason in {"max_new_tokens", "eos", "end_of_turn"}


def test_course_variant_shifts_only_the_labels(tiny_lm):
    plain = attention_generation.run(tiny_lm, prompt="Google", max_new_tokens=4, layer=1, head=0)
    course = attention_generation.run(tiny_lm, prompt="Google", max_new_tokens=4, layer=1, head=0, course_variant=True)
    assert course.attention == plain.attention and course.tokens == plain.tokens
    tokens = plain.tokens
    assert course.labels == [f"{i}:{t}" for i, t in enumerate([*tokens[1:], ""])]
    assert "<bos>" not in " ".join(course.labels)
    ((title, fig),) = view.figures(course)
    assert "course variant" in title and fig.data[0].x[0] == "0:Google"
    ((title, fig),) = view.figures(plain)
    assert "course variant" not in title and fig.data[0].x[0] == "0:<bos>"
    assert list(fig.data[0].y) == list(fig.data[0].x)  # square: queries on y, keys on x


def test_missing_layer_and_head_are_clamped_with_a_note(tiny_lm):
    out = attention_generation.run(tiny_lm, prompt="Google", max_new_tokens=2, layer=10, head=7)
    assert (out.layer_requested, out.head_requested) == (10, 7)
    assert (out.layer, out.head) == (tiny_lm.n_layers - 1, tiny_lm.n_heads - 1)
    assert len(out.notes) == 2 and "layer 10 does not exist" in out.notes[0] and "head 7" in out.notes[1]
    assert "asked for layer 10, head 7" in view.summary_markdown(out)


def test_result_is_json_and_reproducible(tiny_lm):
    first = attention_generation.run(tiny_lm, prompt="Google", max_new_tokens=5, layer=3, head=2)
    again = attention_generation.run(tiny_lm, prompt="Google", max_new_tokens=5, layer=3, head=2)
    assert json.dumps(first.to_json()) == json.dumps(again.to_json())


def test_preset_is_the_course_setting():
    preset = load_preset("attention_generation")
    assert preset == {"prompt": "Google", "max_new_tokens": 20, "layer": 10, "head": 7, "course_variant": False}


@pytest.mark.parametrize(
    ("name", "value"),
    [("prompt", ""), ("max_new_tokens", 0), ("max_new_tokens", -3), ("layer", -1), ("head", "7"),
     ("course_variant", 1)],
)  # fmt: skip
def test_bad_inputs_are_refused(tiny_lm, name, value):
    with pytest.raises(InvalidParameterError, match=f"`{name}`"):
        attention_generation.run(tiny_lm, **{"prompt": "Google", "max_new_tokens": 2, name: value})


def test_long_generations_are_refused_before_running(tiny_lm):
    roomy = dataclasses.replace(
        tiny_lm, settings=dataclasses.replace(tiny_lm.settings, max_new_tokens_limit=1024), context_limit=512
    )
    with pytest.raises(InvalidParameterError, match=f"at most {attention_generation.MAX_NEW_TOKENS}"):
        attention_generation.run(roomy, prompt="Google", max_new_tokens=attention_generation.MAX_NEW_TOKENS + 1)
