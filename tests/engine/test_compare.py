"""Comparing two prompts, checked against independent computations: a hand softmax and KL from the model's own
logits, cosines from hand-written hooks, SAE features from the SAE's own encoder, and a reference greedy loop."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from inspectors.engine.compare import (
    compare_internals,
    compare_prompts,
    kl_divergence,
    plain_reply,
    prompt_internals,
)
from inspectors.engine.templating import build_prompt
from inspectors.errors import InvalidParameterError
from inspectors.sae.loading import load_sae_from_disk
from inspectors.views.compare import (
    compare_figure,
    compare_summary,
    layer_rows,
    plain_tokens,
    sae_rows,
    top_token_rows,
)
from tests.helpers import argmax_loop, hooked_residuals, save_tiny_sae

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def lsae(tmp_path_factory):
    return load_sae_from_disk(save_tiny_sae(tmp_path_factory.mktemp("sae") / "sae", d_in=64, layer=2))


def templated(lm, text: str = QUESTION) -> list[int]:
    return build_prompt(lm.tokenizer, lm.chat_template, [{"role": "user", "content": text}], 200).ids


def plain(lm, text: str = QUESTION) -> list[int]:
    return lm.tokenizer(text)["input_ids"]


def hand_log_probs(lm, ids: list[int]) -> np.ndarray:
    """(V,) float64 log softmax of the model's own last logits (transformers applies Gemma 2's soft-cap)."""
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return (logits - torch.logsumexp(logits, dim=0)).numpy()


def test_kl_and_top_tokens_match_a_hand_softmax_of_the_models_logits(tiny_lm):
    a, b = templated(tiny_lm), plain(tiny_lm)
    c = compare_prompts(tiny_lm, a, b)
    log_p, log_q = hand_log_probs(tiny_lm, a), hand_log_probs(tiny_lm, b)
    p, q = np.exp(log_p), np.exp(log_q)
    assert c.kl_ab == pytest.approx(float(np.sum(p * (log_p - log_q))), rel=1e-3, abs=1e-5)
    assert c.kl_ba == pytest.approx(float(np.sum(q * (log_q - log_p))), rel=1e-3, abs=1e-5)
    assert c.kl_ab > 0 and c.kl_ba > 0 and c.kl_ab != pytest.approx(c.kl_ba)  # KL is not symmetric
    assert c.top_ids_a.tolist() == np.argsort(-p)[:10].tolist()
    assert c.top_ids_b.tolist() == np.argsort(-q)[:10].tolist()
    np.testing.assert_allclose(c.top_probs_a, np.sort(p)[::-1][:10], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(c.probs_b_of_a, q[c.top_ids_a], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(c.probs_a_of_b, p[c.top_ids_b], rtol=1e-4, atol=1e-7)
    shared = set(np.argsort(-p)[:10].tolist()) & set(np.argsort(-q)[:10].tolist())
    assert set(c.shared_top) == shared and c.overlap == len(shared)
    assert c.jaccard == pytest.approx(len(shared) / (20 - len(shared)))
    assert c.n_prompt_a == len(a) and c.n_prompt_b == len(b)
    assert set(c.pieces) == {*c.top_ids_a.tolist(), *c.top_ids_b.tolist()}
    assert c.pieces[int(c.top_ids_a[0])] == tiny_lm.tokenizer.convert_ids_to_tokens(int(c.top_ids_a[0]))


def test_cosine_per_layer_matches_hand_hooked_residuals_of_the_last_token(tiny_lm):
    first, second = "The cat sat on the mat.", "A dog ran in the park today."
    ids_a, outputs_a, states_a = hooked_residuals(tiny_lm, first)
    ids_b, outputs_b, _ = hooked_residuals(tiny_lm, second)
    internals = prompt_internals(tiny_lm, ids_a.numpy())
    for layer in range(tiny_lm.n_layers):
        np.testing.assert_allclose(internals.residuals[layer], outputs_a[layer][-1].numpy(), rtol=1e-4, atol=1e-4)
    # hidden_states[L + 1] is the output of layer L, except the last, which is after the final norm
    np.testing.assert_allclose(internals.residuals[0], states_a[1][-1].numpy(), rtol=1e-4, atol=1e-4)

    c = compare_prompts(tiny_lm, ids_a.numpy(), ids_b.numpy())
    for layer in range(tiny_lm.n_layers):
        x, y = outputs_a[layer][-1].double(), outputs_b[layer][-1].double()
        expected = float(x @ y / (x.norm() * y.norm()))
        assert c.cosine[layer] == pytest.approx(expected, abs=1e-5)
        assert c.norms_a[layer] == pytest.approx(float(x.norm()), rel=1e-4)
    assert c.cosine.shape == (tiny_lm.n_layers,) and (c.cosine < 1 - 1e-4).any()


def test_sae_features_match_the_saes_own_encoder_at_its_layer(tiny_lm, lsae):
    first, second = "The cat sat on the mat.", "A dog ran in the park today."
    ids_a, outputs_a, _ = hooked_residuals(tiny_lm, first)
    ids_b, outputs_b, _ = hooked_residuals(tiny_lm, second)
    c = compare_prompts(tiny_lm, ids_a.numpy(), ids_b.numpy(), lsae)
    assert c.sae is not None and c.sae.layer == 2 and c.sae.sae_name == lsae.name
    with torch.no_grad():
        acts_a = lsae.sae.encode(outputs_a[2][-1:].float())[0].numpy()
        acts_b = lsae.sae.encode(outputs_b[2][-1:].float())[0].numpy()
    for ids, values, acts in ((c.sae.top_ids_a, c.sae.top_values_a, acts_a), (c.sae.top_ids_b, c.sae.top_values_b,
                                                                               acts_b)):  # fmt: skip
        active = np.argsort(-acts)[: min(10, int((acts > 0).sum()))]
        assert ids.tolist() == active.tolist() and len(ids) > 0
        np.testing.assert_allclose(values, acts[active], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c.sae.values_b_of_a, acts_b[c.sae.top_ids_a], rtol=1e-4, atol=1e-5)
    expected_common = [f for f in c.sae.top_ids_a.tolist() if f in set(c.sae.top_ids_b.tolist())]
    assert c.sae.common == expected_common
    rows = sae_rows(c.sae)
    assert {row[0] for row in rows} == {*c.sae.top_ids_a.tolist(), *c.sae.top_ids_b.tolist()}
    assert [row[0] for row in rows if row[3] == "A and B"] == sorted(
        expected_common, key=lambda f: -min(acts_a[f], acts_b[f])
    )


def test_a_prompt_against_itself_is_kl_zero_cosine_one_and_full_overlap(tiny_lm):
    ids = templated(tiny_lm)
    c = compare_prompts(tiny_lm, ids, ids)
    assert c.kl_ab == pytest.approx(0.0, abs=1e-7) and c.kl_ba == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(c.cosine, 1.0, atol=1e-5)
    assert c.overlap == 10 and c.jaccard == 1.0 and c.same_top_token
    np.testing.assert_allclose(c.probs_b_of_a, c.top_probs_a)


def test_compare_internals_is_plain_numpy_and_refuses_mismatched_shapes(tiny_lm):
    a = prompt_internals(tiny_lm, templated(tiny_lm))
    b = prompt_internals(tiny_lm, plain(tiny_lm))
    assert a.log_probs.dtype == np.float32 and a.log_probs.shape == (tiny_lm.model.config.vocab_size,)
    assert a.residuals.shape == (tiny_lm.n_layers, 64) and a.sae_acts is None
    c = compare_internals(a, b, k=5)
    assert len(c.top_ids_a) == 5 and c.kl_ab == pytest.approx(kl_divergence(a.log_probs, b.log_probs))
    b.residuals = b.residuals[:-1]
    with pytest.raises(ValueError, match="different models"):
        compare_internals(a, b)


def test_kl_clamps_a_zero_probability_instead_of_taking_log_zero():
    half = np.log(0.5)
    log_p = np.array([half, half, -np.inf], dtype=np.float32)  # -inf: a probability that underflowed to 0
    log_q = np.array([half, -np.inf, half], dtype=np.float32)
    kl = kl_divergence(log_p, log_q)
    assert np.isfinite(kl) and kl > 10  # q's 0 counts as float32's tiniest normal number
    assert kl_divergence(log_p, log_p) == 0.0


@pytest.mark.parametrize(
    ("ids", "message"),
    [([], "`prompt_ids` must be a non-empty list of token ids"), ([2, 10**9], "`prompt_ids` must hold ids in [0, ")],
)
def test_bad_prompt_ids_are_refused_with_the_rule(tiny_lm, ids, message):
    with pytest.raises(InvalidParameterError) as err:
        prompt_internals(tiny_lm, np.array(ids, dtype=np.int64))
    assert message in str(err.value)


def test_the_plain_reply_has_one_bos_no_template_and_is_greedy(tiny_lm):
    reply = plain_reply(tiny_lm, QUESTION, 8)
    tokenizer = tiny_lm.tokenizer
    assert reply.prompt_ids.tolist() == tokenizer(QUESTION)["input_ids"]  # the tokenizer's own encoding of text
    assert reply.tokens[0] == "<bos>" and reply.tokens.count("<bos>") == 1
    assert "<start_of_turn>" not in reply.tokens[: reply.n_prompt]
    expected = argmax_loop(tiny_lm, reply.prompt_ids.tolist(), 8)
    assert reply.token_ids[reply.n_prompt :].tolist() == expected
    stop = set(tiny_lm.stop_token_ids)
    answer = [t for t in expected if t not in stop]
    assert reply.reply_text == tokenizer.decode(answer, skip_special_tokens=True).strip()
    assert reply.stop_reason == ("max_new_tokens" if expected[-1] not in stop else tiny_lm.stop_name(expected[-1]))
    parts = [part for _, part in plain_tokens(reply)]
    assert parts[0] == "template" and parts[1 : reply.n_prompt] == ["prompt"] * (reply.n_prompt - 1)
    assert all(part in ("reply", "template") for part in parts[reply.n_prompt :])


def test_the_result_is_small_and_the_views_read_it(tiny_lm, lsae):
    c = compare_prompts(tiny_lm, templated(tiny_lm), plain(tiny_lm), lsae)
    assert len(pickle.dumps(c)) < 20_000  # no vocabulary-sized or dense SAE array crosses a GPU call
    assert not any(isinstance(v, torch.Tensor) for v in vars(c).values())
    fig = compare_figure(c, "turn 1", "plain")
    assert len(fig.data) == 5 and list(fig.data[-1].y) == pytest.approx(c.cosine.tolist())
    rows = top_token_rows(c)
    assert len(rows) == 10 and rows[0][2] == pytest.approx(float(c.top_probs_a[0]), abs=1e-5)
    assert len(layer_rows(c)) == tiny_lm.n_layers
    summary = compare_summary(c, "turn 1", "plain")
    assert f"{c.kl_ab:.3f}" in summary and "Top-10 overlap" in summary
