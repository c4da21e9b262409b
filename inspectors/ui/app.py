"""The Gradio app: the chat column beside the inspection tabs, the Labs below, and the API.

Building loads no model: the page is served at once, and the session's model loads on first use (the
page's load event shows its card). Wiring only; every handler is a thin adapter to the request's
`Session`, in its own concurrency group, so a search or a lab never holds up anyone's chat.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from inspectors.session import SessionStore, Shared
from inspectors.settings import Settings
from inspectors.ui.api import Api
from inspectors.ui.chat import ChatColumn
from inspectors.ui.common import LENS_CLICKS_JS, GradioProgress, arrived_at, session_of, shown_errors, with_request
from inspectors.ui.inspect import InspectArea
from inspectors.ui.labs import build_labs_tab
from inspectors.views.model import model_card

CHAT = "chat"  # one reply at a time: generation holds the shared model's lock anyway


def build_app(settings: Settings | None = None, store: SessionStore | None = None) -> gr.Blocks:
    settings = settings or Settings.load()
    store = store if store is not None else SessionStore(Shared(settings))
    with gr.Blocks(title="Gemma Inspector") as demo:
        Api(store).register()  # first, so the API's endpoints keep their names (the UI's events are private)
        with gr.Row():
            with gr.Column(scale=5):
                chat = ChatColumn(settings)
            with gr.Column(scale=6):
                area = InspectArea(settings, store)
        with gr.Accordion("Labs: the course's experiments, rerun on the current model", open=False, elem_id="gi-labs"):
            build_labs_tab(store)
        _wire(demo, store, chat, area)
        demo.unload(_released(store))
    demo.queue(max_size=64, default_concurrency_limit=4)
    demo.gemma_inspector_store = store  # tests and app.py reach the sessions through the app
    return demo


def _wire(demo: gr.Blocks, store: SessionStore, chat: ChatColumn, area: InspectArea) -> None:
    private = {"api_visibility": "private"}
    area.wire()

    def branches(request: gr.Request) -> gr.Dropdown:
        session = session_of(store, request)
        return gr.Dropdown(choices=session.branch_choices(), value=session.conversation.active)

    def after(event: Any) -> Any:
        """The conversation changed: its branch list, its turn list, the visible tab."""
        return area.after(event.then(shown_errors(branches), None, chat.branch_picker, **private))

    def send(message: str, *controls: Any, request: gr.Request) -> Iterator[tuple]:
        session = session_of(store, request)
        for update in session.send(message, *controls, submitted_at=arrived_at(request)):
            yield update.messages, update.status, update.box

    def retry(*controls: Any, request: gr.Request) -> Iterator[tuple]:
        for update in session_of(store, request).retry(*controls):
            yield update.messages, update.status, update.box

    def undo(request: gr.Request) -> tuple:
        update = session_of(store, request).undo()
        return update.messages, update.status, update.box

    def clear(request: gr.Request) -> tuple:
        update = session_of(store, request).clear()
        return update.messages, update.status, update.box

    def stop(request: gr.Request) -> str:
        return session_of(store, request).stop()

    for trigger in (chat.message.submit, chat.send.click):
        event = trigger(
            with_request(send, 1 + len(chat.controls)), [chat.message, *chat.controls], chat.outputs,
            concurrency_id=CHAT, concurrency_limit=1, **private,
        )  # fmt: skip
        after(event)
    retried = chat.retry.click(
        with_request(retry, len(chat.controls)),
        chat.controls,
        chat.outputs,
        concurrency_id=CHAT,
        concurrency_limit=1,
        **private,
    )
    after(retried)
    after(chat.undo.click(undo, None, chat.outputs, queue=False, **private))
    after(chat.clear.click(clear, None, chat.outputs, queue=False, **private))
    chat.stop.click(stop, None, chat.status, queue=False, **private)
    _wire_what_if(store, chat, area, after)
    _wire_share(store, chat, area, after)

    model_outputs = [chat.status, chat.card, chat.model_picker, chat.notice, chat.retry_default]
    loaded = chat.load_button.click(
        _load_model(store), [chat.model_picker], model_outputs, concurrency_id="models", concurrency_limit=1, **private
    )
    # the chat pane is left as it is: a failed load changes nothing, a successful one keeps the history
    area.after(loaded.then(_model_controls(store, area), None, _model_control_outputs(area), **private))

    retried = chat.retry_default.click(
        _retry_default(store), None, model_outputs, concurrency_id="models", concurrency_limit=1, **private
    )
    area.after(retried.then(_model_controls(store, area), None, _model_control_outputs(area), **private))
    page_outputs = [chat.card, chat.model_picker, chat.chatbot, chat.notice, chat.retry_default]
    demo.load(None, None, None, js=LENS_CLICKS_JS, **private)
    demo.load(_page_loaded(store), None, page_outputs, **private).then(
        _model_controls(store, area), None, _model_control_outputs(area), **private
    ).then(shown_errors(branches), None, chat.branch_picker, **private)


def _wire_what_if(store: SessionStore, chat: ChatColumn, area: InspectArea, after: Any) -> None:
    """Branch from the Next token tab, steer from the SAE tab, switch branches under the chat."""
    private = {"api_visibility": "private"}
    next_token, sae = area.next_token, area.sae

    def branch(turn: Any, step: Any, token_id: Any, text: Any, request: gr.Request) -> Iterator[tuple]:
        session = session_of(store, request)
        for update in session.branch(turn, step, token_id, text, submitted_at=arrived_at(request)):
            yield update.messages, update.status, gr.skip()

    def steer(*values: Any, request: gr.Request) -> Iterator[tuple]:
        n = len(sae.steer_inputs)
        turn, steering, controls = values[0], sae.steer_arguments(*values[1 : 1 + n]), values[1 + n :]
        message, rest = steering[0], steering[1:]
        session = session_of(store, request)
        for update in session.steer(message, turn, *rest, *controls, submitted_at=arrived_at(request)):
            chat_part = (update.chat.messages, update.chat.status, update.chat.box)
            yield *chat_part, update.default_text, update.steered_text, update.summary, update.figure, update.rows

    def switch(branch_index: Any, request: gr.Request) -> tuple:
        update = session_of(store, request).switch_branch(branch_index)
        return update.messages, update.status, update.box

    branched = next_token.branch_button.click(
        with_request(branch, 4), [area.turn, next_token.step, next_token.branch_token, next_token.branch_text],
        chat.outputs, concurrency_id=CHAT, concurrency_limit=1, **private,
    )  # fmt: skip
    after(branched)
    next_token.table.select(_clicked_token_id, None, next_token.branch_token, **private)
    steered = sae.steer_button.click(
        with_request(steer, 1 + len(sae.steer_inputs) + len(chat.controls)),
        [area.turn, *sae.steer_inputs, *chat.controls], [*chat.outputs, *sae.steer_outputs],
        concurrency_id=CHAT, concurrency_limit=1, **private,
    )  # fmt: skip
    after(steered)
    after(chat.branch_picker.input(switch, chat.branch_picker, chat.outputs, queue=False, **private))


def _wire_share(store: SessionStore, chat: ChatColumn, area: InspectArea, after: Any) -> None:
    """Save the picked turn or the conversation, open a saved file, re-run a turn."""
    private = {"api_visibility": "private"}

    def saver(kind: str) -> Any:
        @shown_errors
        def save(turn: Any, what: Any, request: gr.Request) -> tuple:
            saved = session_of(store, request).save(turn, what, kind)
            return (saved.path if saved.ok else None), saved.status

        return save

    for button, kind in ((chat.save_json, "json"), (chat.save_html, "html")):
        button.click(saver(kind), [area.turn, chat.save_what], [chat.saved_file, chat.status],
                     concurrency_id="share", concurrency_limit=2, **private)  # fmt: skip

    def open_saved(file: Any, request: gr.Request) -> tuple:
        session = session_of(store, request)
        update = session.open_saved(file)
        system = session.conversation.system_prompt if update.ok else gr.skip()
        return update.messages, update.status, gr.skip(), system

    def rerun(turn: Any, request: gr.Request) -> Iterator[tuple]:
        session = session_of(store, request)
        for update in session.rerun(turn, submitted_at=arrived_at(request)):
            yield update.messages, update.status, gr.skip()

    opened = chat.open_file.upload(
        open_saved, chat.open_file, [*chat.outputs, chat.system_prompt], concurrency_id=CHAT, concurrency_limit=1,
        **private,
    )  # fmt: skip
    after(opened)
    rerun_event = chat.rerun.click(
        with_request(rerun, 1), area.turn, chat.outputs, concurrency_id=CHAT, concurrency_limit=1, **private
    )
    after(rerun_event)


def _clicked_token_id(evt: gr.SelectData) -> Any:
    """A click anywhere in a candidate's row picks its token id (the row's third cell)."""
    row = evt.row_value or []
    return str(int(row[2])) if len(row) > 2 else gr.skip()


def _notice(store: SessionStore) -> tuple:
    """The banner and its Retry button: shown only while the configured model is not the one running."""
    notice = store.shared.notice
    return gr.Markdown(notice, visible=bool(notice)), gr.Button(visible=bool(notice))


def _load_model(store: SessionStore) -> Any:
    @shown_errors
    def load_model(model_id: str, progress: gr.Progress = gr.Progress(), request: gr.Request = None) -> tuple:  # noqa: B008
        session = session_of(store, request)
        switch = session.load_model(model_id, GradioProgress(progress))
        return switch.status, model_card(session.model()), switch.model_id, *_notice(store)

    return load_model


def _retry_default(store: SessionStore) -> Any:
    @shown_errors
    def retry_default(progress: gr.Progress = gr.Progress(), request: gr.Request = None) -> tuple:  # noqa: B008
        session = session_of(store, request)
        switch = session.retry_default_model(GradioProgress(progress))
        return switch.status, model_card(session.model()), switch.model_id, *_notice(store)

    return retry_default


def _page_loaded(store: SessionStore) -> Any:
    @shown_errors
    def page_loaded(request: gr.Request) -> tuple:
        """A new tab: its session's model (loaded here on the first visit), its card, its chat so far, and
        the banner when the configured model could not be loaded."""
        session = session_of(store, request)
        return model_card(session.model()), session.model_id, session.chat_messages(), *_notice(store)

    return page_loaded


def _model_control_outputs(area: InspectArea) -> list[Any]:
    return [area.attention.layer, area.attention.head, area.sae.layer]


def _model_controls(store: SessionStore, area: InspectArea) -> Any:
    @shown_errors
    def model_controls(request: gr.Request) -> tuple:
        """Widget ranges that follow the session's model: attention layers and heads, SAE layers."""
        session = session_of(store, request)
        lm = session.model()
        return (
            gr.Slider(maximum=max(1, lm.n_layers - 1), value=lm.n_layers // 2),
            gr.Dropdown(choices=["mean", *map(str, range(lm.n_heads))], value="mean"),
            area.sae.layer_choices(session),
        )

    return model_controls


def _released(store: SessionStore) -> Any:
    def released(request: gr.Request) -> None:
        store.release(getattr(request, "session_hash", None))

    return released
