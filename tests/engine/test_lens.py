"""The logit lens: the model's own head read at every layer. At the last layer it is the model's distribution."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from inspectors.engine import lens
from inspectors.engine.capture import run_turn
from inspectors.engine.lens import KnownOutput, logit_lens
from inspectors.engine.sampling import SamplingParams

QUESTION = [{"role": "user", "content": "Tell me about rainbows and the colours in them, please."}]


@pytest.fixture(scope="module")
def turn(tiny_lm):
    return run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=8))


def reply_positions(turn) -> np.ndarray:
    return np.arange(turn.n_prompt - 1, turn.n_tokens - 1)  # each reply token's prediction


@pytest.fixture(scope="module")
def grid(tiny_lm, turn):
    return logit_lens(tiny_lm, turn.token_ids, reply_positions(turn), precision="float32")


@pytest.fixture(scope="module")
def scanned(tiny_lm, turn):
    """The layers before the last through the bfloat16 vocabulary scan, on any CPU."""
    return logit_lens(tiny_lm, turn.token_ids, reply_positions(turn), precision="bfloat16")


def hand_lens(lm, token_ids, layer, position):
    """norm -> head -> Gemma 2's cap -> softmax, from transformers' hidden_states (layer L's output is
    hidden_states[L + 1], except after the last layer, where it is already normed)."""
    with torch.no_grad():
        out = lm.model(torch.tensor(token_ids[None, :]), output_hidden_states=True)
        if layer == lm.n_layers - 1:
            return torch.softmax(out.logits[0, position].double(), -1).numpy()  # the model's own
        normed = lm.model.model.norm(out.hidden_states[layer + 1][0, position])
        logits = lm.model.lm_head(normed).double()
    cap = getattr(lm.text_config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.softmax(logits, -1).numpy()


@pytest.mark.parametrize("which", ["grid", "scanned", "known"])
def test_the_last_layer_is_the_models_own_distribution(tiny_lm, turn, which, request):
    known = KnownOutput.of_reply(turn)
    grid = {
        "known": lambda: logit_lens(tiny_lm, turn.token_ids, reply_positions(turn), known_output=known),
    }.get(which, lambda: request.getfixturevalue(which))()
    last = tiny_lm.n_layers - 1
    for p, position in enumerate(grid.positions):
        expected = hand_lens(tiny_lm, turn.token_ids, last, position)
        np.testing.assert_allclose(grid.top_probs[last, p], np.sort(expected)[::-1][:10], atol=1e-5)
        assert grid.target_probs[last, p] == pytest.approx(expected[turn.token_ids[position + 1]], abs=1e-5)
    # the last layer's top-1 is what the Next token tab shows first for each step (greedy: the generated token)
    np.testing.assert_array_equal(grid.top_ids[last, :, 0], turn.steps.raw_ids[:, 0])
    np.testing.assert_allclose(grid.top_probs[last, :, 0], turn.steps.raw_probs[:, 0], atol=1e-5)


def test_every_layer_matches_a_hand_written_lens(tiny_lm, turn, grid):
    for layer in range(tiny_lm.n_layers - 1):
        for p in (0, len(grid.positions) - 1):
            expected = hand_lens(tiny_lm, turn.token_ids, layer, grid.positions[p])
            np.testing.assert_array_equal(grid.top_ids[layer, p], np.argsort(-expected, kind="stable")[:10])
            np.testing.assert_allclose(grid.top_probs[layer, p], np.sort(expected)[::-1][:10], rtol=1e-4, atol=1e-6)


def test_commitment_is_the_first_layer_from_which_the_top_token_stays(grid):
    committed = grid.commitment()
    hits = grid.top_ids[:, :, 0] == grid.target_ids[None, :]
    for p, layer in enumerate(committed):
        assert layer >= 0  # greedy: the last layer's top-1 is the generated token
        assert hits[layer:, p].all() and (layer == 0 or not hits[layer - 1, p])


def test_the_bfloat16_scan_gives_each_shown_token_its_float32_probability(tiny_lm, turn, scanned):
    """The kept tokens are re-scored in float32 and only the rest of the normaliser is bfloat16: the
    probabilities shown are the float32 lens's within 2% (relative), and the top-1 is the most probable token
    up to that rounding (a tiny random model's next-token distribution is nearly flat, so near-ties abound)."""
    assert scanned.precision == "bfloat16 scan"
    for layer in range(tiny_lm.n_layers - 1):
        for p, position in enumerate(scanned.positions):
            expected = hand_lens(tiny_lm, turn.token_ids, layer, position)
            np.testing.assert_allclose(scanned.top_probs[layer, p], expected[scanned.top_ids[layer, p]], rtol=0.02)
            assert np.all(np.diff(scanned.top_probs[layer, p]) <= 0)
            assert scanned.top_probs[layer, p, 0] >= 0.98 * expected.max()
            target = expected[turn.token_ids[position + 1]]
            assert scanned.target_probs[layer, p] == pytest.approx(target, rel=0.02)


def test_the_scan_is_the_same_whatever_its_tiles(tiny_lm, turn, scanned, monkeypatch):
    """Rows and vocabulary in uneven tiles (a last partial tile of each) give the same grid."""
    monkeypatch.setattr(lens, "SCAN_ROWS", 5)
    monkeypatch.setattr(lens, "SCAN_VOCAB", 10_007)
    tiled = logit_lens(tiny_lm, turn.token_ids, scanned.positions, precision="bfloat16")
    np.testing.assert_allclose(tiled.top_probs, scanned.top_probs, rtol=0.01)
    np.testing.assert_allclose(tiled.target_probs, scanned.target_probs, rtol=0.01)


def test_a_known_output_fills_the_last_layer_only_where_it_is_known(tiny_lm, turn, grid):
    """The recorded reply distributions stand in for the last layer at the reply's positions; the prompt's
    positions, unknown, are computed; both agree with the float32 head."""
    positions = np.arange(turn.n_prompt - 4, turn.n_tokens - 1)  # three prompt positions, then the reply
    mixed = logit_lens(tiny_lm, turn.token_ids, positions, known_output=KnownOutput.of_reply(turn), precision="float32")
    last = tiny_lm.n_layers - 1
    np.testing.assert_array_equal(mixed.top_ids[last, 3:], turn.steps.raw_ids[:, :10])
    np.testing.assert_allclose(mixed.top_probs[last, 3:], grid.top_probs[last], atol=1e-5)
    for p in range(3):
        expected = hand_lens(tiny_lm, turn.token_ids, last, positions[p])
        np.testing.assert_allclose(mixed.top_probs[last, p], np.sort(expected)[::-1][:10], atol=1e-5)


def test_a_bad_precision_is_named(tiny_lm, turn):
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        logit_lens(tiny_lm, turn.token_ids, reply_positions(turn), precision="int4")


def test_the_scan_runs_only_on_a_float32_model_on_a_cpu(tiny_lm):
    """A half-precision model is already as fast as the scan would be; a GPU's float32 head is cheap."""
    assert lens.scan_dtype(types.SimpleNamespace(dtype=torch.bfloat16, device=torch.device("cpu"))) is None
    assert lens.scan_dtype(types.SimpleNamespace(dtype=torch.float32, device=torch.device("cuda"))) is None


def fake_lm(vocab: int, d: int, cap: float | None, bias: bool):
    """Just the parts the lens's head uses: a final norm, a peaked unembedding (some tokens far above the rest,
    as in Gemma's early layers) and the soft-cap."""
    torch.manual_seed(1)
    head = torch.nn.Linear(d, vocab, bias=bias)
    with torch.no_grad():
        head.weight.mul_(4)
        head.weight[[7, 55, 98]] *= 6  # a few dominant tokens, in different tiles
    parts = types.SimpleNamespace(final_norm=torch.nn.Identity(), unembedding=head, final_logit_softcap=cap)
    return types.SimpleNamespace(parts=parts)


@pytest.mark.parametrize(("cap", "bias"), [(None, False), (3.0, True)])
def test_the_scan_bookkeeping_is_exact_when_it_runs_in_float32(monkeypatch, cap, bias):
    """Run in float32, the scan must give exactly the full softmax: each tile's candidates out of its rest, the
    cut-off candidates counted once, the kept ones re-scored, ids offset by their tile, a short last tile."""
    monkeypatch.setattr(lens, "SCAN_VOCAB", 10)
    monkeypatch.setattr(lens, "SCAN_ROWS", 4)
    lm = fake_lm(vocab=103, d=8, cap=cap, bias=bias)
    resid = torch.randn(9, 8)
    targets = torch.randint(0, 103, (9,))
    with torch.no_grad():
        logits = lm.parts.unembedding(resid)
        expected = torch.softmax(torch.tanh(logits / cap) * cap if cap else logits, dim=-1)
        ids, probs, target = lens._scanned(lm, resid, targets, 5, torch.float32)
    top = expected.topk(5, dim=-1)
    torch.testing.assert_close(ids, top.indices)
    torch.testing.assert_close(probs, top.values, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(target, expected.gather(1, targets[:, None])[:, 0], rtol=1e-5, atol=1e-7)
