"""Gemma Inspector: chat with Gemma beside the current turn's prompt, tokens, next-token probabilities,
attention and SAE features.

    python app.py      # the embedded Gemma 3 270M, offline; GEMMA_INSPECTOR_MODEL picks another
"""

from __future__ import annotations

import logging

from inspectors.ui.app import build_app
from inspectors.ui.common import launch

demo = build_app()  # module level, as Hugging Face Spaces expect; no model is loaded while building

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch(demo)
