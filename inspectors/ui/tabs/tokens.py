"""Tokens tab: every token with its id and part (template / prompt / reply), and a free-text tokenizer."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session
from inspectors.views.tokens import PART_COLORS


class TokensTab:
    id = "tokens"

    def __init__(self) -> None:
        with gr.Tab("Tokens", id=self.id) as self.tab:
            self.chips = gr.HighlightedText(
                label="Tokens (template / prompt / reply; ␣ space, ↵ newline)",
                color_map=PART_COLORS,
                show_legend=True,
                combine_adjacent=False,
            )
            self.table = gr.Dataframe(headers=["position", "id", "token", "part"], interactive=False)
            with gr.Row():
                self.free_text = gr.Textbox(label="Tokenize any text", scale=4)
                self.tokenize_button = gr.Button("Tokenize", scale=1)
            self.free_table = gr.Dataframe(headers=["position", "id", "token"], interactive=False)
        self.controls: list[Any] = []
        self.outputs = [self.chips, self.table]

    def render(self, session: Session, turn: Any, fresh: bool = False) -> dict[Any, Any]:
        panel = session.tokens_panel(turn)
        return {self.chips: panel.chips, self.table: panel.rows}
