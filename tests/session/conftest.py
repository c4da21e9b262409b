"""Settings shared by the what-if session tests: the tiny Gemma 3 with a tiny SAE at layer 2."""

from __future__ import annotations

import pytest

from inspectors.settings import Settings
from tests.helpers import save_tiny_sae


@pytest.fixture(scope="module")
def sae_settings(tiny_dirs, tmp_path_factory):
    sae_dir = save_tiny_sae(tmp_path_factory.mktemp("sae") / "sae", d_in=64, layer=2)
    model = str(tiny_dirs["gemma3"])
    return Settings(model_id=model, max_context_tokens=256, max_new_tokens_limit=64, sae=str(sae_dir))
