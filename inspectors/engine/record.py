"""TurnRecord: everything the inspection views need from one chat turn, kept compact (numpy only).

It lives in per-session state and Gradio deep-copies that state on every event, so nothing here
grows with vocabulary size or with layers x heads x T^2: attention is recomputed one layer at a
time on demand (see inspectors.engine.attention) and SAE activations are stored sparsely.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StepDistributions:
    """Top-k next-token candidates of each generated step. S = steps (reply tokens), k = candidates.

    `raw` is softmax(logits); `warped` is the distribution the token was drawn from, after
    repetition penalty, temperature, top-k and top-p (equal to `raw` for plain greedy decoding).
    """

    raw_ids: np.ndarray  # (S, k) int32, most probable first
    raw_probs: np.ndarray  # (S, k) float32
    warped_ids: np.ndarray  # (S, k) int32
    warped_probs: np.ndarray  # (S, k) float32
    chosen_raw_prob: np.ndarray  # (S,) float32: probability of the token that was generated
    chosen_warped_prob: np.ndarray  # (S,) float32

    @property
    def n_steps(self) -> int:
        return int(self.raw_ids.shape[0])

    def truncated(self, n_steps: int) -> StepDistributions:
        return StepDistributions(*(getattr(self, name)[:n_steps] for name in StepDistributions.__dataclass_fields__))


@dataclass
class TurnRecord:
    """One chat turn. `token_ids` (prompt + reply) are the truth; `tokens` holds one string per id."""

    model_id: str
    messages: list[dict[str, str]]  # the conversation as rendered (after system folding and trimming)
    prompt_text: str  # the exact templated string that was tokenized
    token_ids: np.ndarray  # (T,) int32: prompt then reply
    tokens: list[str]  # (T,) tokenizer pieces, e.g. '▁the', '<start_of_turn>'
    n_prompt: int  # token_ids[:n_prompt] is the prompt, token_ids[n_prompt:] the reply
    reply_text: str  # decoded reply without special tokens
    stop_reason: str  # 'end_of_turn' | 'eos' | 'max_new_tokens' | 'stopped'
    params: dict[str, Any]  # SamplingParams as a dict, with the seed that was actually used
    steps: StepDistributions
    special_ids: list[int]  # the special token ids (template markers, bos, eos) among this turn's tokens and candidates
    candidate_pieces: dict[int, str]  # tokenizer piece of every id in `steps`, so views need no tokenizer
    system_handling: str | None = None
    dropped_messages: int = 0
    truncated_tokens: int = 0
    warnings: list[str] = field(default_factory=list)
    # Results of layer probes run during capture (e.g. sparse SAE activations), keyed by probe name.
    probes: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    dtype: str = ""  # the precision the model computed this turn in, e.g. 'float32' (probabilities depend on it)
    segments: Any = None  # engine.segments.Segments: each token's chat segment (system prompt, user message 2, ...)
    steering: dict[str, Any] | None = None  # what the reply was steered with: layer, description, norm
    steering_kl: np.ndarray | None = None  # (S,) KL(steered || unsteered) of each step's distribution, nats
    forced: int = 0  # the reply's first `forced` tokens were given, not sampled (a branch)
    branch: dict[str, Any] | None = None  # where a branch came from: turn, step, token (set by the session)

    @property
    def n_tokens(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def reply_ids(self) -> np.ndarray:
        return self.token_ids[self.n_prompt :]

    @property
    def prompt_ids(self) -> np.ndarray:
        return self.token_ids[: self.n_prompt]

    def token_labels(self) -> list[str]:
        """Unambiguous axis labels: position and piece, e.g. '12:▁the', so repeated tokens stay distinct."""
        return [f"{i}:{piece}" for i, piece in enumerate(self.tokens)]

    def serialized_size(self) -> int:
        """Bytes of this record pickled, as session state is stored and copied."""
        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
