"""The session's "why" panels for a chosen turn: the logit lens (Layers tab), input attribution (Why tab)
and turn-aware attention (the Attention tab's segment view). Bound to `Session` as methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from inspectors.engine import calls
from inspectors.engine.attribution import DEFAULT_STEPS, METHODS
from inspectors.engine.lens import PRECISIONS, KnownOutput
from inspectors.engine.pieces import readable_pieces
from inspectors.inputs import as_choice, as_int
from inspectors.session.panels import LensPanel, TurnAttentionPanel, WhyPanel
from inspectors.views.attribution import (
    attribution_rows,
    segment_figure,
    segment_totals,
    shading,
    top_segment,
    words,
)
from inspectors.views.lens import cell_rows, commitment_chips, lens_figure, lens_rows
from inspectors.views.tokens import show_whitespace
from inspectors.views.turn_attention import layer_figure, select, share_rows, stacked_figure

if TYPE_CHECKING:
    from inspectors.session.session import Session

LENS_COLUMNS = 64  # positions shown at once; longer turns are paged with `start`
MAX_IG_STEPS = 256


def _lens_positions(record: Any, with_prompt: bool) -> np.ndarray:
    """Every position the lens can read: each predicts the token after it."""
    return np.arange(0 if with_prompt else record.n_prompt - 1, record.n_tokens - 1)


def _recorded_output(session: Session, record: Any) -> KnownOutput | None:
    """The reply's recorded next-token distributions: the model's own output, so the lens's last layer there
    needs no head. Not for a steered turn (the lens reads the unsteered model) or one recorded in another
    precision than the model's now (an opened file)."""
    if record.steering or record.dtype != session.shared.model(record.model_id).dtype_name:
        return None
    return KnownOutput.of_reply(record)


def _lens(session: Session, record: Any, positions: np.ndarray, precision: str) -> Any:
    """The lens at `positions` (one page), computed once per page and precision."""
    ref = session.shared.ref(record.model_id)
    known = _recorded_output(session, record)
    return session.shared.cached(
        record.model_id,
        record.token_ids,
        ("lens", int(positions[0]), len(positions), precision, known is None),
        lambda: calls.logit_lens(ref, record.token_ids, positions, known, precision),
    )


def _precision_note(precision: str) -> str:
    if precision == "float32":
        return "Every layer in float32, as the model computes. "
    return (
        f"Layers before the last: a {precision.removesuffix(' scan')} scan of the vocabulary with the shown tokens "
        "re-scored in float32 (probabilities within about 0.003 of float32; tick «exact» for float32). "
    )


def _pieces(session: Session, record: Any, ids: np.ndarray) -> dict[int, str]:
    unique = sorted({int(i) for i in np.asarray(ids).ravel()})
    tokenizer = session.shared.model(record.model_id).tokenizer
    return dict(zip(unique, readable_pieces(tokenizer, unique), strict=True))


def lens_panel(
    session: Session,
    turn: Any = None,
    with_prompt: Any = False,
    start: Any = 0,
    layer: Any = None,
    column: Any = 0,
    precision: Any = "auto",
) -> LensPanel:
    """The lens over the reply's positions (`with_prompt`: the prompt's too), `LENS_COLUMNS` from `start`;
    `layer`/`column`: the cell whose top-10 is listed (default: the last layer, the first column);
    `precision`: of the layers before the last ("float32" exact, "auto" a bfloat16 scan where faster)."""
    index, record = session.record(turn)
    if record is None or record.steps.n_steps == 0:
        return LensPanel(index, "Send a message: the logit lens reads each layer of the turn's reply.")
    with_prompt = bool(with_prompt) and with_prompt not in ("false", "False", "0")
    precision = as_choice("precision", precision or "auto", PRECISIONS)
    every = _lens_positions(record, with_prompt)
    n = len(every)
    start = as_int("start", start or 0, 0, max(0, n - 1))
    shown = _lens(session, record, every[start : start + LENS_COLUMNS], precision)
    pieces = _pieces(session, record, shown.top_ids)
    last = shown.n_layers - 1
    layer = last if layer is None or layer == "" else as_int("layer", layer, 0, last)
    column = as_int("column", column or 0, 0, len(shown.positions) - 1)
    committed = shown.commitment()
    settled = committed[committed >= 0]
    summary = (
        f"What the model's own final norm and head read from each layer's residual stream, at {len(shown.positions)} "
        f"of {n} positions (from {start}); each cell's token is the lens's most probable next token, its shade the "
        f"probability of the token that came. {_precision_note(shown.precision)}"
        + (f"Median commitment layer: {int(np.median(settled))} of {last}." if settled.size else "")
    )
    title = f"Logit lens of turn {index + 1} ({record.model_id})"
    return LensPanel(
        index, summary, lens_figure(shown, record.tokens, pieces, title), commitment_chips(shown, record.tokens),
        cell_rows(shown, pieces, layer, column), lens_rows(shown, record.tokens, pieces),
        [int(p) for p in shown.positions],
    )  # fmt: skip


def _attribute(session: Session, record: Any, position: int, method: str, steps: int) -> Any:
    ref = session.shared.ref(record.model_id)
    segments = record.segments.of_token
    return session.shared.cached(
        record.model_id, record.token_ids, ("attribution", position, method, steps),
        lambda: calls.attribute(ref, record.token_ids, position, method, segments, steps),
    )  # fmt: skip


def why_panel(session: Session, turn: Any = None, step: Any = 0, method: Any = "gradient", steps: Any = DEFAULT_STEPS):
    """How much each earlier token contributed to the log-probability of reply token `step`."""
    index, record = session.record(turn)
    if record is None or record.steps.n_steps == 0:
        return WhyPanel(index)
    step = as_int("step", 0 if step is None or step == "" else step, 0, record.steps.n_steps - 1)
    method = as_choice("method", method or "gradient", METHODS)
    steps = as_int("steps", steps or DEFAULT_STEPS, 2, MAX_IG_STEPS)
    position = record.n_prompt + step
    result = _attribute(session, record, position, method, steps)
    tokens = record.tokens[:position]
    totals = segment_totals(record.segments, result.scores)
    other = "occlusion" if method == "gradient" else "gradient"
    other_totals = segment_totals(record.segments, _attribute(session, record, position, other, steps).scores)
    warning = ""
    if top_segment(totals) != top_segment(other_totals):
        warning = (
            f"⚠️ The methods disagree: {method.replace('_', ' ')} puts the most weight on «{top_segment(totals)}», "
            f"{other} on «{top_segment(other_totals)}». Attributions are estimates; read them side by side."
        )
    target = show_whitespace(record.tokens[position])
    delta = f" Convergence delta {result.convergence_delta:.4f} over {result.steps} steps." if result.steps else ""
    summary = (
        f"Why reply token {step} `{target}` (log p = {result.target_logprob:.3f}): {method.replace('_', ' ')}, "
        f"summed per chat segment and per word; green raised its probability, red lowered it.{delta}"
    )
    ranked = sorted(words(tokens, result.scores), key=lambda item: -abs(item[1]))[:20]
    return WhyPanel(
        index, summary, step, method, shading(tokens, result.scores),
        segment_figure(totals, f"Attribution of `{target}` per chat segment ({method.replace('_', ' ')})"),
        [[word, round(score, 5)] for word, score in ranked], totals,
        attribution_rows(tokens, record.segments, result), warning,
    )  # fmt: skip


def turn_attention_panel(session: Session, turn: Any = None, layer: Any = "mean", head: Any = "mean"):
    """The share of each reply token's attention that goes to each chat segment."""
    index, record = session.record(turn)
    if record is None or record.steps.n_steps == 0:
        return TurnAttentionPanel(index, "Send a message: this shows where the reply's attention goes.")
    lm = session.shared.model(record.model_id)
    layer = "mean" if str(layer).strip() in ("", "mean", "None") else as_int("layer", layer, 0, lm.n_layers - 1)
    head = "mean" if str(head).strip() in ("", "mean", "None") else as_int("head", head, 0, lm.n_heads - 1)
    queries = np.arange(record.n_prompt, record.n_tokens)
    ref = session.shared.ref(record.model_id)
    shares = session.shared.cached(
        record.model_id, record.token_ids, ("segment-attention",),
        lambda: calls.segment_attention(ref, record.token_ids, record.segments.of_token, queries),
    )  # fmt: skip
    names = record.segments.names
    share = select(shares, layer, head)
    where = "mean over layers" if layer == "mean" else f"layer {layer}"
    who = "mean over heads" if head == "mean" else f"head {head}"
    reply = record.tokens[record.n_prompt :]
    return TurnAttentionPanel(
        index,
        f"Where each reply token's attention goes, by chat segment ({where}, {who}); each bar sums to 1.",
        stacked_figure(share, names, reply, f"Attention of each reply token by segment ({where}, {who})"),
        layer_figure(shares, names, head, f"Mean share of the reply's attention, per layer ({who})"),
        share_rows(share, names, queries),
    )
