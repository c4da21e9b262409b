"""The inspection area: the turn picker and the five tabs, computed lazily.

After a turn only the tab the user is looking at is computed; another tab is computed when it is
opened (the session remembers which tab is visible). Every handler here is a thin adapter: it finds the
request's session and hands the widgets' values to it.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.inputs import NEWEST
from inspectors.session import SessionStore
from inspectors.settings import Settings
from inspectors.ui.common import session_of, shown_errors, with_request
from inspectors.ui.tabs.attention import AttentionTab
from inspectors.ui.tabs.compare import CompareTab
from inspectors.ui.tabs.layers import LayersTab
from inspectors.ui.tabs.next_token import NextTokenTab
from inspectors.ui.tabs.prompt import PromptTab
from inspectors.ui.tabs.sae import SAETab
from inspectors.ui.tabs.tokens import TokensTab
from inspectors.ui.tabs.why import WhyTab

VIEWS = "views"  # concurrency group of the tabs: never the chat's slot


class InspectArea:
    def __init__(self, settings: Settings, store: SessionStore) -> None:
        self.store = store
        self.turn = gr.Dropdown(choices=[], label="Turn to inspect", interactive=True)
        with gr.Tabs(selected=PromptTab.id) as self.tabs:
            self.prompt = PromptTab()
            self.tokens = TokensTab()
            self.next_token = NextTokenTab()
            self.attention = AttentionTab()
            self.layers = LayersTab()
            self.why = WhyTab()
            self.sae = SAETab(settings.sae_feature)
            self.compare = CompareTab()  # computed on its button only: it runs the model
        views = (self.prompt, self.tokens, self.next_token, self.attention, self.layers, self.why, self.sae)
        self.views = {view.id: view for view in views}
        self.inputs = [self.turn, *(c for view in self.views.values() for c in view.controls)]
        self.outputs = list(dict.fromkeys(o for view in self.views.values() for o in view.outputs))

    # ---- rendering --------------------------------------------------------------------------------------
    def _render(self, tab: str, values: tuple, request: gr.Request | None, fresh: bool) -> dict[Any, Any]:
        session = session_of(self.store, request)
        turn, controls = values[0], list(values[1:])
        updates: dict[Any, Any] = {}
        for view in self.views.values():
            mine, controls = controls[: len(view.controls)], controls[len(view.controls) :]
            if view.id == tab:
                updates = view.render(session, turn, *mine, fresh=fresh)
        return updates

    def visible(self, fresh: bool):
        """Handler: the visible tab of the request's session, for the selected turn."""

        @shown_errors
        def render_visible(*values: Any, request: gr.Request) -> dict[Any, Any]:
            session = session_of(self.store, request)
            return self._render(session.visible_tab, values, request, fresh)

        return with_request(render_visible, len(self.inputs))

    def opened(self, tab: str):
        """Handler: the user opened `tab`; remember it and compute it."""

        @shown_errors
        def render_opened(*values: Any, request: gr.Request) -> dict[Any, Any]:
            session_of(self.store, request).show_tab(tab)
            return self._render(tab, values, request, fresh=False)

        return with_request(render_opened, len(self.inputs))

    def only(self, tab: str):
        """Handler: one tab's controls changed; compute that tab."""

        @shown_errors
        def render_only(*values: Any, request: gr.Request) -> dict[Any, Any]:
            return self._render(tab, values, request, fresh=False)

        return with_request(render_only, len(self.inputs))

    @shown_errors
    def turns(self, request: gr.Request) -> tuple[gr.Dropdown, gr.Dropdown]:
        """The turn picker's entries with "Newest" selected; the Compare tab's turn B, the one before it.

        "Newest" is a value of its own, not the newest turn's index: a tab opened in the instant between a
        reply's end and this update sends the picker's value as it was, and "newest" still means the turn
        just made (an index would show the turn before it under a picker that names the new one)."""
        choices = session_of(self.store, request).turn_choices()
        if not choices:
            return gr.Dropdown(choices=[], value=None), gr.Dropdown(choices=[], value=None)
        newest = (f"Newest: {choices[-1][0]}", NEWEST)
        before = choices[-2][1] if len(choices) > 1 else choices[-1][1]
        return gr.Dropdown(choices=[newest, *choices], value=NEWEST), gr.Dropdown(choices=choices, value=before)

    @shown_errors
    def compared(self, turn: Any, against: Any, turn_b: Any, request: gr.Request) -> tuple:
        return self.compare.render(session_of(self.store, request), turn, against, turn_b)

    # ---- wiring -----------------------------------------------------------------------------------------
    def after(self, event: Any) -> Any:
        """Chain onto an event that changed the conversation: new turn list, then the visible tab, fresh."""
        event = event.then(self.turns, None, [self.turn, self.compare.turn_b], api_visibility="private")
        return event.then(
            self.visible(fresh=True), self.inputs, self.outputs, api_visibility="private", concurrency_id=VIEWS
        )

    def wire(self) -> None:
        private = {"api_visibility": "private", "concurrency_id": VIEWS}
        for tab_id, view in self.views.items():
            view.tab.select(self.opened(tab_id), self.inputs, self.outputs, **private)
        self.turn.input(self.visible(fresh=True), self.inputs, self.outputs, **private)

        next_token, attention, sae = self.next_token, self.attention, self.sae
        next_token.step.release(self.only(next_token.id), self.inputs, self.outputs, **private)
        next_token.reply_chips.select(_clicked_index, None, next_token.step, api_visibility="private").then(
            self.only(next_token.id), self.inputs, self.outputs, **private
        )
        attention.layer.release(self.only(attention.id), self.inputs, self.outputs, **private)
        attention.head.input(self.only(attention.id), self.inputs, self.outputs, **private)
        attention.query_start.submit(self.only(attention.id), self.inputs, self.outputs, **private)
        attention.segment_layer.input(self.only(attention.id), self.inputs, self.outputs, **private)
        layers, why = self.layers, self.why
        for box in (layers.with_prompt, layers.exact):
            box.input(self.only(layers.id), self.inputs, self.outputs, **private)
        for control in (layers.start.submit, layers.clicked.input):
            control(self.only(layers.id), self.inputs, self.outputs, **private)
        why.reply_chips.select(_clicked_index, None, why.step, api_visibility="private").then(
            self.only(why.id), self.inputs, self.outputs, **private
        )
        for control in (why.step.submit, why.method.input, why.steps.submit):
            control(self.only(why.id), self.inputs, self.outputs, **private)
        # a click on a reply token in the Next token tab also picks the token the Why tab explains
        next_token.reply_chips.select(_clicked_index, None, why.step, api_visibility="private")
        for box in (sae.feature, sae.position):
            box.submit(self.only(sae.id), self.inputs, self.outputs, **private)
        sae.shading.select(_clicked_index, None, sae.position, api_visibility="private").then(
            self.only(sae.id), self.inputs, self.outputs, **private
        )
        # another layer is another SAE, where feature numbers mean other things: its default feature
        sae.layer.input(lambda: "", None, sae.feature, api_visibility="private", queue=False).then(
            self.only(sae.id), self.inputs, self.outputs, **private
        )
        sae.query.submit(
            self.search, [sae.query, sae.layer], [sae.search_text, sae.search_table],
            api_visibility="private", concurrency_id="search", concurrency_limit=2,
        )  # fmt: skip
        sae.search_table.select(_clicked_feature, None, sae.feature, api_visibility="private").then(
            self.only(sae.id), self.inputs, self.outputs, **private
        )
        compare = self.compare
        compare.button.click(self.compared, [self.turn, *compare.inputs], compare.outputs, **private)
        tokens = self.tokens
        for trigger in (tokens.tokenize_button.click, tokens.free_text.submit):
            trigger(self.tokenize, tokens.free_text, tokens.free_table, **private)

    @shown_errors
    def search(self, query: str, layer: str, request: gr.Request) -> tuple[str, list]:
        panel = session_of(self.store, request).search_panel(query, layer)
        return panel.message, panel.rows

    @shown_errors
    def tokenize(self, text: str, request: gr.Request) -> list:
        return session_of(self.store, request).tokenize(text)


def _clicked_index(evt: gr.SelectData) -> int:
    return int(evt.index) if evt.index is not None else 0


def _clicked_feature(evt: gr.SelectData) -> str | Any:
    """A click anywhere in a search result's row picks that row's feature (its first cell)."""
    row = evt.row_value or []
    return str(int(row[0])) if row else gr.skip()
