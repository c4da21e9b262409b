from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from inspectors.engine.capture import LayerProbe, run_turn, stream_turn
from inspectors.engine.conversation import Conversation
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import ConversationError, GenerationError, InvalidParameterError

QUESTION = [{"role": "user", "content": "Name a color in a rainbow."}]


def full_forward(lm, token_ids: np.ndarray):
    """Independent reference: one plain forward over the whole turn, no cache, no generate."""
    with torch.no_grad():
        return lm.model(torch.tensor(token_ids[None, :], dtype=torch.long), output_hidden_states=True)


def test_record_shapes(tiny_lm):
    record = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=12))
    k = tiny_lm.settings.top_k_stored
    n_steps = record.n_tokens - record.n_prompt
    assert 1 <= n_steps <= 12
    assert record.token_ids.dtype == np.int32
    assert len(record.tokens) == record.n_tokens
    assert record.tokens == tiny_lm.tokenizer.convert_ids_to_tokens(record.token_ids.tolist())
    assert record.prompt_text.startswith("<bos><start_of_turn>user\n")
    assert (
        record.token_ids[: record.n_prompt].tolist()
        == tiny_lm.tokenizer(record.prompt_text, add_special_tokens=False)["input_ids"]
    )
    for name in ("raw_ids", "raw_probs", "warped_ids", "warped_probs"):
        assert getattr(record.steps, name).shape == (n_steps, k)
    assert record.steps.chosen_raw_prob.shape == (n_steps,)
    assert record.params["seed"] is not None
    assert record.stop_reason in {"max_new_tokens", "end_of_turn", "eos"}


def test_topk_probabilities_equal_an_independent_softmax(tiny_lm):
    record = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=8))
    logits = full_forward(tiny_lm, record.token_ids).logits[0].double()  # (T, V)
    for step in range(record.steps.n_steps):
        row = logits[record.n_prompt - 1 + step]
        manual = torch.exp(row - row.max())
        manual = (manual / manual.sum()).numpy()
        top = np.argsort(-manual)[: tiny_lm.settings.top_k_stored]
        np.testing.assert_array_equal(record.steps.raw_ids[step], top)
        np.testing.assert_allclose(record.steps.raw_probs[step], manual[top], rtol=1e-4, atol=1e-7)
        chosen = record.token_ids[record.n_prompt + step]
        assert chosen == top[0]  # greedy picks the argmax
        np.testing.assert_allclose(record.steps.chosen_raw_prob[step], manual[chosen], rtol=1e-4)
        # greedy without penalty: the warped distribution is the raw one
        np.testing.assert_allclose(record.steps.warped_probs[step], record.steps.raw_probs[step], rtol=1e-6)


def test_warped_distribution_is_temperature_topk_topp_of_the_raw_logits(tiny_lm):
    params = SamplingParams(temperature=0.7, top_k=6, top_p=0.8, max_new_tokens=6, seed=11)
    record = run_turn(tiny_lm, QUESTION, params)
    logits = full_forward(tiny_lm, record.token_ids).logits[0].double()
    for step in range(record.steps.n_steps):
        scaled = logits[record.n_prompt - 1 + step] / 0.7
        order = torch.argsort(scaled, descending=True)[:6]
        probs = torch.softmax(scaled[order], dim=0)
        # top-p keeps the smallest prefix whose mass reaches 0.8 (at least one token)
        keep = int((torch.cumsum(probs, 0) < 0.8).sum()) + 1
        expected = torch.softmax(scaled[order[:keep]], dim=0).numpy()
        got = record.steps.warped_probs[step]
        np.testing.assert_array_equal(record.steps.warped_ids[step][:keep], order[:keep].numpy())
        np.testing.assert_allclose(got[:keep], expected, rtol=1e-4)
        assert np.all(got[keep:] == 0)
        chosen = record.token_ids[record.n_prompt + step]
        assert chosen in order[:keep].numpy()  # only kept tokens can be drawn


def test_streamed_text_equals_plain_greedy_generate(tiny_lm):
    progress = list(stream_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=10)))
    record = progress[-1].record
    streamed = [p for p in progress if p.record is None]
    assert [p.n_reply_tokens for p in streamed] == list(range(1, record.steps.n_steps + 1))
    with torch.no_grad():
        plain = tiny_lm.model.generate(
            torch.tensor([record.prompt_ids.tolist()]),
            do_sample=False,
            max_new_tokens=10,
            eos_token_id=tiny_lm.stop_token_ids,
        )[0, record.n_prompt :]
    plain_text = tiny_lm.tokenizer.decode(plain, skip_special_tokens=True)
    np.testing.assert_array_equal(record.reply_ids, plain.numpy())
    assert streamed[-1].reply_text == plain_text
    assert record.reply_text == plain_text.strip()


def test_seeded_sampling_repeats_and_seed_is_recorded(tiny_lm):
    params = SamplingParams(temperature=1.0, max_new_tokens=10, seed=1234)
    first = run_turn(tiny_lm, QUESTION, params)
    again = run_turn(tiny_lm, QUESTION, params)
    other = run_turn(tiny_lm, QUESTION, params.with_seed(99))
    np.testing.assert_array_equal(first.token_ids, again.token_ids)
    assert not np.array_equal(first.token_ids, other.token_ids)
    unseeded = run_turn(tiny_lm, QUESTION, SamplingParams(temperature=1.0, max_new_tokens=10))
    replay = run_turn(
        tiny_lm, QUESTION, SamplingParams(temperature=1.0, max_new_tokens=10, seed=unseeded.params["seed"])
    )
    np.testing.assert_array_equal(unseeded.token_ids, replay.token_ids)


@pytest.mark.parametrize(
    "params", [SamplingParams(temperature=1.0, top_k=1), SamplingParams(temperature=1.0, top_p=0.0)]
)
def test_topk1_and_topp0_equal_greedy(tiny_lm, params):
    greedy = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=10))
    for seed in (1, 2):
        sampled = run_turn(
            tiny_lm, QUESTION, SamplingParams(**{**params.to_dict(), "max_new_tokens": 10, "seed": seed})
        )
        np.testing.assert_array_equal(sampled.token_ids, greedy.token_ids)
        assert np.all(sampled.steps.chosen_warped_prob == 1.0)


def test_probe_residual_matches_a_hand_written_hook_on_a_full_pass(tiny_lm):
    layers = [0, tiny_lm.n_layers - 2, tiny_lm.n_layers - 1]
    probes = [LayerProbe(f"resid{layer}", layer, lambda resid, ids: resid.clone()) for layer in layers]
    record = run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=7), probes=probes)
    hooked: dict[int, torch.Tensor] = {}
    handles = [
        tiny_lm.decoder_layers[layer].register_forward_hook(
            lambda module, args, out, layer=layer: hooked.__setitem__(layer, out[0] if isinstance(out, tuple) else out)
        )
        for layer in layers
    ]
    try:
        reference = full_forward(tiny_lm, record.token_ids)
    finally:
        for handle in handles:
            handle.remove()
    for layer in layers:
        captured = record.probes[f"resid{layer}"]
        assert captured.shape == (record.n_tokens, tiny_lm.text_config.hidden_size)  # every token, the last included
        torch.testing.assert_close(captured, hooked[layer][0], rtol=1e-4, atol=1e-4)
        if layer < tiny_lm.n_layers - 1:  # hidden_states[L+1] is layer L's output, except after the final norm
            torch.testing.assert_close(captured, reference.hidden_states[layer + 1][0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(record.probes[f"resid{layers[-1]}"], reference.hidden_states[-1][0], atol=1e-3)


def test_stop_event_stops_generation(tiny_lm):
    stop = threading.Event()
    stream = stream_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=50), stop_event=stop)
    first = next(stream)
    assert first.n_reply_tokens == 1
    stop.set()
    final = [p for p in stream][-1]
    assert final.record is not None
    assert final.record.stop_reason == "stopped"
    assert final.record.steps.n_steps < 50


def test_max_new_tokens_over_the_limit_and_bad_probe_layer_are_refused(tiny_lm):
    with pytest.raises(InvalidParameterError, match="`max_new_tokens` must be at most 64"):
        run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=65))
    with pytest.raises(InvalidParameterError, match="layer"):
        run_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=2), probes=[LayerProbe("x", 99, lambda r, i: None)])


def test_context_trimming_is_recorded(tiny_lm):
    history = []
    for i in range(12):
        history += [
            {"role": "user", "content": f"question {i} " * 6},
            {"role": "assistant", "content": f"answer {i} " * 6},
        ]
    messages = [*history, {"role": "user", "content": "newest"}]
    record = run_turn(tiny_lm, messages, SamplingParams(max_new_tokens=16))
    assert record.n_prompt <= tiny_lm.context_limit - 16
    assert record.dropped_messages > 0
    assert record.messages[-1] == {"role": "user", "content": "newest"}
    assert any("dropped" in w for w in record.warnings)


def test_conversation_keeps_history_on_failure(tiny_lm, monkeypatch):
    chat = Conversation(system_prompt="Be brief.")
    chat.send(tiny_lm, "first", SamplingParams(max_new_tokens=3))
    before = [dict(m) for m in chat.messages]
    assert [m["role"] for m in before] == ["user", "assistant"]
    with pytest.raises(ConversationError, match="empty"):
        chat.send(tiny_lm, "   ", SamplingParams(max_new_tokens=3))

    def broken_generate(*args, **kwargs):
        raise RuntimeError("device lost")

    monkeypatch.setattr(tiny_lm.model, "generate", broken_generate)
    with pytest.raises(GenerationError, match="device lost"):
        chat.send(tiny_lm, "second", SamplingParams(max_new_tokens=3))
    monkeypatch.undo()
    assert chat.messages == before and len(chat.records) == 1
    record = chat.send(tiny_lm, "second", SamplingParams(max_new_tokens=3))
    assert record.messages[:2] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"}]
    assert len(chat.messages) == 4 and len(chat.records) == 2
    chat.undo()
    assert chat.messages == before


def test_a_stream_resumed_on_different_threads_works_as_gradio_does(tiny_lm):
    from concurrent.futures import ThreadPoolExecutor

    stream = stream_turn(tiny_lm, QUESTION, SamplingParams(max_new_tokens=6))
    items = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        while True:
            item = pool.submit(next, stream, None).result()
            if item is None:
                break
            items.append(item)
    assert items[-1].record is not None
    assert tiny_lm.lock.acquire(timeout=5)  # released after the turn
    tiny_lm.lock.release()


def test_concurrent_turns_never_see_each_others_activations(tiny_lm):
    from concurrent.futures import ThreadPoolExecutor

    questions = [[{"role": "user", "content": "short"}], [{"role": "user", "content": "a much longer question " * 8}]]
    probe = LayerProbe("resid", 1, lambda resid, ids: resid.clone())

    def turn(messages):
        return run_turn(tiny_lm, messages, SamplingParams(max_new_tokens=5), probes=[probe])

    with ThreadPoolExecutor(max_workers=4) as pool:
        records = list(pool.map(turn, questions * 3))
    for record in records:
        assert record.probes["resid"].shape[0] == record.n_tokens
        alone = turn(record.messages)
        np.testing.assert_array_equal(alone.token_ids, record.token_ids)
        torch.testing.assert_close(alone.probes["resid"], record.probes["resid"])
