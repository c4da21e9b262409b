"""Gemma Inspector: chat with Gemma and capture what happens inside each turn.

from inspectors import load_model, Conversation, SamplingParams, layer_attention
lm = load_model()                       # the embedded Gemma 3 270M, offline
chat = Conversation()
record = chat.send(lm, "Name a colour of the rainbow.", SamplingParams(temperature=0))
record.steps.raw_probs[0]               # top-k probabilities of the first reply token
layer_attention(lm, record, layer=5)    # (heads, T, T), computed once and cached
"""

from inspectors.attention import layer_attention
from inspectors.capture import LayerProbe, TurnProgress, run_turn, stream_turn
from inspectors.conversation import Conversation
from inspectors.errors import (
    ConversationError,
    GenerationError,
    InspectorError,
    InvalidParameterError,
    ModelLoadError,
)
from inspectors.loading import LoadedModel, load_model
from inspectors.record import StepDistributions, TurnRecord
from inspectors.sampling import SamplingParams
from inspectors.settings import EMBEDDED_MODEL_ID, HOSTED_DEFAULT_MODEL_ID, Settings
from inspectors.templating import PromptBuild, build_prompt

__all__ = [
    "EMBEDDED_MODEL_ID",
    "HOSTED_DEFAULT_MODEL_ID",
    "Conversation",
    "ConversationError",
    "GenerationError",
    "InspectorError",
    "InvalidParameterError",
    "LayerProbe",
    "LoadedModel",
    "ModelLoadError",
    "PromptBuild",
    "SamplingParams",
    "Settings",
    "StepDistributions",
    "TurnProgress",
    "TurnRecord",
    "build_prompt",
    "layer_attention",
    "load_model",
    "run_turn",
    "stream_turn",
]
