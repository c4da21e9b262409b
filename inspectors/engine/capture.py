"""The only forward passes of a chat turn: stream the reply, and capture the turn while doing so.

Capture rides on generation itself rather than on a second pass: a logits-processor recorder keeps
each step's top-k (raw and warped) and forward hooks on the probed decoder layers keep their
residual stream, so a captured turn costs little more than a plain `generate` (bench/run.py).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    StoppingCriteriaList,
)

from inspectors.engine.forward import block_output
from inspectors.engine.loading import LoadedModel
from inspectors.engine.pieces import readable_pieces
from inspectors.engine.record import StepDistributions, TurnRecord
from inspectors.engine.recording import StepRecorder, StopOnEvent, TokenQueue, feed_forced
from inspectors.engine.sampling import SamplingParams, build_processors
from inspectors.engine.segments import chat_segments
from inspectors.engine.steering import Steering, steered, step_kl
from inspectors.engine.templating import PromptBuild, build_prompt
from inspectors.errors import GenerationError, InvalidParameterError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerProbe:
    """Reads the residual stream after decoder layer `layer` (`blocks.{layer}.hook_resid_post`) for
    every token of the turn, and returns something compact to keep in the record under `name`.

    `fn` gets a (T, d_model) tensor on the model's device and the (T,) token ids; it must not keep the
    dense tensor (an SAE probe, for instance, keeps only sparse top-k activations).
    """

    name: str
    layer: int
    fn: Callable[[torch.Tensor, np.ndarray], Any]


@dataclass
class TurnProgress:
    """Yielded while a reply streams; the last one carries the finished record."""

    reply_text: str
    n_reply_tokens: int
    record: TurnRecord | None = None


def stream_turn(
    lm: LoadedModel,
    messages: Sequence[Mapping[str, Any]],
    params: SamplingParams | None = None,
    *,
    probes: Sequence[LayerProbe] = (),
    stop_event: threading.Event | None = None,
    steering: Steering | None = None,
    forced: Sequence[int] = (),
) -> Iterator[TurnProgress]:
    """Reply to the last user message of `messages`, yielding the reply as it grows, then the record.
    `steering`: a vector added after one layer for this reply (the record then keeps, per step, the KL
    divergence of the steered next-token distribution from the unsteered one).
    `forced`: the reply's first tokens, given rather than sampled (a branch: an earlier reply's first i
    tokens and a chosen token i); their steps keep the distributions the model had there, and the reply
    goes on from them with `params`, within the same max_new_tokens."""
    params = params or SamplingParams()
    _check_limits(lm, params, probes)
    forced = _check_forced(lm, forced, params)
    prompt = build_prompt(lm.tokenizer, lm.chat_template, messages, lm.context_limit - params.max_new_tokens)
    if params.seed is None:
        params = params.with_seed(secrets.randbelow(2**31))
    stop_event = stop_event or threading.Event()  # set it to stop the reply early
    yield from _generate_and_capture(lm, prompt, params, probes, stop_event, steering, forced)


def run_turn(
    lm: LoadedModel,
    messages: Sequence[Mapping[str, Any]],
    params: SamplingParams | None = None,
    *,
    probes: Sequence[LayerProbe] = (),
    steering: Steering | None = None,
    forced: Sequence[int] = (),
) -> TurnRecord:
    """`stream_turn` without streaming: the finished record."""
    record = None
    for progress in stream_turn(lm, messages, params, probes=probes, steering=steering, forced=forced):
        record = progress.record or record
    assert record is not None  # the last progress always carries the record
    return record


def _check_limits(lm: LoadedModel, params: SamplingParams, probes: Sequence[LayerProbe]) -> None:
    limit = lm.max_new_tokens_limit
    if params.max_new_tokens > limit:
        raise InvalidParameterError(
            "max_new_tokens", f"must be at most {limit} for {lm.model_id}", params.max_new_tokens
        )
    for probe in probes:
        if not 0 <= probe.layer < lm.n_layers:
            raise InvalidParameterError(
                f"probe {probe.name!r} layer", f"must be in [0, {lm.n_layers - 1}] for {lm.model_id}", probe.layer
            )


def _check_forced(lm: LoadedModel, forced: Sequence[int], params: SamplingParams) -> list[int]:
    forced = [int(token) for token in forced]
    if len(forced) > params.max_new_tokens:
        raise InvalidParameterError(
            "forced tokens", f"must be at most max_new_tokens ({params.max_new_tokens})", len(forced)
        )
    vocab = lm.model.get_input_embeddings().num_embeddings
    for token in forced:
        if not 0 <= token < vocab:
            raise InvalidParameterError("token id", f"must be in [0, {vocab - 1}] for {lm.model_id}", token)
    return forced


class _ResidualHooks:
    """Forward hooks collecting each probed layer's output, chunk by chunk as generation feeds tokens."""

    def __init__(self, lm: LoadedModel, layers: set[int]):
        self.chunks: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
        blocks = lm.decoder_layers
        self.handles = [blocks[layer].register_forward_hook(self._hook(layer)) for layer in layers]

    def _hook(self, layer: int) -> Callable:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            self.chunks[layer].append(block_output(output)[0].detach())  # (t, d)

        return hook

    def stacked(self, layer: int) -> torch.Tensor:
        return torch.cat(self.chunks[layer], dim=0)  # (N, d)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _generate_and_capture(
    lm: LoadedModel,
    prompt: PromptBuild,
    params: SamplingParams,
    probes: Sequence[LayerProbe],
    stop_event: threading.Event,
    steering: Steering | None = None,
    forced: Sequence[int] = (),
) -> Iterator[TurnProgress]:
    tokenizer = lm.tokenizer
    n_prompt = len(prompt.ids)
    input_ids = torch.tensor([[*prompt.ids, *forced]], device=lm.device)
    # A forced stop token ends the reply, as does a prefix as long as the reply may be: nothing to generate.
    generates = not forced or (forced[-1] not in lm.stop_token_ids and len(forced) < params.max_new_tokens)
    recorder = StepRecorder(build_processors(params), lm.settings.top_k_stored)
    streamer = TokenQueue()
    # Neutral values so generate adds no processors of its own (nor the model's defaults, e.g. Gemma 3's
    # top_k=64): the recorder applies `params` with transformers' processors. Greedy adds no warpers.
    neutral = {"temperature": 1.0, "top_k": 0, "top_p": 1.0} if params.do_sample else {}
    config = GenerationConfig(
        max_new_tokens=max(1, params.max_new_tokens - len(forced)),  # unused when nothing is generated
        do_sample=params.do_sample,
        repetition_penalty=1.0,
        **neutral,
        eos_token_id=lm.stop_token_ids,
        pad_token_id=lm.pad_token_id,
        return_dict_in_generate=True,
        use_cache=True,
    )
    abandoned = threading.Event()
    result: dict[str, Any] = {}

    def work() -> None:
        # The lock is taken here, in the thread that runs the model, not in the generator: Gradio
        # resumes a generator on whichever worker thread is free. Hooks live only inside the lock,
        # so no other session's forward pass is ever recorded.
        try:
            with lm.lock:
                if forced and generates:  # before the hooks: generate's own prefill gives them the prompt
                    with torch.inference_mode(), steered(lm, steering):
                        feed_forced(lm, recorder, input_ids, n_prompt)
                hooks = _ResidualHooks(lm, {probe.layer for probe in probes})
                try:
                    torch.manual_seed(params.seed)
                    with torch.inference_mode(), steered(lm, steering):
                        if generates:
                            output = lm.model.generate(
                                input_ids=input_ids,
                                attention_mask=torch.ones_like(input_ids),
                                generation_config=config,
                                logits_processor=LogitsProcessorList([recorder]),
                                stopping_criteria=StoppingCriteriaList([StopOnEvent(stop_event, abandoned)]),
                                streamer=streamer,
                            )
                            sequence = output.sequences[0]
                        else:  # the whole reply is forced: this one pass is the turn, hooks included
                            feed_forced(lm, recorder, input_ids, n_prompt)
                            output, sequence = None, input_ids[0]
                            streamer.end()
                        result["probes"] = _run_probes(lm, hooks, probes, output, sequence)
                    result["sequence"] = sequence
                finally:
                    hooks.remove()
                if steering is not None:
                    result["steering_kl"] = step_kl(lm, sequence.cpu().numpy(), n_prompt, steering)
        except BaseException as err:  # re-raised in the consumer thread
            result["error"] = err
            streamer.end()

    started = time.perf_counter()
    first_token_at = None
    worker = threading.Thread(target=work, name="gemma-inspector-generate", daemon=True)
    try:
        worker.start()
        reply_ids = list(forced)
        if forced:
            yield TurnProgress(tokenizer.decode(reply_ids, skip_special_tokens=True), len(reply_ids))
        while (token := streamer.queue.get()) is not None:
            first_token_at = first_token_at or time.perf_counter()
            reply_ids.append(token)
            yield TurnProgress(tokenizer.decode(reply_ids, skip_special_tokens=True), len(reply_ids))
        worker.join()
        if "error" in result:
            err = result["error"]
            raise GenerationError(
                f"The model failed while generating ({type(err).__name__}: {err}). The conversation is unchanged: "
                "retry, or lower max new tokens."
            ) from err
        generated_at = time.perf_counter()
        sequence = result["sequence"]
        n_steps = int(sequence.shape[0]) - n_prompt
        steps = recorder.finish(int(sequence[-1]), n_steps)
    finally:
        abandoned.set()  # ends generation early if the consumer stopped listening
        worker.join()
    token_ids = sequence.cpu().numpy().astype(np.int32)
    reply = token_ids[n_prompt:]
    pieces = _pieces(tokenizer, steps)
    record = TurnRecord(
        model_id=lm.model_id,
        messages=prompt.messages,
        prompt_text=prompt.text,
        token_ids=token_ids,
        tokens=readable_pieces(tokenizer, token_ids.tolist()),
        n_prompt=n_prompt,
        reply_text=tokenizer.decode(reply.tolist(), skip_special_tokens=True).strip(),
        stop_reason=_stop_reason(lm, reply, n_steps, params),
        params=params.to_dict(),
        steps=steps,
        special_ids=sorted(lm.special_ids & (set(token_ids.tolist()) | set(pieces))),
        candidate_pieces=pieces,
        system_handling=prompt.system_handling,
        dropped_messages=prompt.dropped_messages,
        truncated_tokens=prompt.truncated_tokens,
        warnings=list(prompt.warnings),
        probes=result["probes"],
        dtype=lm.dtype_name,
        steering=None if steering is None else steering.summary(),
        steering_kl=None if steering is None else result["steering_kl"][:n_steps],
        forced=len(forced),
        timings={
            "time_to_first_token_s": (first_token_at or generated_at) - started,
            "generate_s": generated_at - started,
            "capture_s": time.perf_counter() - generated_at,
        },
    )
    system = [m["content"] for m in prompt.messages if m["role"] == "system"]
    system_ids = tokenizer(system[0], add_special_tokens=False)["input_ids"] if system else None
    record.segments = chat_segments(record, system_ids)
    yield TurnProgress(record.reply_text, n_steps, record)


def _pieces(tokenizer: Any, steps: StepDistributions) -> dict[int, str]:
    ids = sorted(set(steps.raw_ids.ravel().tolist()) | set(steps.warped_ids.ravel().tolist()))
    return dict(zip(ids, readable_pieces(tokenizer, ids), strict=True))


def _stop_reason(lm: LoadedModel, reply: np.ndarray, n_steps: int, params: SamplingParams) -> str:
    if len(reply) and int(reply[-1]) in lm.stop_token_ids:
        return lm.stop_name(int(reply[-1]))
    if n_steps >= params.max_new_tokens:
        return "max_new_tokens"
    return "stopped"


def _run_probes(
    lm: LoadedModel, hooks: _ResidualHooks, probes: Sequence[LayerProbe], output: Any, sequence: torch.Tensor
) -> dict[str, Any]:
    if not probes:
        return {}
    n_tokens = int(sequence.shape[0])
    if any(hooks.stacked(layer).shape[0] < n_tokens for layer in hooks.chunks):
        # generate never feeds the token it samples last: one cached step gives its residual too.
        with torch.inference_mode():
            lm.model(input_ids=sequence[None, -1:], cache=output.cache, use_cache=True)
    token_ids = sequence.cpu().numpy()
    results = {}
    for probe in probes:
        resid = hooks.stacked(probe.layer)[:n_tokens]  # (T, d); extra deferred-stop steps dropped
        results[probe.name] = probe.fn(resid, token_ids)
    return results
