"""The session's "why" panels for a chosen turn: the logit lens (Layers tab), input attribution (Why tab)
and turn-aware attention (the Attention tab's segment view). Bound to `Session` as methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from inspectors.engine import calls
from inspectors.engine.attribution import DEFAULT_STEPS, METHODS
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


def _lens(session: Session, record: Any, with_prompt: bool) -> Any:
    first = 0 if with_prompt else record.n_prompt - 1
    positions = np.arange(first, record.n_tokens - 1)
    ref = session.shared.ref(record.model_id)
    return session.shared.cached(
        record.model_id,
        record.token_ids,
        ("lens", with_prompt),
        lambda: calls.logit_lens(ref, record.token_ids, positions),
    )


def _pieces(session: Session, record: Any, ids: np.ndarray) -> dict[int, str]:
    unique = sorted({int(i) for i in np.asarray(ids).ravel()})
    tokenizer = session.shared.model(record.model_id).tokenizer
    return dict(zip(unique, readable_pieces(tokenizer, unique), strict=True))


def lens_panel(
    session: Session, turn: Any = None, with_prompt: Any = False, start: Any = 0, layer: Any = None, column: Any = 0
) -> LensPanel:
    """The lens over the reply's positions (`with_prompt`: the prompt's too), `LENS_COLUMNS` from `start`;
    `layer`/`column`: the cell whose top-10 is listed (default: the last layer, the first column)."""
    index, record = session.record(turn)
    if record is None or record.steps.n_steps == 0:
        return LensPanel(index, "Send a message: the logit lens reads each layer of the turn's reply.")
    with_prompt = bool(with_prompt) and with_prompt not in ("false", "False", "0")
    grid = _lens(session, record, with_prompt)
    n = len(grid.positions)
    start = as_int("start", start or 0, 0, max(0, n - 1))
    window = slice(start, start + LENS_COLUMNS)
    shown = grid.window(window)
    pieces = _pieces(session, record, shown.top_ids)
    layer = grid.n_layers - 1 if layer is None or layer == "" else as_int("layer", layer, 0, grid.n_layers - 1)
    column = as_int("column", column or 0, 0, len(shown.positions) - 1)
    committed = shown.commitment()
    settled = committed[committed >= 0]
    summary = (
        f"What the model's own final norm and head read from each layer's residual stream, at {len(shown.positions)} "
        f"of {n} positions (from {start}); each cell's token is the lens's most probable next token, its shade the "
        "probability of the token that came. "
        + (f"Median commitment layer: {int(np.median(settled))} of {grid.n_layers - 1}." if settled.size else "")
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
