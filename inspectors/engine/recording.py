"""What `generate` is wrapped with to capture a turn while streaming it: the logits processor that records each
step's top-k (raw and after the sampling processors), the same record fed from one pass for forced tokens
(a branch), the stopping criterion behind Stop, and the streamer that hands tokens to the consumer."""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from inspectors.engine.forward import next_token_logits
from inspectors.engine.loading import LoadedModel
from inspectors.engine.record import StepDistributions


def feed_forced(lm: LoadedModel, recorder: StepRecorder, input_ids: torch.Tensor, n_prompt: int) -> None:
    """Record the steps of the forced tokens (the model's distribution at each, as if it had chosen them)
    from one pass over the prompt and the forced tokens."""
    n_tokens = input_ids.shape[1]
    position = n_prompt - 1
    for logits in next_token_logits(lm, input_ids, n_prompt - 1, n_tokens - 1):
        for row in logits:
            recorder(input_ids[:, : position + 1], row[None, :])
            position += 1


class StepRecorder(LogitsProcessor):
    """Applies the sampling processors and keeps the top-k of the distributions before and after them.

    A step's chosen token is only known at the next call (or at the end), so the full probability
    vectors of the latest step are held until then; everything kept is O(k) per step.
    """

    def __init__(self, processors: LogitsProcessorList, k: int):
        self.processors = processors
        self.k = k
        self.raw_ids: list[np.ndarray] = []
        self.raw_probs: list[np.ndarray] = []
        self.warped_ids: list[np.ndarray] = []
        self.warped_probs: list[np.ndarray] = []
        self.chosen_raw: list[float] = []
        self.chosen_warped: list[float] = []
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._settle(int(input_ids[0, -1]))
        raw = torch.softmax(scores[0].float(), dim=-1)  # (V,)
        warped_scores = self.processors(input_ids, scores)
        warped = torch.softmax(warped_scores[0].float(), dim=-1)  # (V,); masked tokens get 0
        for dist, ids_out, probs_out in (
            (raw, self.raw_ids, self.raw_probs),
            (warped, self.warped_ids, self.warped_probs),
        ):
            top = torch.topk(dist, self.k)
            ids_out.append(top.indices.cpu().numpy().astype(np.int32))
            probs_out.append(top.values.cpu().numpy().astype(np.float32))
        self._pending = (raw, warped)
        return warped_scores

    def _settle(self, chosen: int) -> None:
        if self._pending is not None:
            raw, warped = self._pending
            self.chosen_raw.append(float(raw[chosen]))
            self.chosen_warped.append(float(warped[chosen]))
            self._pending = None

    def finish(self, last_token: int, n_steps: int) -> StepDistributions:
        self._settle(last_token)
        return StepDistributions(
            raw_ids=_stack(self.raw_ids, self.k, np.int32),
            raw_probs=_stack(self.raw_probs, self.k, np.float32),
            warped_ids=_stack(self.warped_ids, self.k, np.int32),
            warped_probs=_stack(self.warped_probs, self.k, np.float32),
            chosen_raw_prob=np.asarray(self.chosen_raw, dtype=np.float32),
            chosen_warped_prob=np.asarray(self.chosen_warped, dtype=np.float32),
        ).truncated(n_steps)  # generate may run one step past the stop and then undo it


def _stack(rows: list[np.ndarray], k: int, dtype: type) -> np.ndarray:
    return np.stack(rows).astype(dtype) if rows else np.zeros((0, k), dtype=dtype)


class StopOnEvent(StoppingCriteria):
    """Stops when the user asks (their event) or when the consumer of the stream went away."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        stop = any(event.is_set() for event in self.events)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class TokenQueue(BaseStreamer):
    """Hands each new token id to the consumer thread; generate's first `put` is the prompt."""

    def __init__(self):
        self.queue: queue.Queue[int | None] = queue.Queue()
        self._prompt_skipped = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_skipped:
            self._prompt_skipped = True
            return
        for token in value.flatten().tolist():
            self.queue.put(int(token))

    def end(self) -> None:
        self.queue.put(None)
