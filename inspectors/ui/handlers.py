"""Event handlers: call the library, format for components. Per-user data comes in and goes out as
`Session` state; the only shared objects are the read-only models and the per-session stop flags."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gradio as gr

from inspectors.engine.attention import layer_attention
from inspectors.engine.conversation import Conversation
from inspectors.engine.loading import LoadedModel, load_model
from inspectors.engine.sampling import coerce_params
from inspectors.errors import InspectorError, InvalidParameterError
from inspectors.sae.activations import sae_probe, turn_activations
from inspectors.sae.loading import LoadedSAE, check_feature
from inspectors.sae.sources import available_layers, open_sae
from inspectors.sae.sparse import SparseActivations
from inspectors.settings import Settings
from inspectors.ui.session import Session, StopFlags
from inspectors.views.attention_map import attention_figure, heads_overview
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

log = logging.getLogger(__name__)

try:  # ZeroGPU Spaces: a GPU is attached only inside @spaces.GPU; elsewhere it is a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:  # not on a Space

    def gpu(fn: Callable) -> Callable:
        return fn


def user_errors(fn: Callable) -> Callable:
    """Inspection handlers: a bad choice becomes a message in the UI / API, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InspectorError as err:
            raise gr.Error(str(err)) from err

    return wrapper


class Handlers:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.stops = StopFlags()
        # (model id, layer) -> its SAE (or why there is none), loaded in the background: a first download,
        # or a Hub that cannot be reached, must not hold up the chat.
        self._saes: dict[tuple[str, int | None], Future] = {}
        self._sae_lock = threading.Lock()
        self._sae_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sae-load")

    def sae_for(self, lm: LoadedModel, wait: bool = False, layer: int | None = None) -> tuple[LoadedSAE | None, str]:
        """The SAE for this model at `layer` (None: its default; shared read-only), or why there is none,
        or that it is still loading."""
        key = (lm.model_id, layer)
        with self._sae_lock:
            if key not in self._saes:
                self._saes[key] = self._sae_pool.submit(self._load_sae, lm, layer)
            future = self._saes[key]
        if not wait and not future.done():
            return None, (
                "Loading the SAE (the first use may download it): its features show with the next turn, "
                "or pick the layer again in a moment."
            )
        found = future.result()
        return (found, "") if isinstance(found, LoadedSAE) else (None, found)

    def _load_sae(self, lm: LoadedModel, layer: int | None) -> LoadedSAE | str:
        try:
            return open_sae(lm, layer, self.settings)
        except InspectorError as err:
            log.warning("no SAE for %s at layer %s: %s", lm.model_id, layer, err)
            return f"{err} Everything else works as usual."

    def model(self, session: Session | None) -> LoadedModel:
        return load_model(self.session(session).model_id, self.settings)

    def feature(self, session: Session, lsae: LoadedSAE) -> int:
        """This session's feature, else the configured one, else the SAE's default (e.g. 10004 on Gemma Scope)."""
        for choice in (session.sae_feature, self.settings.sae_feature, lsae.default_feature):
            if choice is not None:
                return choice
        return 0

    def session(self, session: Session | None) -> Session:
        return session if session is not None else Session(model_id=self.settings.model_id)

    # ---- chat ----------------------------------------------------------------------------------
    def chat(
        self,
        message: str,
        session: Session | None,
        system_prompt: str,
        temperature: float,
        top_k: float,
        top_p: float,
        max_new_tokens: float,
        seed: str | float | None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[list[dict[str, str]], Session, str, str]]:
        """Stream a reply. Yields (chat messages, session, status, message box). On any failure the
        history is kept, the message stays in the box, and the status says why."""
        session = self.session(session)
        conversation = session.conversation
        history = _chat_messages(conversation)
        stop_event = self.stops.fresh(_session_key(request))
        try:
            conversation.system_prompt = system_prompt or ""
            params = coerce_params(temperature, top_k, top_p, max_new_tokens, 1.0, seed)
            lm = self.model(session)
            lsae, _ = self.sae_for(lm, layer=session.sae_layer)
            probes = [sae_probe(lsae, check_feature(lsae, self.feature(session, lsae)))] if lsae else []
            pending = [*history, {"role": "user", "content": message}]
            for progress in _generate(lm, conversation, message, params, stop_event, probes):
                if progress.record is None:
                    yield [*pending, {"role": "assistant", "content": progress.reply_text}], session, "Generating…", ""
            yield _chat_messages(conversation), session, _turn_status(conversation), ""
        except InspectorError as err:
            yield history, session, f"⚠️ {err}", message
        except Exception as err:  # one user's failure must never break the app or lose the history
            log.exception("chat turn failed")
            yield (
                history,
                session,
                f"⚠️ Unexpected error ({type(err).__name__}: {err}). Your conversation is kept.",
                message,
            )

    def stop(self, request: gr.Request | None = None) -> None:
        self.stops.stop(_session_key(request))

    def undo(self, session: Session | None) -> tuple[list[dict[str, str]], Session, str, str]:
        """Remove the last exchange and put its user message back in the box."""
        session = self.session(session)
        conversation = session.conversation
        if not conversation.records:
            return [], session, "Nothing to undo.", ""
        last_user = conversation.messages[-2]["content"]
        conversation.undo()
        return _chat_messages(conversation), session, "Removed the last turn.", last_user

    def retry(
        self,
        session: Session | None,
        system_prompt: str,
        temperature: float,
        top_k: float,
        top_p: float,
        max_new_tokens: float,
        seed: str | float | None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[list[dict[str, str]], Session, str, str]]:
        """Regenerate the last reply (a new seed unless one is set). If that fails, the old reply is put back."""
        session = self.session(session)
        conversation = session.conversation
        if not conversation.records:
            yield _chat_messages(conversation), session, "Nothing to retry yet.", ""
            return
        kept_messages, kept_records = list(conversation.messages), list(conversation.records)
        _, session, _, message = self.undo(session)
        controls = (system_prompt, temperature, top_k, top_p, max_new_tokens, seed)
        status = ""
        for update in self.chat(message, session, *controls, request=request):
            status = update[2]
            yield update
        if len(conversation.records) < len(kept_records):  # the new reply failed: restore the old one
            conversation.messages, conversation.records = kept_messages, kept_records
            yield _chat_messages(conversation), session, status, ""

    def clear(self, session: Session | None) -> tuple[list, Session, str, str]:
        session = self.session(session)
        session.conversation = Conversation(system_prompt=session.conversation.system_prompt)
        return [], session, "Conversation cleared.", ""

    def switch_model(self, model_id: str, session: Session | None, progress: gr.Progress = gr.Progress()):  # noqa: B008
        """Load another model for this session; a failure keeps the current one and says why.
        Gradio fills `progress` (a progress bar while a model downloads or converts)."""
        session = self.session(session)

        def report(fraction: float, text: str) -> None:
            progress(fraction, desc=text)

        try:
            lm = load_model(model_id, self.settings, progress=report)
        except InspectorError as err:
            current = self.model(session)
            return session, f"⚠️ {err} Still using {current.model_id}.", model_card(current), current.model_id
        if lm.model_id != session.model_id:
            session = Session(model_id=lm.model_id)  # a conversation belongs to the model that wrote it
        return session, f"Loaded {lm.model_id}.", model_card(lm), lm.model_id

    # ---- inspection (each a pure function of the session's record, except attention) -----------
    @user_errors
    def turns(self, session: Session | None) -> gr.Dropdown:
        choices = self.session(session).turn_choices()
        return gr.Dropdown(choices=choices, value=choices[-1][1] if choices else None)

    @user_errors
    def prompt(self, session: Session | None, turn: int | None) -> tuple[str, str, str]:
        record = self.session(session).record(turn)
        if record is None:
            return "", EMPTY_TURN, ""
        warnings = prompt_warnings(record)
        notes = "\n".join(f"- ⚠️ {w}" for w in warnings) or "No warnings: one `<bos>`, nothing trimmed."
        return record.prompt_text, prompt_html(record), notes

    @user_errors
    def tokens(self, session: Session | None, turn: int | None) -> tuple[list, list]:
        record = self.session(session).record(turn)
        if record is None:
            return [], []
        return highlighted_tokens(record), token_rows(record)

    @user_errors
    def tokenize(self, session: Session | None, text: str) -> list:
        return tokenize_rows(self.model(session).tokenizer, text or "")

    @user_errors
    def next_token(self, session: Session | None, turn: int | None, step: float | None):
        record = self.session(session).record(turn)
        if record is None or record.steps.n_steps == 0:
            return None, [], "No generated tokens yet.", [], gr.Slider(maximum=1, value=0)
        step = min(int(step or 0), record.steps.n_steps - 1)
        return (
            next_token_figure(record, step),
            step_rows(record, step),
            step_summary(record, step),
            reply_tokens(record),
            gr.Slider(maximum=max(1, record.steps.n_steps - 1), value=step),  # a slider needs max > min
        )

    @user_errors
    def attention(self, session: Session | None, turn: int | None, layer: float, head: str, query_start: float):
        session = self.session(session)
        record = session.record(turn)
        if record is None:
            return None, None
        lm = self.model(session)
        weights = _attention(lm, record, int(layer))
        head_choice: int | str = "mean" if head == "mean" else int(head)
        return (
            attention_figure(weights, record.tokens, head_choice, int(layer), int(query_start or 0)),
            heads_overview(weights, int(layer), int(query_start or 0)),
        )

    @user_errors
    def sae(
        self,
        session: Session | None,
        turn: int | None,
        layer: float | str | None,
        feature: float | None,
        position: float | None,
    ):
        """(summary, tokens shaded by the feature, per-token bar chart, top features of the chosen token,
        feature card, the feature shown). `layer` empty: the model's default SAE layer."""
        session = self.session(session)
        lm = self.model(session)
        session.sae_layer = _layer_choice(layer)
        lsae, reason = self.sae_for(lm, layer=session.sae_layer)
        if lsae is None:
            return reason, [], None, [], "", gr.skip()  # keep the feature box as the user left it
        feature = check_feature(lsae, self.feature(session, lsae) if feature is None else _whole(feature, "feature"))
        session.sae_feature = feature  # later turns keep this feature's column in their record
        card = feature_card_markdown(lsae, feature)
        record = session.record(turn)
        if record is None:
            return (
                f"SAE `{lsae.name}` (layer {lsae.layer}). Send a message to see its features.",
                [],
                None,
                [],
                card,
                feature,
            )
        acts = _sae_activations(lm, lsae, record, feature)
        values = acts.feature_values
        position = min(_whole(position or 0, "position"), record.n_tokens - 1)
        return (
            feature_summary(acts, feature, values, record.tokens),
            feature_shading(record.tokens, values),
            feature_figure(record.tokens, values, feature, lsae.layer),
            top_feature_rows(acts, position),
            card,
            feature,  # the box shows the feature actually shown (the SAE's default when it was empty)
        )

    @user_errors
    def sae_layer_changed(self, session: Session | None, layer: float | str | None) -> tuple[Session, None]:
        """A new layer is another SAE, where feature numbers mean other things: back to its default feature."""
        session = self.session(session)
        if _layer_choice(layer) != session.sae_layer:
            session.sae_layer, session.sae_feature = _layer_choice(layer), None
        return session, None

    @user_errors
    def search_features(self, session: Session | None, query: str, layer: float | str | None) -> tuple[str, list]:
        """Features of the session's SAE whose top contexts fire on the query's words (shipped SAEs)."""
        session = self.session(session)
        lsae, reason = self.sae_for(self.model(session), layer=_layer_choice(layer))
        if lsae is None:
            return reason, []
        return search_rows(lsae, query or "")

    def sae_layer_choices(self, session: Session | None) -> list[tuple[str, str]]:
        """The layer picker's choices for the session's model: release layers plus shipped ones."""
        try:
            layers = available_layers(self.model(session), self.settings)
        except InspectorError:
            layers = []
        return [("default", ""), *((str(n), str(n)) for n in layers)]

    def sae_layers(self, session: Session | None) -> gr.Dropdown:
        return gr.Dropdown(choices=self.sae_layer_choices(session), value="")


def _layer_choice(layer: float | str | None) -> int | None:
    if layer is None or (isinstance(layer, str) and not layer.strip()):
        return None
    return _whole(float(layer), "layer")


def _whole(value: float | None, name: str) -> int:
    if value is None or float(value) != int(float(value)):
        raise InvalidParameterError(name, "must be a whole number", value)
    return int(value)


@gpu
def _generate(lm: LoadedModel, conversation: Conversation, message: str, params: Any, stop_event: Any, probes: list):
    yield from conversation.stream(lm, message, params, stop_event=stop_event, probes=probes)


@gpu
def _sae_activations(lm: LoadedModel, lsae: LoadedSAE, record: Any, feature: int) -> SparseActivations:
    return turn_activations(lm, lsae, record, feature)


@gpu
def _attention(lm: LoadedModel, record: Any, layer: int):
    return layer_attention(lm, record, layer)


EMPTY_TURN = "<p><em>Send a message: each turn's internals appear here.</em></p>"


def model_card(lm: LoadedModel) -> str:
    return (
        f"**Model:** `{lm.model_id}` — {lm.description}  \n"
        f"{lm.n_layers} layers · {lm.n_heads} heads · context {lm.context_limit} tokens · "
        f"{str(lm.dtype).removeprefix('torch.')} on {lm.device.type} · template: "
        f"{'the tokenizer' if lm.template_source == 'tokenizer' else 'Gemma (prompts/)'}"
    )


def _chat_messages(conversation: Conversation) -> list[dict[str, str]]:
    return [dict(m) for m in conversation.messages]


def _turn_status(conversation: Conversation) -> str:
    record = conversation.records[-1]
    status = (
        f"Turn {len(conversation.records)}: {record.steps.n_steps} tokens, stopped by {record.stop_reason}, "
        f"seed {record.params['seed']}"
    )
    return status + "".join(f"  \n⚠️ {w}" for w in record.warnings)


def _session_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"
