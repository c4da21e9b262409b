"""Sampling parameters and the transformers logits processors that implement them.

The processors are transformers' own, composed in generate's order (repetition penalty, temperature,
top-k, top-p); composing them here, inside a recorder, is what lets a turn keep both the raw
next-token distribution and the one the token was actually drawn from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from inspectors.errors import InvalidParameterError

MAX_TEMPERATURE = 5.0
MAX_REPETITION_PENALTY = 10.0
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 = greedy (argmax); otherwise sample from softmax(logits / T)
    top_k: int = 0  # 0 = off; 1 = greedy-equivalent
    top_p: float = 1.0  # 1 = off; 0 = keep only the top token (greedy-equivalent)
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0  # 1 = off; > 1 discourages tokens already in the sequence
    seed: int | None = None  # None: a fresh seed is drawn and recorded, so any reply can be repeated

    def __post_init__(self) -> None:
        check_number("temperature", self.temperature, 0.0, MAX_TEMPERATURE)
        check_int("top_k", self.top_k, 0, None)
        check_number("top_p", self.top_p, 0.0, 1.0)
        check_int("max_new_tokens", self.max_new_tokens, 1, None)
        check_number("repetition_penalty", self.repetition_penalty, 0.0, MAX_REPETITION_PENALTY, low_open=True)
        if self.seed is not None:
            check_int("seed", self.seed, 0, MAX_SEED)

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def with_seed(self, seed: int) -> SamplingParams:
        return SamplingParams(**{**asdict(self), "seed": seed})

    def to_dict(self) -> dict:
        return asdict(self)


def check_number(name: str, value: object, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameterError(name, f"must be a finite number in {_interval(low, high, low_open)}", value)
    if value < low or value > high or (low_open and value == low):
        raise InvalidParameterError(name, f"must be a number in {_interval(low, high, low_open)}", value)


def check_int(name: str, value: object, low: int, high: int | None) -> None:
    rule = f"must be an integer >= {low}" if high is None else f"must be an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int):
        # Sliders hand over floats such as 40.0: accept whole numbers, refuse 2.5.
        if isinstance(value, float) and value.is_integer():
            raise InvalidParameterError(name, rule + " (pass it as int)", value)
        raise InvalidParameterError(name, rule, value)
    if value < low or (high is not None and value > high):
        raise InvalidParameterError(name, rule, value)


def _interval(low: float, high: float, low_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}]"


def build_processors(params: SamplingParams) -> LogitsProcessorList:
    """transformers' processors for `params`, in the order generate itself applies them."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.do_sample:
        if params.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k != 0:
            processors.append(TopKLogitsWarper(top_k=params.top_k, min_tokens_to_keep=1))
        if params.top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p=params.top_p, min_tokens_to_keep=1))
    return processors
