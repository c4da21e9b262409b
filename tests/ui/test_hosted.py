"""Hosted mode (a public Space): every input that names a model or a path is checked against the allowlist."""

from __future__ import annotations

import pytest
from gradio_client import Client

from inspectors.settings import Settings
from tests.helpers import save_tiny_cross_encoder
from tests.ui.conftest import launch

CHAT = {"system_prompt": "", "temperature": 0, "top_k": 0, "top_p": 1, "max_new_tokens": 4, "seed": None}


@pytest.fixture(scope="module")
def client(tiny_dirs):
    settings = Settings(
        model_id=str(tiny_dirs["gemma3"]),
        allowed_model_ids=[str(tiny_dirs["gemma3"])],
        hosted=True,
        max_context_tokens=256,
        max_new_tokens_limit=64,
    )
    demo, url = launch(settings)
    yield Client(url, verbose=False)
    demo.close()


def test_the_allowed_model_chats(client):
    assert client.predict("hello", **CHAT, api_name="/chat")["status"].startswith("Turn 1:")


@pytest.mark.parametrize("model_id", ["google/gemma-2-9b-it", "/etc", "gpt2"])
def test_a_model_outside_the_allowlist_is_refused_and_never_loaded(client, tiny_dirs, model_id):
    switch = client.predict(model_id=model_id, api_name="/load_model")
    assert not switch["ok"] and "is not offered on this deployment" in switch["status"]
    assert switch["model_id"] == str(tiny_dirs["gemma3"])


def test_another_local_folder_with_a_real_model_is_refused(client, tiny_dirs):
    switch = client.predict(model_id=str(tiny_dirs["gemma2"]), api_name="/load_model")
    assert not switch["ok"] and "is not offered on this deployment" in switch["status"]


def test_a_lab_scorer_outside_the_allowlist_is_refused(client, tmp_path):
    local = str(save_tiny_cross_encoder(tmp_path / "scorer"))
    out = client.predict(scorer_model=local, max_new_tokens=2, api_name="/lab_template_vs_none")
    assert out["result"] is None
    assert "`scorer_model` must be one of ['cross-encoder/ms-marco-MiniLM-L-6-v2'] on this deployment" in out["summary"]
    assert "local paths are never read" in out["summary"]
    out = client.predict(scorer_model="someone/any-classifier", max_new_tokens=2, api_name="/lab_template_vs_none")
    assert out["result"] is None and "on this deployment" in out["summary"]
