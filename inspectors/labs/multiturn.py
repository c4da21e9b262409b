"""Lab 2 (HW3 section 2): a multi-turn conversation, re-templated from the whole history every round.

Each round: the user turn is appended, the full history is templated (`build_prompt`), the greedy reply
is generated, cut at the stop token by id, and appended as the model's turn. The next-token distribution
at the prompt's last position (softmax of the raw logits, top-k kept) is the reply's first step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.pieces import readable_pieces
from inspectors.engine.templating import build_prompt
from inspectors.errors import InvalidParameterError
from inspectors.labs.generation import (
    check_bool,
    check_max_new_tokens,
    check_text,
    greedy_generate_with_first_logits,
    leading_bos,
    next_token_logits,
    split_at_stop,
    stop_reason,
)
from inspectors.labs.labels import MULTITURN_MAX_ROUNDS

MAX_TOP_K = 100
MAX_ROUNDS = MULTITURN_MAX_ROUNDS


@dataclass
class Round:
    index: int  # 1-based, as the course numbers them
    user: str
    prompt_text: str  # the full templated history the model read this round
    n_prompt_tokens: int
    top_ids: list[int]  # most probable first token of the reply first
    top_tokens: list[str]
    top_probs: list[float]  # softmax of the last position's logits
    reply_ids: list[int]  # greedy, before the stop token
    reply_text: str
    stop_reason: str
    n_bos: int = 1  # <bos> tokens opening the prompt: 2 in the course variant on Gemma
    warnings: list[str] = field(default_factory=list)  # from templating (dropped history, ...)


@dataclass
class BosComparison:
    """Round 1's most probable first token under one `<bos>` and under the course's two."""

    token: str  # the most probable first token with one <bos>
    token_id: int
    p_one_bos: float
    p_two_bos: float
    top_one_bos: str  # the most probable first token of each
    top_two_bos: str

    @property
    def delta(self) -> float:
        return self.p_two_bos - self.p_one_bos


@dataclass
class MultiturnResult:
    model_id: str
    user_turns: list[str]
    max_new_tokens: int
    top_k: int
    rounds: list[Round]
    course_variant: bool = False
    bos_comparison: BosComparison | None = None  # None when the tokenizer adds no <bos> of its own

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.bos_comparison is not None:
            data["bos_comparison"]["delta"] = self.bos_comparison.delta
        return data


def top_of(logits: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
    """The k most probable next tokens of (V,) raw logits and their probabilities (softmax)."""
    top = torch.topk(torch.softmax(logits.float(), dim=-1), k)
    return [int(i) for i in top.indices.tolist()], [float(p) for p in top.values.tolist()]


def _check_turns(user_turns: object) -> list[str]:
    if not isinstance(user_turns, list) or not 1 <= len(user_turns) <= MAX_ROUNDS:
        raise InvalidParameterError(
            "user_turns", f"must be a list of 1 to {MAX_ROUNDS} messages, one per round", user_turns
        )
    for i, turn in enumerate(user_turns, start=1):
        check_text(f"user_turns[{i}]", turn)
    return user_turns


def run(
    lm: LoadedModel,
    *,
    user_turns: list[str],
    max_new_tokens: int = 200,
    top_k: int = 10,
    course_variant: bool = False,
    progress: ProgressFn | None = None,
) -> MultiturnResult:
    """One round per user turn: template the history, top-`top_k` first tokens, greedy reply appended.

    `course_variant`: tokenize the templated history with special tokens on, as the course's code did, so
    each round's input opens with two `<bos>` on Gemma (the course's published answers were computed so).
    Either way round 1's first-token distribution is also read under the other choice (one forward pass),
    and `bos_comparison` says how much the most probable token's probability moves."""
    _check_turns(user_turns)
    check_bool("course_variant", course_variant)
    check_max_new_tokens(lm, max_new_tokens)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidParameterError("top_k", f"must be an integer in [1, {MAX_TOP_K}]", top_k)
    report = progress or (lambda fraction, message: None)
    tokenizer = lm.tokenizer
    history: list[dict[str, str]] = []
    rounds = []
    n_rounds = len(user_turns)
    for r, user in enumerate(user_turns):
        history.append({"role": "user", "content": user})
        prompt = build_prompt(tokenizer, lm.chat_template, history, lm.context_limit - max_new_tokens)
        report(r / n_rounds, f"Round {r + 1}/{n_rounds}: generating")

        def on_step(n: int, r: int = r) -> None:
            report((r + n / max_new_tokens) / n_rounds, f"Round {r + 1}/{n_rounds}: {n}/{max_new_tokens} tokens")

        ids = list(tokenizer(prompt.text, add_special_tokens=True)["input_ids"]) if course_variant else prompt.ids
        new_ids, first_logits = greedy_generate_with_first_logits(lm, ids, max_new_tokens, on_step)
        if r == 0:
            comparison = _bos_comparison(lm, prompt.text, prompt.ids, first_logits, course_variant)
        top_ids, top_probs = top_of(first_logits, top_k)
        reply_ids, stop = split_at_stop(lm, new_ids)
        reply_text = tokenizer.decode(reply_ids, skip_special_tokens=True).strip()
        history.append({"role": "assistant", "content": reply_text})
        rounds.append(
            Round(
                index=r + 1,
                user=user,
                prompt_text=prompt.text,
                n_prompt_tokens=len(ids),
                top_ids=top_ids,
                top_tokens=readable_pieces(tokenizer, top_ids),
                top_probs=top_probs,
                reply_ids=reply_ids,
                reply_text=reply_text,
                stop_reason=stop_reason(lm, stop),
                n_bos=leading_bos(tokenizer, ids),
                warnings=list(prompt.warnings),
            )
        )
    report(1.0, "Done")
    return MultiturnResult(
        model_id=lm.model_id,
        user_turns=list(user_turns),
        max_new_tokens=max_new_tokens,
        top_k=top_k,
        rounds=rounds,
        course_variant=course_variant,
        bos_comparison=comparison,
    )


def _bos_comparison(
    lm: LoadedModel, text: str, one_bos_ids: list[int], logits: torch.Tensor, course_variant: bool
) -> BosComparison | None:
    """Round 1 under the other tokenization than the one the lab ran with (its logits are `logits`)."""
    two_bos_ids = list(lm.tokenizer(text, add_special_tokens=True)["input_ids"])
    if two_bos_ids == one_bos_ids:  # the tokenizer adds no <bos> of its own: nothing differs
        return None
    other = next_token_logits(lm, one_bos_ids if course_variant else two_bos_ids)
    one, two = (other, logits) if course_variant else (logits, other)
    p_one, p_two = torch.softmax(one.float(), -1), torch.softmax(two.float(), -1)
    token_id = int(p_one.argmax())
    pieces = readable_pieces(lm.tokenizer, [token_id, int(p_one.argmax()), int(p_two.argmax())])
    return BosComparison(pieces[0], token_id, float(p_one[token_id]), float(p_two[token_id]), pieces[1], pieces[2])
