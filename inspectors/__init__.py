"""Gemma Inspector: chat with Gemma and capture what happens inside each turn.

from inspectors import load_model, Conversation, SamplingParams, layer_attention
lm = load_model()                       # the embedded Gemma 3 270M, offline
chat = Conversation()
record = chat.send(lm, "Name a colour of the rainbow.", SamplingParams(temperature=0))
record.steps.raw_probs[0]               # top-k probabilities of the first reply token
layer_attention(lm, record, layer=5)    # (heads, T, T), computed once and cached

The names below are imported on first use (PEP 562), so importing a torch-free part of the package
(`inspectors.views`, `inspectors.engine.record`) never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "layer_attention": "inspectors.engine.attention",
    "LayerProbe": "inspectors.engine.capture",
    "TurnProgress": "inspectors.engine.capture",
    "run_turn": "inspectors.engine.capture",
    "stream_turn": "inspectors.engine.capture",
    "Conversation": "inspectors.engine.conversation",
    "ConversationError": "inspectors.errors",
    "GenerationError": "inspectors.errors",
    "InspectorError": "inspectors.errors",
    "InvalidParameterError": "inspectors.errors",
    "ModelLoadError": "inspectors.errors",
    "LoadedModel": "inspectors.engine.loading",
    "load_model": "inspectors.engine.loading",
    "StepDistributions": "inspectors.engine.record",
    "TurnRecord": "inspectors.engine.record",
    "SamplingParams": "inspectors.engine.sampling",
    "EMBEDDED_MODEL_ID": "inspectors.settings",
    "HOSTED_DEFAULT_MODEL_ID": "inspectors.settings",
    "Settings": "inspectors.settings",
    "PromptBuild": "inspectors.engine.templating",
    "build_prompt": "inspectors.engine.templating",
    "Session": "inspectors.session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inspectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
