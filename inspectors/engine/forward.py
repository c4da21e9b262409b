"""One forward pass over a finished turn, stopped as soon as the module of interest has run."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from inspectors.engine.loading import LoadedModel


class _StopForward(Exception):
    """Raised from the hook: the layers above the one asked for are not needed."""


def block_output(output: Any) -> torch.Tensor:
    """A decoder block's hidden states, (batch, T, d): transformers 5 returns the tensor, older
    versions a tuple whose first element it is."""
    return output[0] if isinstance(output, tuple) else output


def _input_ids(lm: LoadedModel, token_ids: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(token_ids)[None, :], dtype=torch.long, device=lm.device)  # (1, T)


def module_output(lm: LoadedModel, token_ids: np.ndarray, module: torch.nn.Module, *, eager: bool = False) -> Any:
    """What `module` returns when the model reads `token_ids` (no cache, batch of one).

    eager=True switches to eager attention for the pass (sdpa computes no attention probabilities)
    and restores the model's implementation afterwards; the model lock keeps other sessions out.
    """
    captured: dict[str, Any] = {}

    def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
        captured["output"] = output
        raise _StopForward

    input_ids = _input_ids(lm, token_ids)
    with lm.lock:
        previous = lm.model.config._attn_implementation
        handle = module.register_forward_hook(hook)
        try:
            if eager:
                lm.model.set_attn_implementation("eager")
            with torch.inference_mode():
                lm.model(input_ids=input_ids, use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
            if eager:
                lm.model.set_attn_implementation(previous)
    if "output" not in captured:
        raise RuntimeError(f"{type(module).__name__} did not run in the forward pass of {lm.model_id}")
    return captured["output"]


def layer_outputs(lm: LoadedModel, token_ids: np.ndarray, layers: list[int]) -> dict[int, torch.Tensor]:
    """(T, d_model) residual stream after each decoder layer in `layers` (blocks.L.hook_resid_post),
    from one forward pass stopped after the highest of them."""
    batched = batch_layer_outputs(lm, _input_ids(lm, token_ids), layers)
    return {layer: acts[0] for layer, acts in batched.items()}


def batch_layer_outputs(lm: LoadedModel, input_ids: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
    """(batch, T, d_model) outputs of the decoder layers in `layers` for equal-length rows of `input_ids`,
    one forward pass stopped after the highest of them."""
    if not layers:
        return {}
    captured: dict[int, torch.Tensor] = {}
    last = max(layers)

    def hook_for(layer: int):
        def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
            captured[layer] = block_output(output)
            if layer == last:
                raise _StopForward

        return hook

    with lm.lock:
        handles = [lm.decoder_layers[layer].register_forward_hook(hook_for(layer)) for layer in set(layers)]
        try:
            with torch.inference_mode():
                lm.model(input_ids=input_ids, use_cache=False)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
    return {layer: captured[layer] for layer in layers}


def hidden_states(lm: LoadedModel, token_ids: np.ndarray) -> tuple[torch.Tensor, ...]:
    """transformers' `hidden_states` (embeddings, then each layer; the last after the final norm), (T, d) each."""
    input_ids = _input_ids(lm, token_ids)
    with lm.lock, torch.inference_mode():
        out = lm.model(input_ids=input_ids, use_cache=False, output_hidden_states=True)
    return tuple(h[0] for h in out.hidden_states)


def next_token_logits(lm: LoadedModel, input_ids: torch.Tensor, start: int, stop: int, chunk: int = 32):
    """Yield (c, V) float32 logits of the predictions made at positions start..stop-1 of `input_ids` (1, T),
    a chunk of positions at a time: the model's own head (and soft-cap) over its decoder's last hidden state,
    so no (T, V) tensor is ever built (Gemma's vocabulary is 262k). The caller holds the model lock and any
    hooks that should see the pass (it runs every decoder layer once)."""
    hidden = lm.model.get_decoder()(input_ids=input_ids, use_cache=False).last_hidden_state[0]  # (T, d), normed
    parts = lm.parts
    for first in range(start, stop, chunk):
        logits = parts.unembedding(hidden[first : min(first + chunk, stop)]).float()
        if parts.final_logit_softcap:
            logits = torch.tanh(logits / parts.final_logit_softcap) * parts.final_logit_softcap
        yield logits
