"""Lab 1 (HW3 section 1): the same question answered with and without the chat template, each answer
scored for coherence by a cross-encoder.

Both replies are greedy. The templated prompt is `build_prompt`'s ids (one `<bos>`, from the template);
the raw prompt is the question tokenized with the tokenizer's special tokens (one `<bos>`). Each answer
is the generated ids up to the stop token, decoded: no string splitting on template markers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.pieces import readable_pieces
from inspectors.engine.templating import build_prompt
from inspectors.errors import InspectorError
from inspectors.labs.coherence import (
    DEFAULT_CROSS_ENCODER,
    STAND_IN_LABEL,
    STAND_IN_MODEL,
    load_cross_encoder,
    load_offline_stand_in,
)
from inspectors.labs.generation import (
    check_bool,
    check_fits,
    check_max_new_tokens,
    check_text,
    greedy_generate,
    leading_bos,
    split_at_stop,
    stop_reason,
)
from inspectors.labs.labels import TEMPLATE_COURSE_VARIANT

WITH_TEMPLATE, WITHOUT_TEMPLATE = "chat template", "no template"
COURSE_VARIANT_LABEL = TEMPLATE_COURSE_VARIANT


@dataclass
class Reply:
    """One greedy reply. `answer_ids` are the generated ids before the stop token."""

    label: str  # WITH_TEMPLATE or WITHOUT_TEMPLATE
    prompt_text: str  # the string that was tokenized
    prompt_ids: list[int]
    prompt_tokens: list[str]
    answer_ids: list[int]
    answer_text: str  # answer_ids decoded without special tokens, stripped
    stop_reason: str  # 'end_of_turn' | 'eos' | 'max_new_tokens'
    n_bos: int  # <bos> tokens opening the prompt: 1 is right, the course variant has 2
    coherence: float | None = None  # the cross-encoder's raw logit; None when it could not be loaded
    stand_in_similarity: float | None = None  # STAND_IN_LABEL; only when the coherence score is missing


@dataclass
class TemplateVsNoneResult:
    model_id: str
    question: str
    max_new_tokens: int
    course_variant: bool
    scorer_model: str
    coherence_message: str | None  # why there is no coherence score; None when there is one
    stand_in_label: str | None  # the name the stand-in number goes by, when it was computed
    stand_in_message: str | None
    with_template: Reply
    without_template: Reply
    notes: list[str] = field(default_factory=list)

    @property
    def replies(self) -> list[Reply]:
        return [self.with_template, self.without_template]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _reply(lm: LoadedModel, label: str, text: str, prompt_ids: list[int], new_ids: list[int]) -> Reply:
    answer_ids, stop = split_at_stop(lm, new_ids)
    tokenizer = lm.tokenizer
    return Reply(
        label=label,
        prompt_text=text,
        prompt_ids=prompt_ids,
        prompt_tokens=readable_pieces(tokenizer, prompt_ids),
        answer_ids=answer_ids,
        answer_text=tokenizer.decode(answer_ids, skip_special_tokens=True).strip(),
        stop_reason=stop_reason(lm, stop),
        n_bos=leading_bos(tokenizer, prompt_ids),
    )


def prompts(lm: LoadedModel, question: str, max_new_tokens: int, course_variant: bool) -> dict[str, tuple]:
    """{label: (text, ids)} of the two prompts."""
    tokenizer = lm.tokenizer
    built = build_prompt(
        tokenizer, lm.chat_template, [{"role": "user", "content": question}], lm.context_limit - max_new_tokens
    )
    templated_ids = built.ids
    if course_variant:
        templated_ids = list(tokenizer(built.text, add_special_tokens=True)["input_ids"])
    raw_ids = list(tokenizer(question, add_special_tokens=True)["input_ids"])
    check_fits(lm, len(templated_ids), max_new_tokens)
    check_fits(lm, len(raw_ids), max_new_tokens)
    return {WITH_TEMPLATE: (built.text, templated_ids), WITHOUT_TEMPLATE: (question, raw_ids)}


def run(
    lm: LoadedModel,
    *,
    question: str,
    max_new_tokens: int = 512,
    course_variant: bool = False,
    scorer_model: str = DEFAULT_CROSS_ENCODER,
    stand_in_when_offline: bool = True,
    progress: ProgressFn | None = None,
) -> TemplateVsNoneResult:
    """Greedy replies to `question` with and without the chat template, and their coherence scores.

    `scorer_model`: the cross-encoder (hub id or local folder). `stand_in_when_offline`: when it cannot
    be loaded, report the offline stand-in's cosine similarity instead, under its own name.
    """
    check_text("question", question)
    check_max_new_tokens(lm, max_new_tokens)
    check_bool("course_variant", course_variant)
    check_text("scorer_model", scorer_model)
    check_bool("stand_in_when_offline", stand_in_when_offline)
    report = progress or (lambda fraction, message: None)
    replies = {}
    for i, (label, (text, ids)) in enumerate(prompts(lm, question, max_new_tokens, course_variant).items()):

        def on_step(n: int, i: int = i, label: str = label) -> None:
            report(0.45 * (i + n / max_new_tokens), f"Generating with {label}: {n}/{max_new_tokens} tokens")

        report(0.45 * i, f"Generating with {label}")
        replies[label] = _reply(lm, label, text, ids, greedy_generate(lm, ids, max_new_tokens, on_step))

    report(0.9, f"Scoring coherence with {scorer_model}")
    coherence_message = stand_in_label = stand_in_message = None
    try:
        scorer = load_cross_encoder(scorer_model)
        for reply in replies.values():
            reply.coherence = scorer.score(question, reply.answer_text)
    except InspectorError as err:
        coherence_message = f"No coherence score: {err}"
        if stand_in_when_offline:
            try:
                embedder = load_offline_stand_in()
                for reply in replies.values():
                    reply.stand_in_similarity = embedder.cosine(question, reply.answer_text)
                stand_in_label = STAND_IN_LABEL
            except InspectorError as stand_in_err:
                stand_in_message = f"No {STAND_IN_MODEL} stand-in either: {stand_in_err}"
    report(1.0, "Done")

    notes = []
    if course_variant:
        notes.append(
            f"{COURSE_VARIANT_LABEL}: the templated prompt starts with {replies[WITH_TEMPLATE].n_bos} <bos> tokens; "
            "Gemma expects one, and its reply may change."
        )
    for reply in replies.values():
        if reply.stop_reason == "max_new_tokens":
            notes.append(f"The reply with {reply.label} was cut at max_new_tokens={max_new_tokens}.")
    return TemplateVsNoneResult(
        model_id=lm.model_id,
        question=question,
        max_new_tokens=max_new_tokens,
        course_variant=course_variant,
        scorer_model=scorer_model,
        coherence_message=coherence_message,
        stand_in_label=stand_in_label,
        stand_in_message=stand_in_message,
        with_template=replies[WITH_TEMPLATE],
        without_template=replies[WITHOUT_TEMPLATE],
        notes=notes,
    )
