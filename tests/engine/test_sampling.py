from __future__ import annotations

import pytest
from transformers import RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from inspectors.engine.sampling import SamplingParams, build_processors
from inspectors.errors import InvalidParameterError


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("temperature", -0.1, "[0, 5]"),
        ("temperature", 5.5, "[0, 5]"),
        ("temperature", float("nan"), "finite"),
        ("temperature", "hot", "finite"),
        ("top_k", -1, "integer >= 0"),
        ("top_k", 2.5, "integer >= 0"),
        ("top_k", True, "integer >= 0"),
        ("top_p", -0.01, "[0, 1]"),
        ("top_p", 1.5, "[0, 1]"),
        ("max_new_tokens", 0, "integer >= 1"),
        ("max_new_tokens", None, "integer >= 1"),
        ("repetition_penalty", 0.0, "(0, 10]"),
        ("repetition_penalty", 11.0, "(0, 10]"),
        ("seed", -1, "[0, 4294967295]"),
        ("seed", 2**32, "[0, 4294967295]"),
    ],
)
def test_invalid_values_name_the_parameter_the_range_and_the_value(field, value, rule):
    with pytest.raises(InvalidParameterError) as info:
        SamplingParams(**{field: value})
    message = str(info.value)
    assert message.startswith(f"`{field}`")
    assert rule in message
    assert repr(value) in message
    assert info.value.name == field


def test_edge_values_are_valid_and_kept():
    low = SamplingParams(temperature=0, top_k=0, top_p=0, max_new_tokens=1, repetition_penalty=10, seed=0)
    assert (low.temperature, low.top_k, low.top_p, low.max_new_tokens, low.repetition_penalty, low.seed) == (
        0, 0, 0, 1, 10, 0
    )  # fmt: skip
    assert not low.do_sample  # temperature 0 is greedy
    high = SamplingParams(temperature=5, top_p=1, seed=2**32 - 1)
    assert high.do_sample and high.seed == 2**32 - 1 and high.with_seed(7).seed == 7
    assert high.to_dict() == {**high.to_dict(), "temperature": 5, "top_p": 1}


def test_processors_are_transformers_own_in_generate_order():
    assert len(build_processors(SamplingParams())) == 0
    greedy_penalised = build_processors(SamplingParams(repetition_penalty=1.3))
    assert [type(p) for p in greedy_penalised] == [RepetitionPenaltyLogitsProcessor]
    full = build_processors(SamplingParams(temperature=0.7, top_k=5, top_p=0.9, repetition_penalty=1.2))
    assert [type(p) for p in full] == [
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    ]
    plain = build_processors(SamplingParams(temperature=1.0))
    assert len(plain) == 0  # temperature 1, top-k off, top-p off: sample from the raw softmax
