"""Start-up never fails for a model: the configured one, or the embedded one with a notice and a retry."""

from __future__ import annotations

import shutil

import pytest

from inspectors.errors import ModelLoadError
from inspectors.session import Session, Shared
from inspectors.session import shared as shared_module
from inspectors.settings import EMBEDDED_MODEL_ID, Settings


def test_start_falls_back_to_the_embedded_model_then_retry_loads_the_configured_one(tiny_dirs, tmp_path):
    configured = tmp_path / "my-model"  # not there yet: like a gated model before the token is added
    shared = Shared(Settings(model_id=str(configured), max_new_tokens_limit=64))
    shared.start(background=False)
    assert shared.default_model_id() == EMBEDDED_MODEL_ID
    assert f"{configured} could not be loaded" in shared.notice and "HF_TOKEN" in shared.notice
    session = Session(shared)
    assert session.model_id == EMBEDDED_MODEL_ID
    assert list(session.send("hello", "", 0, 0, 1, 4, ""))[-1].ok  # the app chats on the fallback

    failed = session.retry_default_model()
    assert not failed.ok and "still cannot be loaded" in failed.status and shared.notice

    shutil.copytree(tiny_dirs["gemma3"], configured)  # the token was added, say
    switched = session.retry_default_model()
    assert switched.ok and session.model_id == str(configured) and shared.notice == ""
    assert shared.default_model_id() == str(configured) and len(session.records) == 1  # the chat is kept


def test_on_zero_gpu_only_models_loaded_at_start_up_are_used(tiny_dirs, monkeypatch):
    monkeypatch.setattr(shared_module, "on_zero_gpu", lambda: True)
    settings = Settings(model_id=str(tiny_dirs["gemma3"]), allowed_model_ids=[str(tiny_dirs["gemma3"])])
    shared = Shared(settings)
    shared.start(background=False, preload=settings.allowed_model_ids)
    assert shared.model(str(tiny_dirs["gemma3"])).model_id == str(tiny_dirs["gemma3"])
    other = str(tiny_dirs["gemma2"]) + "-copy"  # a model this process has not loaded
    with pytest.raises(ModelLoadError, match="was not loaded when this ZeroGPU Space started"):
        shared.model(other)
