"""The real embedded Gemma 3 270M, from the PyPI package, through the same code users run."""

from __future__ import annotations

import numpy as np
import pytest

from inspectors import Conversation, SamplingParams, load_model, run_turn
from inspectors.engine.attention import layer_attention
from inspectors.engine.loading import embedded_model_dir
from inspectors.engine.templating import GEMMA_TEMPLATE_FILE
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

pytestmark = pytest.mark.integration

RAINBOW = [
    "Name a color in a rainbow, please just answer in a word without any emoji.",
    "That's great! Now, could you tell me another color that I can find in a rainbow?",
    "Could you continue and name yet another color from the rainbow?",
]


@pytest.fixture(scope="module")
def lm():
    return load_model(EMBEDDED_MODEL_ID, Settings.load(env={}))


def test_loads_from_the_pypi_package_with_the_shipped_template(lm):
    assert lm.model_id == EMBEDDED_MODEL_ID
    assert "not instruction-tuned" in lm.description
    assert lm.template_source == str(GEMMA_TEMPLATE_FILE)
    assert lm.n_layers == 18 and lm.n_heads == 4
    assert set(lm.stop_token_ids) == {1, 106}  # <eos> and <end_of_turn>
    assert (embedded_model_dir(lm.settings) / "model.safetensors").exists()  # later starts skip the GGUF


def test_greedy_turn(lm):
    record = run_turn(lm, [{"role": "user", "content": RAINBOW[0]}], SamplingParams(max_new_tokens=24))
    assert record.token_ids[0] == 2 and list(record.token_ids).count(2) == 1
    assert record.prompt_text == f"<bos><start_of_turn>user\n{RAINBOW[0]}<end_of_turn>\n<start_of_turn>model\n"
    assert record.reply_text
    assert 0 < record.steps.raw_probs[0, 0] <= 1
    assert np.all(np.diff(record.steps.raw_probs, axis=1) <= 0)  # sorted, most probable first
    assert record.token_ids[record.n_prompt] == record.steps.raw_ids[0, 0]
    again = run_turn(lm, [{"role": "user", "content": RAINBOW[0]}], SamplingParams(max_new_tokens=24))
    np.testing.assert_array_equal(record.token_ids, again.token_ids)
    attention = layer_attention(lm, record, 5)
    assert attention.shape == (4, record.n_tokens, record.n_tokens)
    np.testing.assert_allclose(attention.sum(-1), 1, atol=3e-3)


def test_sampled_turn_repeats_with_its_seed(lm):
    params = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, max_new_tokens=16, seed=7)
    first = run_turn(lm, [{"role": "user", "content": "Tell me a story."}], params)
    second = run_turn(lm, [{"role": "user", "content": "Tell me a story."}], params)
    np.testing.assert_array_equal(first.token_ids, second.token_ids)
    assert np.all((first.steps.warped_probs > 0).sum(axis=1) <= 40)


def test_multi_turn_conversation(lm):
    chat = Conversation()
    for message in RAINBOW:
        chat.send(lm, message, SamplingParams(max_new_tokens=20))
    last = chat.records[-1]
    assert len(chat.messages) == 6 and len(chat.records) == 3
    for i, message in enumerate(RAINBOW):
        assert f"<start_of_turn>user\n{message}<end_of_turn>" in last.prompt_text
        if i < 2:
            reply = chat.records[i].reply_text
            assert f"<start_of_turn>model\n{reply}<end_of_turn>" in last.prompt_text
    assert last.prompt_text.count("<bos>") == 1


def test_the_lens_bfloat16_scan_agrees_with_float32_on_the_real_model(lm):
    """Gemma 3 270M's early layers give logits in the hundreds, where bfloat16 rounds by whole units: the
    scan's float32 re-scoring of the kept tokens (and their share of the normaliser) is what keeps the shown
    probabilities within 0.01 of the all-float32 lens, with the same top-1 token at every cell."""
    from inspectors.engine.lens import logit_lens

    record = run_turn(lm, [{"role": "user", "content": "Tell me about the history of the Moon landings."}],
                      SamplingParams(max_new_tokens=24))  # fmt: skip
    positions = np.arange(record.n_prompt - 8, record.n_tokens - 1)
    exact = logit_lens(lm, record.token_ids, positions, precision="float32")
    scanned = logit_lens(lm, record.token_ids, positions, precision="bfloat16")
    np.testing.assert_array_equal(scanned.top_ids[:, :, 0], exact.top_ids[:, :, 0])
    np.testing.assert_allclose(scanned.top_probs, exact.top_probs, atol=0.01)
    np.testing.assert_allclose(scanned.target_probs, exact.target_probs, atol=0.01)
    assert (scanned.top_ids == exact.top_ids).mean() > 0.98
