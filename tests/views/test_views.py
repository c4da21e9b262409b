from __future__ import annotations

import numpy as np
import pytest

from inspectors.engine.attention import layer_attention
from inspectors.engine.capture import run_turn
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import InvalidParameterError
from inspectors.views.attention_map import attention_figure, axis_labels, heads_overview, query_window
from inspectors.views.next_token import next_token_figure, step_rows, step_summary
from inspectors.views.prompt import prompt_html, prompt_warnings
from inspectors.views.tokens import (
    PROMPT,
    REPLY,
    TEMPLATE,
    show_whitespace,
    token_parts,
    token_rows,
    tokenize_rows,
    tokens_html,
)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name a colour."},
]


@pytest.fixture(scope="module")
def turn(tiny_lm):
    return run_turn(tiny_lm, MESSAGES, SamplingParams(temperature=0.8, top_k=5, max_new_tokens=6, seed=3))


def test_token_parts_follow_the_template(turn):
    parts = token_parts(turn)
    pieces = turn.tokens
    assert pieces[:4] == ["<bos>", "<start_of_turn>", "user", "\n"]
    assert parts[:4] == [TEMPLATE] * 4
    assert parts[4] == PROMPT  # 'Be' of the folded system prompt
    model_line = turn.n_prompt - 3
    assert pieces[model_line : turn.n_prompt] == ["<start_of_turn>", "model", "\n"]
    assert parts[model_line : turn.n_prompt] == [TEMPLATE] * 3
    assert all(p == REPLY or turn.token_ids[i] in turn.special_ids for i, p in enumerate(parts) if i >= turn.n_prompt)
    assert parts.count(PROMPT) == sum(1 for p in parts[: turn.n_prompt] if p == PROMPT) > 0


def test_token_rows_and_visible_whitespace(turn, tokenizer):
    rows = token_rows(turn)
    assert len(rows) == turn.n_tokens
    assert [r[1] for r in rows] == turn.token_ids.tolist()
    assert rows[3][2] == "↵"
    assert show_whitespace("▁the\t") == "␣the⇥"
    ids = tokenizer("Hello  world\n", add_special_tokens=False)["input_ids"]
    free = tokenize_rows(ids, tokenizer.convert_ids_to_tokens(ids))
    assert [r[1] for r in free] == ids and [r[0] for r in free] == list(range(len(ids)))
    assert "↵" in free[-1][2]
    assert tokens_html(turn).count('class="gi-tok ') == turn.n_tokens


def test_prompt_html_marks_special_tokens_and_warnings(turn):
    page = prompt_html(turn)
    assert page.count('class="gi-special"') == sum(1 for t in turn.prompt_ids.tolist() if t in turn.special_ids)
    assert "&lt;start_of_turn&gt;" in page
    assert any("System prompt" in w for w in prompt_warnings(turn))


def test_next_token_rows_and_figure(turn):
    rows = step_rows(turn, 0)
    raw_ids = turn.steps.raw_ids[0].tolist()
    assert [r[2] for r in rows[: len(raw_ids)]] == raw_ids
    chosen = [r for r in rows if r[5] == "✔"]
    assert len(chosen) == 1 and chosen[0][2] == int(turn.reply_ids[0])
    assert sum(r[4] for r in rows) == pytest.approx(1.0, abs=1e-4)  # top-5 keeps all the warped mass
    assert "Step 0: generated" in step_summary(turn, 0)
    fig = next_token_figure(turn, 0)
    assert len(fig.data) == 2
    raw_bar = fig.data[0]
    np.testing.assert_allclose(raw_bar.x[::-1], turn.steps.raw_probs[0][:10])
    top10 = turn.steps.raw_ids[0][:10].tolist()[::-1]  # bars are drawn least probable first
    chosen_id = int(turn.reply_ids[0])
    expected = ["#16a34a" if i == chosen_id else "#94a3b8" for i in top10]
    assert list(raw_bar.marker.color) == expected  # the generated token green when it is in the top 10, alone
    with pytest.raises(InvalidParameterError, match=r"`step` must be an integer in \[0, 5\]"):
        step_rows(turn, 6)


def test_attention_figures(tiny_lm, turn):
    attention = layer_attention(tiny_lm, turn, 1)
    labels = axis_labels(turn.tokens)
    assert len(set(labels)) == len(labels)  # repeated pieces stay distinct
    fig = attention_figure(attention, turn.tokens, head=2, layer=1)
    np.testing.assert_allclose(fig.data[0].z, attention[2])
    mean = attention_figure(attention, turn.tokens, head="mean", layer=1)
    np.testing.assert_allclose(mean.data[0].z, attention.mean(0), rtol=1e-6)
    window = attention_figure(attention, turn.tokens, head=0, layer=1, query_start=10)
    assert window.data[0].y[0] == labels[10]
    assert len(heads_overview(attention, layer=1).data) == tiny_lm.n_heads
    assert query_window(1000, 900) == (900, 1000)
    with pytest.raises(InvalidParameterError, match="head"):
        attention_figure(attention, turn.tokens, head=9, layer=1)
