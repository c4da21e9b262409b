from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from inspectors.engine.loading import explain_load_error, load_model
from inspectors.engine.templating import GEMMA_TEMPLATE_FILE
from inspectors.errors import InvalidParameterError, ModelLoadError
from inspectors.settings import EMBEDDED_MODEL_ID, REPO_ROOT, Settings


def test_local_folder_loads_with_its_own_or_the_shipped_template(tiny_dirs):
    settings = Settings(max_context_tokens=128)
    gemma2 = load_model(str(tiny_dirs["gemma2"]), settings)
    gemma3 = load_model(str(tiny_dirs["gemma3"]), settings)
    assert gemma2.template_source == "tokenizer"
    assert "System role not supported" in gemma2.chat_template
    assert gemma3.template_source == str(GEMMA_TEMPLATE_FILE)
    assert gemma3.context_limit == 128
    again = load_model(str(tiny_dirs["gemma3"]), Settings(max_context_tokens=64))
    assert again.model is gemma3.model and again.lock is gemma3.lock  # weights loaded once, shared
    assert again.context_limit == 64
    end_of_turn = gemma3.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert gemma3.stop_token_ids == sorted({gemma3.tokenizer.eos_token_id, end_of_turn})


def test_hosted_mode_refuses_ids_that_are_not_offered(tiny_dirs):
    settings = Settings(hosted=True, allowed_model_ids=[EMBEDDED_MODEL_ID], model_id=EMBEDDED_MODEL_ID)
    with pytest.raises(ModelLoadError, match="not offered on this deployment"):
        load_model(str(tiny_dirs["gemma2"]), settings)


def test_4bit_needs_a_gpu(tiny_dirs):
    with pytest.raises(ModelLoadError, match=r"4-bit .* needs a CUDA GPU"):
        load_model(str(tiny_dirs["gemma2"]), Settings(load_in_4bit=True, device="cpu"))


def _hub_response(status: int) -> httpx.Response:
    url = "https://huggingface.co/google/gemma-2-2b-it/resolve/main/config.json"
    return httpx.Response(status, request=httpx.Request("GET", url))


def test_gated_model_message_says_what_to_do():
    err = OSError("You are trying to access a gated repo.")
    err.__cause__ = GatedRepoError("403 Client Error: access is restricted", response=_hub_response(403))
    message = explain_load_error("google/gemma-2-2b-it", err)
    assert "accept its licence at https://huggingface.co/google/gemma-2-2b-it" in message
    assert "HF_TOKEN" in message and "https://huggingface.co/settings/tokens" in message


def test_unknown_model_message():
    err = OSError("nope")
    err.__cause__ = RepositoryNotFoundError("Repository Not Found for url", response=_hub_response(404))
    assert "was not found: check the spelling" in explain_load_error("google/gemma-9-xl", err)


def test_offline_hub_load_gives_a_clear_message_and_no_traceback():
    """The real hub code path, run offline in a subprocess (HF_HUB_OFFLINE is read at import)."""
    code = (
        "from inspectors import load_model, ModelLoadError, Settings\n"
        "try:\n"
        "    load_model('google/gemma-2-2b-it', Settings())\n"
        "except ModelLoadError as err:\n"
        "    print('MESSAGE:', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "/tmp/gemma-inspector-empty-hf-home"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert "MESSAGE: google/gemma-2-2b-it is not in the local Hugging Face cache" in out.stdout, out.stderr[-2000:]
    assert "Traceback" not in out.stdout + out.stderr


def test_settings_precedence_yaml_then_env_and_token_never_in_repr(tmp_path):
    config = tmp_path / "space.yaml"
    config.write_text("settings:\n  model_id: google/gemma-2-2b-it\n  max_context_tokens: 1024\n  hosted: true\n")
    env = {"GEMMA_INSPECTOR_CONFIG": str(config), "GEMMA_INSPECTOR_MAX_CONTEXT": "512", "HF_TOKEN": "hf_secret123"}
    settings = Settings.load(env=env)
    assert settings.model_id == "google/gemma-2-2b-it"
    assert settings.hosted is True
    assert settings.max_context_tokens == 512
    assert settings.hf_token == "hf_secret123"
    assert "hf_secret123" not in repr(settings)
    with pytest.raises(InvalidParameterError, match="GEMMA_INSPECTOR_MAX_CONTEXT"):
        Settings.load(env={"GEMMA_INSPECTOR_MAX_CONTEXT": "lots"})
    with pytest.raises(InvalidParameterError, match="in hosted mode"):
        Settings(hosted=True, model_id="someone/else", allowed_model_ids=[EMBEDDED_MODEL_ID])


def test_space_yaml_settings_are_valid():
    settings = Settings.load(yaml_path=REPO_ROOT / "space.yaml", env={})
    assert settings.hosted
    assert settings.model_id in settings.allowed_model_ids
