"""Explain the course's sentences: the logit lens and input attribution on each (the report's "why" section).

Each sentence is read as plain text (as the tokenizer encodes it: one `<bos>` on Gemma), continued greedily
for `max_new_tokens`, and then explained: the lens (the model's own head at every layer) at the prompt's
last position and over the continuation, with the layer from which each generated token is the lens's top
choice; and the attribution of the first generated token to the sentence's tokens, by gradient x embedding
and by integrated gradients (with its convergence delta).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from inspectors.engine.attribution import DEFAULT_STEPS, attribute
from inspectors.engine.lens import logit_lens
from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.pieces import readable_pieces
from inspectors.errors import InvalidParameterError
from inspectors.labs.generation import check_max_new_tokens, check_text, greedy_generate, split_at_stop
from inspectors.views.lab_explain import N_FIGURES as MAX_SENTENCES


@dataclass
class Explained:
    sentence: str
    tokens: list[str]  # the prompt's tokens, then the generated ones
    n_prompt: int
    continuation: str
    lens_top: list[str]  # per layer: the lens's top token at the prompt's last position
    lens_target_prob: list[float]  # per layer: the probability it gives the first generated token
    commitment: list[int]  # per generated token: the first layer from which it stays the lens's top (-1: never)
    gradient: list[float]  # per prompt token: gradient x embedding for the first generated token
    integrated_gradients: list[float]
    ig_delta: float


@dataclass
class ExplainResult:
    model_id: str
    max_new_tokens: int
    steps: int
    sentences: list[Explained]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run(
    lm: LoadedModel,
    *,
    sentences: list[str],
    max_new_tokens: int = 8,
    steps: int = DEFAULT_STEPS,
    progress: ProgressFn | None = None,
) -> ExplainResult:
    if not isinstance(sentences, list) or not 1 <= len(sentences) <= MAX_SENTENCES:
        raise InvalidParameterError("sentences", f"must be a list of 1 to {MAX_SENTENCES} sentences", sentences)
    for i, sentence in enumerate(sentences, start=1):
        check_text(f"sentences[{i}]", sentence)
    check_max_new_tokens(lm, max_new_tokens)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 256:
        raise InvalidParameterError("steps", "must be an integer in [2, 256]", steps)
    report = progress or (lambda fraction, message: None)
    explained = []
    for n, sentence in enumerate(sentences):
        report(n / len(sentences), f"Sentence {n + 1}/{len(sentences)}")
        prompt = list(lm.tokenizer(sentence, add_special_tokens=True)["input_ids"])
        generated, _ = split_at_stop(lm, greedy_generate(lm, prompt, max_new_tokens))
        if not generated:  # the model stopped at once: explain the stop token itself
            generated = greedy_generate(lm, prompt, 1)[:1]
        ids = np.asarray(prompt + generated)
        # a report is kept and compared: float32 at every layer, not the interactive tab's faster scan
        grid = logit_lens(lm, ids, np.arange(len(prompt) - 1, len(ids) - 1), precision="float32")
        first = len(prompt)
        gradient = attribute(lm, ids, first, "gradient")
        integrated = attribute(lm, ids, first, "integrated_gradients", steps=steps)
        explained.append(
            Explained(
                sentence=sentence,
                tokens=readable_pieces(lm.tokenizer, ids.tolist()),
                n_prompt=len(prompt),
                continuation=lm.tokenizer.decode(generated, skip_special_tokens=True),
                lens_top=readable_pieces(lm.tokenizer, grid.top_ids[:, 0, 0].tolist()),
                lens_target_prob=[round(float(p), 6) for p in grid.target_probs[:, 0]],
                commitment=[int(c) for c in grid.commitment()],
                gradient=[round(float(s), 6) for s in gradient.scores],
                integrated_gradients=[round(float(s), 6) for s in integrated.scores],
                ig_delta=round(float(integrated.convergence_delta), 6),
            )
        )
    report(1.0, "Done")
    return ExplainResult(lm.model_id, max_new_tokens, steps, explained)
