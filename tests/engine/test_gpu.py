"""The ZeroGPU wrapper: each call reserves GPU time sized to its work, and a quota refusal becomes a message."""

from __future__ import annotations

import sys
import types

import pytest

from inspectors.engine import calls, gpu
from inspectors.engine.calls import ModelRef, lab_seconds, reply_seconds
from inspectors.engine.sampling import SamplingParams
from inspectors.errors import InspectorError
from inspectors.labs.presets import load_preset
from inspectors.labs.registry import LABS
from inspectors.settings import Settings


class QuotaError(Exception):
    """What spaces raises: a gr.Error titled 'ZeroGPU quota exceeded'."""

    title = "ZeroGPU quota exceeded"


@pytest.fixture
def fake_zero_gpu(monkeypatch):
    """A `spaces` whose GPU decorator records the reserved seconds, then refuses for lack of quota."""
    reserved = []

    def GPU(duration):
        def decorate(fn):
            def call(*args, **kwargs):
                reserved.append(duration(*args, **kwargs) if callable(duration) else duration)
                raise QuotaError("You have exceeded your free ZeroGPU quota (61s requested vs. 40s left).")

            return call

        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setattr(gpu, "on_zero_gpu", lambda: True)
    return reserved


def test_a_quota_refusal_says_what_it_means_and_what_to_do(fake_zero_gpu):
    @gpu.gpu(duration=lambda n: 5 + n)
    def work(n):
        return n

    with pytest.raises(InspectorError) as err:
        work(7)
    assert fake_zero_gpu == [12]  # the reservation was sized from the call's arguments
    message = str(err.value)
    assert message.startswith("ZeroGPU quota exceeded: You have exceeded your free ZeroGPU quota")
    assert "Your conversation is kept" in message and "log in" in message


def test_a_quota_refusal_in_a_chat_keeps_the_conversation(fake_zero_gpu, tiny_dirs, monkeypatch):
    from inspectors.session import Session, Shared

    monkeypatch.setattr(calls, "stream_reply", gpu.gpu(calls.reply_seconds)(calls.stream_reply.inline))
    session = Session(Shared(Settings(model_id=str(tiny_dirs["gemma3"]), max_new_tokens_limit=64)))
    last = list(session.send("hello", "", 0, 0, 1, 20, ""))[-1]
    assert "ZeroGPU quota exceeded" in last.status and not last.ok and last.box == "hello"
    assert session.records == [] and fake_zero_gpu == [11]


def test_reservations_follow_the_work():
    model = ModelRef("m", Settings())
    assert reply_seconds(model, [], SamplingParams(max_new_tokens=64)) == 13
    assert reply_seconds(model, [], SamplingParams(max_new_tokens=100_000)) == 120  # capped
    full = {lab: lab_seconds(model, lab, load_preset(lab)) for lab in LABS}
    quick = {lab: lab_seconds(model, lab, load_preset(lab, quick=True)) for lab in full}
    assert all(5 <= seconds <= 180 for seconds in full.values())
    assert all(quick[lab] <= full[lab] for lab in full)
    assert full["template_vs_none"] == 10 + int(0.05 * 2 * 512)  # two greedy replies of 512 tokens
    assert full["tokenization"] < full["sampling"] < full["template_vs_none"]
