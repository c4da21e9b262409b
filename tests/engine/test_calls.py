"""The engine calls in the shape ZeroGPU runs them: plain, picklable data in and out, each call in a forked
process (GEMMA_INSPECTOR_FORK_CALLS=1), the session in the parent receiving what comes back."""

from __future__ import annotations

import inspect
import pickle
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

from inspectors.engine import calls
from inspectors.engine.calls import ModelRef
from inspectors.engine.gpu import FORK_CALLS_ENV, gpu
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.stop import StopSignal
from inspectors.errors import InvalidParameterError
from inspectors.session import Session, Shared
from inspectors.settings import Settings
from tests.helpers import hold_generation_until_stopped, save_tiny_sae

GPU_CALLS = [fn for _, fn in inspect.getmembers(calls, inspect.isfunction) if hasattr(fn, "inline")]


@pytest.fixture
def settings(tiny_dirs, tmp_path):
    sae_dir = save_tiny_sae(tmp_path / "sae", d_in=64, layer=2)
    return Settings(
        model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256, max_new_tokens_limit=64, sae=str(sae_dir)
    )


@pytest.fixture
def forked(monkeypatch):
    monkeypatch.setenv(FORK_CALLS_ENV, "1")


def roundtrip(value):
    """What a ZeroGPU worker sees of a value: it crosses as a multiprocessing pickle."""
    return pickle.loads(ForkingPickler.dumps(value))


def test_every_gpu_call_is_listed():
    assert {fn.__name__ for fn in GPU_CALLS} == {
        "stream_reply", "attention", "sae_activations", "run_lab", "logit_lens", "attribute", "segment_attention",
        "feature_steering_vector", "mean_difference_vector", "compare_prompts", "plain_reply",
    }  # fmt: skip


def test_arguments_and_results_of_every_gpu_call_pickle(settings):
    model = ModelRef(settings.model_id, settings)
    messages = [{"role": "user", "content": "Hello"}]
    params = SamplingParams(max_new_tokens=4, seed=1)
    stop = StopSignal.new()
    progress = list(calls.stream_reply(*roundtrip((model, messages, params, stop, 2, 3))))
    record = roundtrip(progress[-1]).record
    assert record is not None and record.probes["sae"].feature == 3
    assert all(roundtrip(p).n_reply_tokens == p.n_reply_tokens for p in progress)

    weights = roundtrip(calls.attention(*roundtrip((model, record.token_ids, 1))))
    assert weights.dtype == np.float16 and weights.shape[1:] == (record.n_tokens, record.n_tokens)
    acts = roundtrip(calls.sae_activations(*roundtrip((model, None, record, 5))))
    assert acts.feature == 5 and acts.feature_values.shape == (record.n_tokens,)
    result = roundtrip(calls.run_lab(*roundtrip((model, "tokenization", {"sentence": "Hi there"}))))
    assert result.ids == model.load().tokenizer("Hi there", add_special_tokens=False)["input_ids"]

    positions = np.array([record.n_tokens - 2])
    grid = roundtrip(calls.logit_lens(*roundtrip((model, record.token_ids, positions))))
    assert grid.top_ids.shape[1] == len(positions) and grid.target_ids[0] == record.token_ids[-1]
    segments = record.segments.of_token
    attribution = roundtrip(calls.attribute(*roundtrip((model, record.token_ids, 3, "gradient", segments))))
    assert len(attribution.scores) == 3
    shares = roundtrip(calls.segment_attention(*roundtrip((model, record.token_ids, segments, positions))))
    assert shares.shape[2] == 1
    steering = roundtrip(calls.feature_steering_vector(*roundtrip((model, None, [3], 2.0, "residual norm"))))
    assert "feature 3 " in steering.description and steering.vector.shape == (64,)
    added = roundtrip(calls.mean_difference_vector(*roundtrip((model, 1, ["happy"], ["sad"], 1.0))))
    assert added.layer == 1 and added.vector.shape == (64,)
    compared = roundtrip(calls.compare_prompts(*roundtrip((model, record.prompt_ids, record.token_ids, None, True))))
    assert compared.sae is not None and compared.cosine.shape == (4,) and compared.n_prompt_b == record.n_tokens
    plain = roundtrip(calls.plain_reply(*roundtrip((model, "Hello", 4))))
    assert plain.prompt_ids.tolist() == model.load().tokenizer("Hello")["input_ids"] and plain.n_prompt == 2


def test_a_session_chats_inspects_and_runs_a_lab_through_forked_calls(settings, forked, monkeypatch):
    forked_session = Session(Shared(settings), "forked")
    forked_session.shared.sae(forked_session.model_id, wait=True)
    last = list(forked_session.send("Tell me about time travel", "", 0, 0, 1, 6, "1"))[-1]
    assert last.ok and last.status.startswith("Turn 1:")  # the record came back and the parent appended it
    record = forked_session.records[0]

    monkeypatch.delenv(FORK_CALLS_ENV)
    inline = Session(Shared(settings), "inline")
    list(inline.send("Tell me about time travel", "", 0, 0, 1, 6, "1"))
    assert record.token_ids.tolist() == inline.records[0].token_ids.tolist()  # greedy: the same reply
    np.testing.assert_allclose(record.steps.raw_probs, inline.records[0].steps.raw_probs, atol=1e-6)

    monkeypatch.setenv(FORK_CALLS_ENV, "1")
    forked_weights = forked_session.attention_panel(0, 1, "mean").weights
    np.testing.assert_allclose(forked_weights, inline.attention_panel(0, 1, "mean").weights, atol=1e-3)
    sae = forked_session.sae_panel(0, None, "7", 0)
    assert sae.feature == 7 and len(sae.values) == record.n_tokens
    lab = forked_session.lab_panel("tokenization", {"sentence": "Hello there"})
    assert lab.result is not None and lab.result["tokens"] == ["Hello", "▁there"]


def test_a_worker_error_arrives_with_its_message(settings, forked):
    model = ModelRef(settings.model_id, settings)
    with pytest.raises(InvalidParameterError, match=r"`layer` must be in \[0, 3\] for .*, but is 9"):
        calls.attention(model, np.array([2, 105, 2364]), 9)


def test_stop_reaches_a_reply_in_a_forked_worker(settings, forked, monkeypatch):
    hold_generation_until_stopped(monkeypatch)
    session = Session(Shared(settings))
    stream = session.send("Tell me everything", "", 0, 0, 1, 60, "")
    first = next(stream)
    assert not first.done
    session.stop()
    last = list(stream)[-1]
    assert "stopped by stopped" in last.status and session.records[-1].steps.n_steps < 60


@gpu(duration=1)
def _returns_a_lambda():
    return lambda: None


def test_the_fork_emulation_is_as_strict_as_zero_gpu(forked):
    with pytest.raises(RuntimeError, match="GPU worker error: a result that does not pickle"):
        _returns_a_lambda()


def test_stop_signal_crosses_processes():
    import multiprocessing

    signal = StopSignal.new()
    child = multiprocessing.get_context("fork").Process(target=signal.set)
    child.start()
    child.join()
    assert signal.is_set()
    signal.clear()
    assert not signal.is_set()
