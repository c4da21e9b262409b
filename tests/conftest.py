from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from the Hub in tests (set before it is imported)

import pytest

from inspectors.engine.loading import load_model
from inspectors.settings import Settings
from tests.helpers import gemma_tokenizer, save_tiny_gemma


@pytest.fixture(scope="session")
def tokenizer():
    return gemma_tokenizer()


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("tiny")
    return {kind: save_tiny_gemma(kind, root / kind, tokenizer) for kind in ("gemma2", "gemma3")}


@pytest.fixture(scope="session", params=["gemma2", "gemma3"])
def tiny_lm(request, tiny_dirs):
    """A tiny random Gemma 2 or Gemma 3, loaded through the real loading code."""
    settings = Settings(model_id=str(tiny_dirs[request.param]), max_context_tokens=256, max_new_tokens_limit=64)
    return load_model(settings=settings)


@pytest.fixture(autouse=True)
def _fresh_sae_sources():
    """open_sae remembers SAEs and failures per process; tests that patch the sources start clean."""
    from inspectors.sae.sources import forget_opened

    forget_opened()
    yield
    forget_opened()
