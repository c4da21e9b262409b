"""The session's read-only actions: each tab's panel for a chosen turn, the feature search, the free
tokenizer and the labs. Every index is checked against the turn actually chosen (its length, its
model's layers and heads, its SAE's features), never against a widget's possibly stale limits.

Bound to `Session` as methods (`session.prompt_panel(turn)`), so the session stays the one door.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from inspectors.engine import calls
from inspectors.engine.pieces import readable_pieces
from inspectors.errors import InspectorError
from inspectors.inputs import MAX_MESSAGE_CHARS, MAX_QUERY_CHARS, as_int, as_optional_int, as_text
from inspectors.session.panels import (
    AttentionPanel,
    LabPanel,
    NextTokenPanel,
    PromptPanel,
    SAEPanel,
    SearchPanel,
    TokensPanel,
)
from inspectors.views.attention_map import attention_figure, heads_overview, query_window, select_head
from inspectors.views.next_token import next_token_figure, step_rows, step_summary
from inspectors.views.prompt import prompt_html, prompt_warnings
from inspectors.views.sae_view import (
    feature_card_markdown,
    feature_figure,
    feature_shading,
    feature_summary,
    search_rows,
    top_feature_rows,
)
from inspectors.views.tokens import highlighted_tokens, reply_tokens, token_rows, tokenize_rows
from inspectors.views.turn_attention import SPARSE_FROM, sparse_figure

if TYPE_CHECKING:
    from inspectors.engine.loading import ProgressFn
    from inspectors.session.session import Session

log = logging.getLogger(__name__)


def prompt_panel(session: Session, turn: Any = None) -> PromptPanel:
    index, record = session.record(turn)
    if record is None:
        return PromptPanel(index)
    warnings = prompt_warnings(record)
    notes = (
        "\n".join(f"- ⚠️ {w}" for w in warnings)
        or "No warnings: nothing trimmed, no doubled or missing `<bos>`, no control tokens typed as text."
    )
    return PromptPanel(index, record.prompt_text, prompt_html(record), notes, warnings)


def tokens_panel(session: Session, turn: Any = None) -> TokensPanel:
    index, record = session.record(turn)
    if record is None:
        return TokensPanel(index)
    return TokensPanel(index, highlighted_tokens(record), token_rows(record))


def next_token_panel(session: Session, turn: Any = None, step: Any = 0) -> NextTokenPanel:
    index, record = session.record(turn)
    if record is None or record.steps.n_steps == 0:
        return NextTokenPanel(index)
    n_steps = record.steps.n_steps
    step = as_int("step", 0 if step is None or step == "" else step, 0, n_steps - 1)
    return NextTokenPanel(
        index,
        step,
        n_steps,
        step_summary(record, step),
        next_token_figure(record, step),
        step_rows(record, step),
        reply_tokens(record),
    )


def attention_panel(
    session: Session, turn: Any = None, layer: Any = None, head: Any = "mean", query_start: Any = 0
) -> AttentionPanel:
    """`layer` empty: the middle layer. `head`: "mean" or a head's number."""
    index, record = session.record(turn)
    lm = session.shared.model(record.model_id) if record is not None else session.model()
    if record is None:
        return AttentionPanel(index, lm.n_layers, lm.n_heads, lm.n_layers // 2)
    layer = lm.n_layers // 2 if layer is None or layer == "" else as_int("layer", layer, 0, lm.n_layers - 1)
    head = "mean" if isinstance(head, str) and head.strip() == "mean" else as_int("head", head, 0, lm.n_heads - 1)
    start = as_int("query_start", query_start or 0, 0, record.n_tokens - 1)
    weights = session.shared.attention(record.model_id, record.token_ids, layer)
    matrix = weights.astype("float32")
    if record.n_tokens > SPARSE_FROM:  # a long turn: each query row's strongest keys, no dense matrix
        start_row, end_row = query_window(record.n_tokens, start)
        rows = select_head(matrix, head)[start_row:end_row]
        title = f"Layer {layer}, {'mean over heads' if head == 'mean' else f'head {head}'}: each query's top keys"
        heatmap, overview = sparse_figure(rows, record.tokens, title, first_query=start_row), None
    else:
        heatmap, overview = (
            attention_figure(matrix, record.tokens, head, layer, start),
            heads_overview(matrix, layer, start),
        )
    return AttentionPanel(index, lm.n_layers, lm.n_heads, layer, head, start, heatmap, overview, weights, record.tokens)


def sae_panel(
    session: Session, turn: Any = None, layer: Any = None, feature: Any = None, position: Any = 0
) -> SAEPanel:
    """`layer` empty: the model's default SAE layer; `feature` empty: this session's, else the SAE's default."""
    index, record = session.record(turn)
    model_id = record.model_id if record is not None else session.model_id
    lm = session.shared.model(model_id)
    layer = as_optional_int("layer", layer, 0, lm.n_layers - 1)
    if layer != session.sae_layer:  # another SAE, where feature numbers mean other things
        session.sae_layer, session.sae_feature = layer, None
    lsae, reason = session.shared.sae(model_id, layer)
    if lsae is None:
        return SAEPanel(index, reason)
    if feature is None or feature == "":
        feature = session.feature_for(lsae)
    feature = as_int("feature", feature, 0, lsae.d_sae - 1)
    session.sae_feature = feature  # later turns keep this feature's column in their record
    card = feature_card_markdown(lsae, feature)
    if record is None:
        return SAEPanel(index, f"SAE `{lsae.name}` (layer {lsae.layer}). Send a message to see its features.",
                        feature, lsae.layer, card=card)  # fmt: skip
    position = as_int("position", position or 0, 0, record.n_tokens - 1)
    acts = session.shared.sae_activations(model_id, layer, lsae, record, feature)
    values = acts.feature_values
    return SAEPanel(
        index,
        feature_summary(acts, feature, values, record.tokens),
        feature,
        lsae.layer,
        feature_shading(record.tokens, values),
        feature_figure(record.tokens, values, feature, lsae.layer),
        top_feature_rows(acts, position),
        card,
        [round(float(v), 5) for v in values],
    )


def search_panel(session: Session, query: Any, layer: Any = None) -> SearchPanel:
    """Features of the session's SAE whose top contexts fire on the query's words (shipped SAEs)."""
    text = as_text("query", query, max_chars=MAX_QUERY_CHARS)
    lm = session.model()
    lsae, reason = session.shared.sae(session.model_id, as_optional_int("layer", layer, 0, lm.n_layers - 1))
    if lsae is None:
        return SearchPanel(reason)
    return SearchPanel(*search_rows(lsae, text))


def tokenize(session: Session, text: Any) -> list[list[Any]]:
    """[position, id, token] of any text under the session's model's tokenizer (no special tokens added)."""
    tokenizer = session.model().tokenizer
    ids = tokenizer(as_text("text", text, max_chars=MAX_MESSAGE_CHARS), add_special_tokens=False)["input_ids"]
    return tokenize_rows(ids, readable_pieces(tokenizer, ids))


def lab_panel(session: Session, lab: Any, raw_inputs: dict[str, Any], progress: ProgressFn | None = None) -> LabPanel:
    """Run a lab on the session's current model. Bad inputs and failures come back as the summary."""
    from inspectors.labs.coherence import DEFAULT_CROSS_ENCODER
    from inspectors.labs.inputs import parse_inputs
    from inspectors.labs.registry import check_lab, show

    try:
        lab = check_lab(lab)
        inputs = parse_inputs(lab, raw_inputs)
        if "scorer_model" in inputs:
            allowed = session.shared.settings.allowed_scorer_models or [DEFAULT_CROSS_ENCODER]
            session.shared.check_loadable_name("scorer_model", inputs["scorer_model"], allowed)
        session.model()  # load (and check) the model here, with the message a load failure deserves
        result = calls.run_lab(session.shared.ref(session.model_id), lab, inputs, progress)
        shown = show(lab, result)
    except InspectorError as err:
        log.info("session %s: lab %s refused: %s", session.id, lab, err)
        return LabPanel(str(lab), f"⚠️ {err}")
    except Exception as err:  # one user's failure must never break the app
        log.exception("session %s: lab %s failed", session.id, lab)
        return LabPanel(str(lab), f"⚠️ The lab failed unexpectedly ({type(err).__name__}: {err}).")
    return LabPanel(lab, shown.summary, result.to_json(), list(shown.figures))
