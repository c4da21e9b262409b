"""Compare: a turn against another turn, or against the same user message without the chat template (the
course's first experiment, live). Side by side: the tokens, the first reply token's distributions (KL both
ways, top-10 overlap), the per-layer cosine of the last prompt token's residual, and the top SAE features
the two share. Read-only: the conversation never changes. Bound to `Session` as a method.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from inspectors.engine import calls
from inspectors.errors import InspectorError, InvalidParameterError
from inspectors.inputs import as_choice, as_index, means_newest
from inspectors.views.compare import (
    LAYER_HEADERS,
    SAE_HEADERS,
    TOP_HEADERS,
    compare_figure,
    compare_summary,
    layer_rows,
    plain_tokens,
    sae_rows,
    top_token_rows,
)
from inspectors.views.tokens import highlighted_tokens

if TYPE_CHECKING:
    from inspectors.engine.record import TurnRecord
    from inspectors.session.session import Session

log = logging.getLogger(__name__)

NO_TEMPLATE, TURN = "no template", "turn"
AGAINST = (NO_TEMPLATE, TURN)


@dataclass
class ComparePanel:
    """A against B. `tokens_*` are (piece, part) pairs for a HighlightedText (parts: template / prompt / reply)."""

    ok: bool
    status: str  # markdown: the comparison's summary, or what went wrong and what to do
    against: str = NO_TEMPLATE
    turn_a: int | None = None  # 0-based
    turn_b: int | None = None  # None when B is turn_a's message without the template
    label_a: str = "A"
    label_b: str = "B"
    tokens_a: list[tuple[str, str | None]] = field(default_factory=list)
    tokens_b: list[tuple[str, str | None]] = field(default_factory=list)
    reply_a: str = ""
    reply_b: str = ""
    figure: go.Figure | None = None  # top first tokens of each, and the cosine per layer
    top_rows: list[list[Any]] = field(default_factory=list)  # TOP_HEADERS
    layer_rows: list[list[Any]] = field(default_factory=list)  # LAYER_HEADERS
    sae_rows: list[list[Any]] = field(default_factory=list)  # SAE_HEADERS: both top-10s, common features first
    comparison: Any = None  # engine.compare.Comparison

    def api(self) -> dict[str, Any]:
        sides = {
            key: {"label": label, "tokens": [piece for piece, _ in tokens], "parts": [part for _, part in tokens],
                  "reply": reply}
            for key, label, tokens, reply in (("a", self.label_a, self.tokens_a, self.reply_a),
                                              ("b", self.label_b, self.tokens_b, self.reply_b))
        }  # fmt: skip
        out: dict[str, Any] = {
            "ok": self.ok, "status": self.status, "against": self.against, "turn_a": self.turn_a,
            "turn_b": self.turn_b, **sides,
        }  # fmt: skip
        c = self.comparison
        if c is None:
            return out
        sae = None
        if c.sae is not None:
            sae = {"name": c.sae.sae_name, "layer": c.sae.layer, "common": c.sae.common, "headers": SAE_HEADERS,
                   "rows": self.sae_rows}  # fmt: skip
        return {
            **out,
            "kl_a_b": round(c.kl_ab, 6),
            "kl_b_a": round(c.kl_ba, 6),
            "top10_overlap": c.overlap,
            "top10_jaccard": round(c.jaccard, 4),
            "shared_top10": c.shared_top,
            "top_tokens": {"headers": TOP_HEADERS, "rows": self.top_rows},
            "cosine_per_layer": [round(float(x), 6) for x in c.cosine],
            "layers": {"headers": LAYER_HEADERS, "rows": self.layer_rows},
            "sae": sae,
        }


def compare(session: Session, turn_a: Any = None, turn_b: Any = None, against: Any = NO_TEMPLATE) -> ComparePanel:
    """Turn `turn_a` (empty: the latest) against `turn_b` (empty: the latest) when `against` is 'turn', or
    against its own user message sent as plain text (one `<bos>`, no template; a greedy reply) when it is
    'no template'. Turns of different models are refused: their vocabularies and layers do not match.
    A failure is a panel with ok=False and the message."""
    try:
        return _compare(session, turn_a, turn_b, against)
    except InspectorError as err:
        log.info("session %s: comparison refused: %s", session.id, err)
        return ComparePanel(False, f"⚠️ {err}", against if against in AGAINST else NO_TEMPLATE)
    except Exception as err:
        log.exception("session %s: comparison failed", session.id)
        status = f"⚠️ Unexpected error ({type(err).__name__}: {err}). Your conversation is kept."
        return ComparePanel(False, status, against if against in AGAINST else NO_TEMPLATE)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _turn(session: Session, name: str, value: Any) -> int:
    if not session.records:
        raise InvalidParameterError(name, "has nothing to compare yet: send a message first", value)
    if means_newest(value):
        return len(session.records) - 1
    return as_index(name, value, len(session.records), "this conversation")


def _compare(session: Session, turn_a: Any, turn_b: Any, against: Any) -> ComparePanel:
    against = as_choice("against", NO_TEMPLATE if _empty(against) else against, AGAINST)
    index_a = _turn(session, "turn_a", turn_a)
    a = session.records[index_a]
    ref = session.shared.ref(a.model_id)
    notes = []
    if against == TURN:
        index_b = _turn(session, "turn_b", turn_b)
        b = session.records[index_b]
        if b.model_id != a.model_id:
            raise InvalidParameterError(
                "turn_b",
                f"comes from {b.model_id} and turn {index_a + 1} from {a.model_id}: different models have different "
                "vocabularies and layers, so pick two turns of one model",
                turn_b,
            )
        label_a, label_b = f"turn {index_a + 1}", f"turn {index_b + 1}"
        sides = [("A", a), ("B", b)]
        ids_b, tokens_b, reply_b = b.prompt_ids, highlighted_tokens(b), b.reply_text
        if index_a == index_b:
            notes.append("A and B are the same turn: KL 0, cosine 1 and full overlap are the expected answer.")
    else:
        index_b, sides = None, [("A", a)]
        text = session.conversation.messages[2 * index_a]["content"]
        max_new_tokens = int(a.params["max_new_tokens"])
        plain = session.shared.cached(
            a.model_id, a.prompt_ids, ("plain reply", text, max_new_tokens),
            lambda: calls.plain_reply(ref, text, max_new_tokens),
        )  # fmt: skip
        label_a, label_b = f"turn {index_a + 1} (chat template)", f"turn {index_a + 1}'s message without the template"
        ids_b, tokens_b, reply_b = plain.prompt_ids, plain_tokens(plain), plain.reply_text
        notes += _no_template_notes(a, index_a, max_new_tokens)
    for name, record in sides:
        if record.steering is not None:
            notes.append(f"{name}'s reply was steered; the prompts are read here by the model unsteered.")
    layer = session.sae_layer if a.model_id == session.model_id else None  # another model's SAE: its default
    lsae, reason = session.shared.sae(a.model_id, layer, wait=True)
    pair = np.concatenate([a.prompt_ids, [-1], ids_b]).astype(np.int64)  # -1: where A ends, for the cache key
    comparison = session.shared.cached(
        a.model_id, pair, ("compare", layer, lsae is not None),
        lambda: calls.compare_prompts(ref, a.prompt_ids, ids_b, layer, lsae is not None),
    )  # fmt: skip
    summary = compare_summary(comparison, label_a, label_b, sae_note=reason.strip())
    return ComparePanel(
        True, "  \n".join([summary, *notes]), against, index_a, index_b, label_a, label_b, highlighted_tokens(a),
        tokens_b, a.reply_text, reply_b, compare_figure(comparison, label_a, label_b), top_token_rows(comparison),
        layer_rows(comparison), sae_rows(comparison.sae), comparison,
    )  # fmt: skip


def _no_template_notes(record: TurnRecord, index: int, max_new_tokens: int) -> list[str]:
    notes = [
        "B is the turn's user message tokenized as plain text (the tokenizer's `<bos>`, no turn markers), as in "
        f"the course's template-vs-none lab; its reply is greedy, at most {max_new_tokens} new tokens."
    ]
    if float(record.params.get("temperature") or 0) > 0:
        notes.append(
            f"A's reply was sampled (temperature {record.params['temperature']}, seed {record.params['seed']}), "
            "so the replies may also differ by chance; the first-token distributions do not depend on sampling."
        )
    if index > 0:
        notes.append(f"A's prompt also holds the {index} earlier turn(s); B is this message alone.")
    if record.system_handling is not None:
        notes.append("A's prompt includes the system prompt; B does not.")
    return notes
