"""Any decoder-only architecture: tiny random Llama, Qwen2 and Mistral (no download) read by the same engine
as Gemma: capture against an argmax loop, attention against a hand-written computation, residual probes
against hand-written hooks, and every tab of the session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from inspectors.engine.architecture import find_parts
from inspectors.engine.attention import layer_attention
from inspectors.engine.capture import LayerProbe, run_turn
from inspectors.engine.loading import load_model
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import ModelLoadError
from inspectors.session import Session, Shared
from inspectors.settings import Settings
from tests.helpers import argmax_loop, manual_attention, save_tiny_decoder

QUESTION = [{"role": "user", "content": "Tell me about rainbows and the colours in them, please."}]


@pytest.fixture(scope="module", params=["llama", "qwen2", "mistral"])
def arch_lm(request, tmp_path_factory, tokenizer):
    folder = save_tiny_decoder(request.param, tmp_path_factory.mktemp(request.param), tokenizer)
    return load_model(settings=Settings(model_id=str(folder), max_context_tokens=256, max_new_tokens_limit=64))


@pytest.fixture(scope="module")
def turn(arch_lm):
    return run_turn(arch_lm, QUESTION, SamplingParams(max_new_tokens=10))


def test_the_parts_are_found_from_the_model(arch_lm):
    parts = arch_lm.parts
    assert len(parts.layers) == arch_lm.n_layers == 4
    assert parts.final_norm is arch_lm.model.model.norm and parts.unembedding is arch_lm.model.lm_head
    assert parts.final_logit_softcap is None and parts.attention(2) is arch_lm.model.model.layers[2].self_attn


def test_capture_equals_an_argmax_loop_and_a_manual_softmax(arch_lm, turn):
    prompt = turn.prompt_ids.tolist()
    assert turn.reply_ids.tolist() == argmax_loop(arch_lm, prompt, 10)
    with torch.no_grad():
        logits = arch_lm.model(torch.tensor([prompt])).logits[0, -1].double()
    probs = torch.softmax(logits, -1).numpy()
    np.testing.assert_allclose(turn.steps.raw_probs[0], np.sort(probs)[::-1][:20], rtol=1e-4, atol=1e-6)
    assert turn.steps.raw_ids[0, 0] == int(probs.argmax())


def test_attention_equals_a_hand_written_computation(arch_lm, turn):
    assert turn.n_tokens > 8  # past Mistral's sliding window of 8
    for layer in range(arch_lm.n_layers):
        attention = layer_attention(arch_lm, turn, layer)
        assert attention.shape == (arch_lm.n_heads, turn.n_tokens, turn.n_tokens)  # 4 heads from 2 KV heads
        np.testing.assert_allclose(attention, manual_attention(arch_lm, turn.token_ids, layer), atol=1e-3)


def test_residual_probes_equal_hand_written_hooks(arch_lm):
    probe = LayerProbe("resid", 2, lambda resid, ids: resid.float().cpu().numpy())
    record = run_turn(arch_lm, QUESTION, SamplingParams(max_new_tokens=3), probes=[probe])
    seen = {}
    block = arch_lm.model.model.layers[2]  # written out, not found through the engine
    handle = block.register_forward_hook(
        lambda m, a, out: seen.setdefault("out", out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            arch_lm.model(torch.tensor(record.token_ids[None, :], dtype=torch.long))
    finally:
        handle.remove()
    np.testing.assert_allclose(record.probes["resid"], seen["out"][0].numpy(), atol=1e-4)


def test_every_tab_and_a_lab_work(arch_lm):
    session = Session(Shared(arch_lm.settings))
    assert list(session.send("Hello there", "", 0, 0, 1, 5, ""))[-1].ok
    assert session.prompt_panel(0).text.startswith("<bos><start_of_turn>user")
    assert len(session.tokens_panel(0).rows) == session.records[0].n_tokens
    assert session.next_token_panel(0, 0).summary.startswith("Step 0:")
    assert session.attention_panel(0, 1, "mean").heatmap is not None
    session.shared.sae(session.model_id, wait=True)
    assert "No sparse autoencoder is known for" in session.sae_panel(0).summary
    lab = session.lab_panel("attention_generation", {"prompt": "Google", "max_new_tokens": 3, "layer": 1, "head": 1})
    assert lab.result is not None, lab.summary


def test_an_architecture_it_cannot_read_is_refused_with_what_it_needs():
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=32))
    with pytest.raises(ModelLoadError) as err:
        find_parts(model)
    message = str(err.value)
    assert message.startswith("gpt2 (GPT2LMHeadModel) is not a decoder-only model this inspector can read")
    assert "attention in each layer" in message and "Supported:" in message and "llama" in message


def test_gemma2_final_logit_soft_capping_is_in_the_captured_probabilities(tiny_lm):
    """Gemma 2 caps its logits at 30 (tanh(x / 30) * 30) after the head; Gemma 3 does not. The captured
    distribution must be the capped one: norm, head and cap computed here by hand."""
    record = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=2))
    cap = getattr(tiny_lm.text_config, "final_logit_softcapping", None)
    assert tiny_lm.parts.final_logit_softcap == (float(cap) if cap else None)
    seen = {}
    last_block = tiny_lm.model.model.layers[-1]
    handle = last_block.register_forward_hook(
        lambda m, a, out: seen.setdefault("resid", out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            tiny_lm.model(torch.tensor([record.prompt_ids.tolist()]))
    finally:
        handle.remove()
    with torch.no_grad():
        logits = tiny_lm.model.lm_head(tiny_lm.model.model.norm(seen["resid"]))[0, -1].double()
        if cap:
            assert logits.abs().max() > 0  # the tiny model's logits are not all capped to the same value
            logits = torch.tanh(logits / cap) * cap
        probs = torch.softmax(logits, -1).numpy()
    np.testing.assert_allclose(record.steps.raw_probs[0], np.sort(probs)[::-1][:20], rtol=1e-4, atol=1e-6)
