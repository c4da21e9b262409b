"""Greedy generation from given prompt ids, and the input checks the generating labs share.

The labs feed exact token ids (a templated prompt, raw text with one `<bos>`, or the course's
double-`<bos>` variant), so this takes ids rather than messages, and returns ids: answers are cut by
id at the stop token, never by splitting decoded strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from inspectors.engine.loading import LoadedModel
from inspectors.errors import InvalidParameterError

StepFn = Callable[[int], None]  # called with the number of tokens generated so far


def check_text(name: str, value: object) -> str:
    """A non-empty string input, returned as is."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(name, "must be non-empty text", value)
    return value


def check_max_new_tokens(lm: LoadedModel, value: object, name: str = "max_new_tokens") -> int:
    """A positive integer that fits this model's limits (the settings' cap and the context window)."""
    limit = lm.max_new_tokens_limit
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise InvalidParameterError(name, f"must be an integer in [1, {limit}] for {lm.model_id}", value)
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameterError(name, "must be true or false", value)
    return value


def check_fits(lm: LoadedModel, n_prompt: int, max_new_tokens: int) -> None:
    """Prompt plus reply must fit the context limit: raw-text prompts are not trimmed like chats."""
    if n_prompt + max_new_tokens > lm.context_limit:
        raise InvalidParameterError(
            "max_new_tokens",
            f"plus the prompt's {n_prompt} tokens must fit the context limit of {lm.context_limit} tokens; "
            "lower it or shorten the prompt",
            max_new_tokens,
        )


class _OnStep(StoppingCriteria):
    """Never stops generation; reports each step to a progress callback."""

    def __init__(self, n_prompt: int, on_step: StepFn):
        self.n_prompt = n_prompt
        self.on_step = on_step

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.on_step(int(input_ids.shape[1]) - self.n_prompt)
        return torch.zeros((input_ids.shape[0],), dtype=torch.bool, device=input_ids.device)


class _FirstLogits(LogitsProcessor):
    """Keeps the first step's raw logits (the prompt's last position), changes nothing: greedy decoding
    adds no processors of its own, so what it sees first are the model's raw logits."""

    def __init__(self) -> None:
        self.logits: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.logits is None:
            self.logits = scores[0].detach().clone()
        return scores


def generation_config(lm: LoadedModel, max_new_tokens: int) -> GenerationConfig:
    """Plain greedy decoding. Values left unset would be filled from the model's own generation config
    (e.g. a repetition penalty), so every processor that greedy decoding would apply is set to off."""
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
        suppress_tokens=[],
        begin_suppress_tokens=[],
        eos_token_id=lm.stop_token_ids,
        pad_token_id=lm.pad_token_id,
        use_cache=True,
    )


def greedy_generate(
    lm: LoadedModel, prompt_ids: Sequence[int], max_new_tokens: int, on_step: StepFn | None = None
) -> list[int]:
    """The ids greedy decoding appends to `prompt_ids`: at most `max_new_tokens`, ending with the stop
    token (`lm.stop_token_ids`) when the model emitted one. The prompt is not included."""
    return greedy_generate_with_first_logits(lm, prompt_ids, max_new_tokens, on_step)[0]


def greedy_generate_with_first_logits(
    lm: LoadedModel, prompt_ids: Sequence[int], max_new_tokens: int, on_step: StepFn | None = None
) -> tuple[list[int], torch.Tensor]:
    """`greedy_generate`'s ids, and the (V,) float32 raw logits of the first step: the next-token
    distribution after the prompt, from the same prefill rather than a second forward pass."""
    if not prompt_ids:
        raise InvalidParameterError("prompt_ids", "must hold at least one token", list(prompt_ids))
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)  # (1, T)
    criteria = StoppingCriteriaList([_OnStep(len(prompt_ids), on_step)] if on_step else [])
    first = _FirstLogits()
    with lm.lock, torch.inference_mode():
        output = lm.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=generation_config(lm, max_new_tokens),
            logits_processor=LogitsProcessorList([first]),
            stopping_criteria=criteria,
        )
    return [int(i) for i in output[0, len(prompt_ids) :].tolist()], first.logits


def split_at_stop(lm: LoadedModel, new_ids: Sequence[int]) -> tuple[list[int], int | None]:
    """(the ids before the first stop token, that stop token or None when generation ran out)."""
    stops = set(lm.stop_token_ids)
    for i, token in enumerate(new_ids):
        if token in stops:
            return list(new_ids[:i]), int(token)
    return list(new_ids), None


def stop_reason(lm: LoadedModel, stop_token: int | None) -> str:
    """'end_of_turn', 'eos' or 'max_new_tokens', as a TurnRecord names it."""
    return "max_new_tokens" if stop_token is None else lm.stop_name(stop_token)


def leading_bos(tokenizer: Any, ids: Sequence[int]) -> int:
    """How many `<bos>` tokens open `ids`: one is what the model was trained with; the course's variants
    that tokenize a templated string with special tokens on have two."""
    bos, n = tokenizer.bos_token_id, 0
    while bos is not None and n < len(ids) and ids[n] == bos:
        n += 1
    return n


def next_token_logits(lm: LoadedModel, prompt_ids: Sequence[int]) -> torch.Tensor:
    """(V,) float32 raw logits at the prompt's last position: one forward pass, no generation."""
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)
    with lm.lock, torch.inference_mode():
        return lm.model(input_ids=input_ids, use_cache=False, logits_to_keep=1).logits[0, -1].float()
