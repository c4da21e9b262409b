"""Chat segments from token ids and control tokens, on Gemma's template (system folded) and ChatML."""

from __future__ import annotations

from inspectors.engine.capture import run_turn
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.segments import BOS, CURRENT_USER, REPLY, SYSTEM, TEMPLATE

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Red."},
    {"role": "user", "content": "And another one?"},
]


def text_of(record, name):
    positions = record.segments.positions(name)
    return "".join(record.tokens[i] for i in positions).replace("▁", " ")


def test_every_token_has_its_segment(tiny_lm):
    record = run_turn(tiny_lm, CONVERSATION, SamplingParams(max_new_tokens=4))
    segments = record.segments
    assert segments.of_token.shape == (record.n_tokens,)
    assert segments.names[0] == BOS and segments.positions(BOS).tolist() == [0]
    assert text_of(record, SYSTEM).strip() == "Answer briefly."  # folded into the first user turn, found by ids
    assert text_of(record, "user message 1").strip() == "Name a colour."
    assert text_of(record, "model reply 1").strip() == "Red."
    assert text_of(record, CURRENT_USER).strip() == "And another one?"
    assert segments.positions(REPLY).tolist() == list(range(record.n_prompt, record.n_tokens))
    template = "".join(record.tokens[i] for i in segments.positions(TEMPLATE))
    assert "<start_of_turn>" in template and "<end_of_turn>" in template and "user" in template
    assert sum(segments.counts().values()) == record.n_tokens
