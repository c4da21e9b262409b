"""Every model call the app makes, as a function of plain data that may run in a GPU worker (see gpu.py).

Each takes what names the work (a `ModelRef`, token ids or messages, parameters, an SAE layer and
feature) and returns plain data (a `TurnProgress`/`TurnRecord`, numpy arrays, a lab's result). The
shared model and SAE are looked up inside, from this process's registry: on ZeroGPU that is the
worker's copy of what the server loaded at start-up. The session, in the server process, appends what
comes back to the conversation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspectors.engine.attention import layer_attention
from inspectors.engine.capture import TurnProgress, stream_turn
from inspectors.engine.gpu import gpu
from inspectors.engine.loading import LoadedModel, ProgressFn, load_model
from inspectors.engine.record import TurnRecord
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.stop import StopSignal
from inspectors.settings import Settings

# GPU seconds reserved per call on ZeroGPU (its quota is counted in reserved seconds, so keep them tight).
# Decoding runs at tens of tokens a second on a ZeroGPU slice; the margin covers the prefill and capture.
REPLY_BASE_S, REPLY_PER_TOKEN_S, REPLY_MAX_S = 15, 0.1, 120
VIEW_S = 20
LAB_S = {"tokenization": 10, "multiturn": 60, "template_vs_none": 60, "sampling": 120, "embeddings": 40}
LAB_DEFAULT_S = 60


@dataclass(frozen=True)
class ModelRef:
    """Names a loaded model: its id and the settings it was loaded with (both picklable)."""

    model_id: str
    settings: Settings

    def load(self, progress: ProgressFn | None = None) -> LoadedModel:
        return load_model(self.model_id, self.settings, progress=progress)


def reply_seconds(model: ModelRef, messages: Any, params: SamplingParams, *args: Any, **kwargs: Any) -> int:
    return int(min(REPLY_MAX_S, REPLY_BASE_S + REPLY_PER_TOKEN_S * params.max_new_tokens))


@gpu(duration=reply_seconds)
def stream_reply(
    model: ModelRef,
    messages: Sequence[Mapping[str, Any]],
    params: SamplingParams,
    stop: StopSignal,
    sae_layer: int | None = None,
    sae_feature: int | None = None,
) -> Iterator[TurnProgress]:
    """Reply to the last user message, streaming; the last progress carries the record. With an SAE
    layer (an SAE the server already opened for this model), the record keeps its sparse activations."""
    lm = model.load()
    probes = []
    if sae_feature is not None:
        from inspectors.sae.activations import sae_probe
        from inspectors.sae.sources import open_sae

        probes.append(sae_probe(open_sae(lm, sae_layer), sae_feature))
    yield from stream_turn(lm, messages, params, probes=probes, stop_event=stop)


@gpu(duration=VIEW_S)
def attention(model: ModelRef, token_ids: np.ndarray, layer: int) -> np.ndarray:
    """(heads, T, T) float16 attention probabilities of `layer` over a finished turn."""
    return layer_attention(model.load(), token_ids, layer, cached=False).astype(np.float16)


@gpu(duration=VIEW_S)
def sae_activations(model: ModelRef, sae_layer: int | None, record: TurnRecord, feature: int) -> Any:
    """The turn's SparseActivations under the model's SAE at `sae_layer`, with `feature`'s whole column."""
    from inspectors.sae.activations import turn_activations
    from inspectors.sae.sources import open_sae

    lm = model.load()
    return turn_activations(lm, open_sae(lm, sae_layer), record, feature)


def lab_seconds(model: ModelRef, lab: str, *args: Any, **kwargs: Any) -> int:
    return LAB_S.get(lab, LAB_DEFAULT_S)


@gpu(duration=lab_seconds)
def run_lab(model: ModelRef, lab: str, inputs: dict[str, Any], progress: ProgressFn | None = None) -> Any:
    """One lab's result (a dataclass of numbers and strings) on the model, with its preset overridden by `inputs`."""
    from inspectors.labs.registry import run_lab as run

    return run(lab, model.load(), inputs, progress)
