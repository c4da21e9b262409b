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
from inspectors.engine.steering import Steering
from inspectors.engine.stop import StopSignal
from inspectors.settings import Settings

# GPU seconds reserved per call on ZeroGPU. A visitor's daily quota is a few minutes and is charged by the
# reservation, so each call asks for what its work needs: a 2B model decodes tens of tokens a second on a
# ZeroGPU slice, with the capture; 0.05 s a token leaves a margin, the base covers the prefill.
DECODE_S_PER_TOKEN = 0.05
REPLY_BASE_S, REPLY_MAX_S = 10, 120
VIEW_S = 20  # one forward pass over a finished turn
LAB_BASE_S = {"tokenization": 5, "embeddings": 20, "sae": 60}  # the SAE lab may read several layers' SAEs
LAB_BASE_DEFAULT_S, LAB_MAX_S = 10, 180


@dataclass(frozen=True)
class ModelRef:
    """Names a loaded model: its id and the settings it was loaded with (both picklable)."""

    model_id: str
    settings: Settings

    def load(self, progress: ProgressFn | None = None) -> LoadedModel:
        return load_model(self.model_id, self.settings, progress=progress)


def reply_seconds(model: ModelRef, messages: Any, params: SamplingParams, *args: Any, **kwargs: Any) -> int:
    return int(min(REPLY_MAX_S, REPLY_BASE_S + DECODE_S_PER_TOKEN * params.max_new_tokens))


@gpu(duration=reply_seconds)
def stream_reply(
    model: ModelRef,
    messages: Sequence[Mapping[str, Any]],
    params: SamplingParams,
    stop: StopSignal,
    sae_layer: int | None = None,
    sae_feature: int | None = None,
    steering: Steering | None = None,
    forced: Sequence[int] = (),
) -> Iterator[TurnProgress]:
    """Reply to the last user message, streaming; the last progress carries the record. With an SAE
    layer (an SAE the server already opened for this model), the record keeps its sparse activations.
    `steering` and `forced` (a branch's given first tokens): see capture.stream_turn."""
    lm = model.load()
    probes = []
    if sae_feature is not None:
        from inspectors.sae.activations import sae_probe
        from inspectors.sae.sources import open_sae

        probes.append(sae_probe(open_sae(lm, sae_layer), sae_feature))
    yield from stream_turn(lm, messages, params, probes=probes, stop_event=stop, steering=steering, forced=forced)


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


def lab_seconds(model: ModelRef, lab: str, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> int:
    """The lab's decoding (sequential tokens: sampling's samples are one batch) plus a base for the rest."""
    new_tokens = int(inputs.get("max_new_tokens") or 0)
    sequential = {
        "template_vs_none": 2 * new_tokens,  # with and without the template
        "multiturn": len(inputs.get("user_turns") or []) * new_tokens,
        "sampling": len(inputs.get("settings") or []) * new_tokens,
        "attention_generation": new_tokens,
    }.get(lab, 0)
    base = LAB_BASE_S.get(lab, LAB_BASE_DEFAULT_S)
    return int(min(LAB_MAX_S, base + DECODE_S_PER_TOKEN * sequential))


@gpu(duration=lab_seconds)
def run_lab(model: ModelRef, lab: str, inputs: dict[str, Any], progress: ProgressFn | None = None) -> Any:
    """One lab's result (a dataclass of numbers and strings) on the model, with its preset overridden by `inputs`."""
    from inspectors.labs.registry import run_lab as run

    return run(lab, model.load(), inputs, progress)


@gpu(duration=VIEW_S)
def logit_lens(
    model: ModelRef, token_ids: np.ndarray, positions: np.ndarray, known_output: Any = None, precision: str = "auto"
) -> Any:
    """The LensGrid of the turn at `positions` (every layer, top-10 and the next token's probability);
    `known_output`: the model's output already recorded there (the last layer)."""
    from inspectors.engine.lens import logit_lens as lens

    return lens(model.load(), token_ids, positions, known_output=known_output, precision=precision)


def attribution_seconds(model: ModelRef, token_ids: Any, position: int, method: str, *args: Any, **kwargs: Any) -> int:
    steps = kwargs.get("steps") or (args[1] if len(args) > 1 else 32)
    return VIEW_S + (int(steps) // 2 if method == "integrated_gradients" else 10)


@gpu(duration=attribution_seconds)
def attribute(
    model: ModelRef, token_ids: np.ndarray, position: int, method: str, segment_of_token: np.ndarray, steps: int = 32
) -> Any:
    """An Attribution of the token at `position` to every earlier token (engine/attribution.py)."""
    from inspectors.engine.attribution import attribute as run

    return run(model.load(), token_ids, position, method, segment_of_token=segment_of_token, steps=steps)


@gpu(duration=VIEW_S)
def segment_attention(model: ModelRef, token_ids: np.ndarray, segment_of_token: np.ndarray, queries: np.ndarray):
    """(layers, heads, queries, segments) attention shares, from one eager pass."""
    from inspectors.engine.attention import segment_attention as shares

    return shares(model.load(), token_ids, segment_of_token, queries)


@gpu(duration=VIEW_S)
def feature_steering_vector(
    model: ModelRef, sae_layer: int | None, features: Sequence[int], strength: float, scale: str
) -> Steering:
    """A Steering along SAE features of the SAE at `sae_layer` (engine/steering.py states the scales)."""
    from inspectors.engine.steering import MAX_ACTIVATION, feature_steering, reference_norm
    from inspectors.sae.sources import open_sae

    lm = model.load()
    lsae = open_sae(lm, sae_layer)
    rows, layer = lsae.decoder_rows(features), lsae.layer
    if scale == MAX_ACTIVATION:
        peaks = lsae.max_activations(features)
        return feature_steering(rows, features, strength, scale, layer=layer, max_activations=peaks)
    return feature_steering(rows, features, strength, scale, layer=layer, residual_norm=reference_norm(lm, layer))


@gpu(duration=VIEW_S)
def mean_difference_vector(
    model: ModelRef, layer: int, prompts_a: Sequence[str], prompts_b: Sequence[str], strength: float
) -> Steering:
    from inspectors.engine.steering import mean_difference_steering

    return mean_difference_steering(model.load(), layer, prompts_a, prompts_b, strength)


@gpu(duration=VIEW_S)
def compare_prompts(
    model: ModelRef, ids_a: np.ndarray, ids_b: np.ndarray, sae_layer: int | None = None, with_sae: bool = True
) -> Any:
    """A Comparison of two prompts (engine/compare.py): both KLs of the first reply token's distribution, the
    top-10s, the per-layer cosine of the last prompt token's residual, and with `with_sae` the top features of
    the model's SAE at `sae_layer` (None: its default layer); an SAE that cannot be opened is a note, not an error."""
    from inspectors.engine.compare import compare_prompts as compare
    from inspectors.sae.loading import SAELoadError
    from inspectors.sae.sources import open_sae

    lm = model.load()
    lsae, note = None, ""
    if with_sae:
        try:
            lsae = open_sae(lm, sae_layer)
        except SAELoadError as err:
            note = str(err)
    return compare(lm, ids_a, ids_b, lsae, sae_note=note)


def plain_reply_seconds(model: ModelRef, text: Any, max_new_tokens: int, *args: Any, **kwargs: Any) -> int:
    return int(min(REPLY_MAX_S, REPLY_BASE_S + DECODE_S_PER_TOKEN * int(max_new_tokens)))


@gpu(duration=plain_reply_seconds)
def plain_reply(model: ModelRef, text: str, max_new_tokens: int) -> Any:
    """A PlainReply: greedy decoding from `text` tokenized as plain text (its `<bos>`, no chat template)."""
    from inspectors.engine.compare import plain_reply as reply

    return reply(model.load(), text, max_new_tokens)
