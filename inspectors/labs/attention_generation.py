"""Lab 6 (HW3 section 6): one head's attention over a greedy generation, as a square matrix.

The course generated token by token with the KV cache and `output_attentions=True`, stacking each
step's query rows. Causal attention makes that equal to one eager forward over the finished sequence
(prompt + generated, `<bos>` included), which is what is computed here (`inspectors.engine.attention`); the
tests check the two agree. Row q holds query token q's weights over the key tokens 0..q.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from inspectors.engine.attention import layer_attention
from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.pieces import readable_pieces
from inspectors.errors import InvalidParameterError
from inspectors.labs.generation import (
    check_bool,
    check_fits,
    check_max_new_tokens,
    check_text,
    greedy_generate,
    split_at_stop,
    stop_reason,
)
from inspectors.labs.labels import ATTENTION_COURSE_VARIANT

MAX_NEW_TOKENS = 256  # the result holds the (T, T) matrix, and a heatmap beyond that is unreadable
COURSE_VARIANT_LABEL = ATTENTION_COURSE_VARIANT


@dataclass
class AttentionGenerationResult:
    model_id: str
    prompt: str
    max_new_tokens: int
    layer_requested: int
    head_requested: int
    layer: int  # the layer shown: the requested one, clamped to the model
    head: int
    course_variant: bool
    token_ids: list[int]  # prompt (with <bos>) then generated, stop token included if emitted
    tokens: list[str]  # one tokenizer piece per id
    n_prompt: int
    stop_reason: str
    labels: list[str]  # axis labels, one per row/column: 'position:token', shifted in the course variant
    attention: list[list[float]]  # (T, T) rows = queries, columns = keys; 0 above the diagonal
    notes: list[str] = field(default_factory=list)

    @property
    def generated_text(self) -> str:
        return "".join(self.tokens[self.n_prompt :])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check_index(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(name, "must be an integer >= 0", value)
    return value


def clamp(name: str, value: int, count: int, model_id: str) -> tuple[int, str | None]:
    """`value` if the model has it, else the nearest valid index, with a note saying so."""
    if value < count:
        return value, None
    return count - 1, (
        f"{model_id} has {count} {name}s (0-{count - 1}); {name} {value} does not exist, so the nearest, "
        f"{name} {count - 1}, is shown."
    )


def axis_labels(tokens: list[str], course_variant: bool = False) -> list[str]:
    """'position:token' labels, unique even when a token repeats. The course variant reproduces the
    reference's off-by-one: position q is labelled with token q+1, the last position with nothing."""
    shown = [*tokens[1:], ""] if course_variant else tokens
    return [f"{i}:{token}" for i, token in enumerate(shown)]


def run(
    lm: LoadedModel,
    *,
    prompt: str = "Google",
    max_new_tokens: int = 20,
    layer: int = 10,
    head: int = 7,
    course_variant: bool = False,
    progress: ProgressFn | None = None,
) -> AttentionGenerationResult:
    """Greedy generation from `prompt` (raw text, one `<bos>`), then `layer`/`head`'s attention over it."""
    check_text("prompt", prompt)
    check_max_new_tokens(lm, max_new_tokens)
    if max_new_tokens > MAX_NEW_TOKENS:
        raise InvalidParameterError(
            "max_new_tokens", f"must be at most {MAX_NEW_TOKENS} for the attention map", max_new_tokens
        )
    _check_index("layer", layer)
    _check_index("head", head)
    check_bool("course_variant", course_variant)
    report = progress or (lambda fraction, message: None)
    notes = []
    shown_layer, note = clamp("layer", layer, lm.n_layers, lm.model_id)
    notes += [note] if note else []
    shown_head, note = clamp("head", head, lm.n_heads, lm.model_id)
    notes += [note] if note else []

    tokenizer = lm.tokenizer
    prompt_ids = [int(i) for i in tokenizer(prompt, add_special_tokens=True)["input_ids"]]
    check_fits(lm, len(prompt_ids), max_new_tokens)
    report(0.0, "Generating")
    new_ids = greedy_generate(
        lm, prompt_ids, max_new_tokens, lambda n: report(0.8 * n / max_new_tokens, f"{n}/{max_new_tokens} tokens")
    )
    _, stop = split_at_stop(lm, new_ids)
    if stop is not None:
        notes.append(f"Generation stopped early at a stop token after {len(new_ids)} of {max_new_tokens} tokens.")
    token_ids = prompt_ids + new_ids
    report(0.85, f"Attention of layer {shown_layer}")
    weights = layer_attention(lm, np.asarray(token_ids), shown_layer)[shown_head]  # (T, T)
    tokens = readable_pieces(tokenizer, token_ids)
    if course_variant:
        notes.append(f"{COURSE_VARIANT_LABEL}: every label names the token after the one it stands for.")
    report(1.0, "Done")
    return AttentionGenerationResult(
        model_id=lm.model_id,
        prompt=prompt,
        max_new_tokens=max_new_tokens,
        layer_requested=layer,
        head_requested=head,
        layer=shown_layer,
        head=shown_head,
        course_variant=course_variant,
        token_ids=token_ids,
        tokens=tokens,
        n_prompt=len(prompt_ids),
        stop_reason=stop_reason(lm, stop),
        labels=axis_labels(tokens, course_variant),
        attention=[[round(float(w), 6) for w in row] for row in weights],
        notes=notes,
    )
