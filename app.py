"""Gemma Inspector: chat with Gemma beside the current turn's prompt, tokens, next-token probabilities,
attention and SAE features.

    python app.py      # the embedded Gemma 3 270M, offline; GEMMA_INSPECTOR_MODEL picks another
"""

from __future__ import annotations

import contextlib
import logging

with contextlib.suppress(ImportError):  # on a ZeroGPU Space, `spaces` must come before anything initialises CUDA
    import spaces  # noqa: F401

from inspectors.engine.gpu import on_zero_gpu
from inspectors.session import SessionStore, Shared
from inspectors.settings import Settings
from inspectors.ui.app import build_app
from inspectors.ui.common import launch

logging.basicConfig(level=logging.INFO)
settings = Settings.load()
shared = Shared(settings)
# The configured model (or, if it cannot be loaded, the embedded one, with a banner that says why) loads
# before anyone chats. On ZeroGPU every model a visitor may pick, and its SAE, loads here, on the main
# thread, before the GPU workers fork from this process; elsewhere in the background, so the page is
# served at once.
zero = on_zero_gpu()
shared.start(background=not zero, preload=settings.allowed_model_ids if zero else [])
demo = build_app(settings, SessionStore(shared))  # module level, as Hugging Face Spaces expect

if __name__ == "__main__":
    launch(demo)
