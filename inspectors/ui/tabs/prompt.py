"""Prompt tab: the exact templated string, special tokens marked, and what is off about it."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session
from inspectors.session.panels import EMPTY_TURN


class PromptTab:
    id = "prompt"

    def __init__(self) -> None:
        with gr.Tab("Prompt", id=self.id) as self.tab:
            self.notes = gr.Markdown()
            self.marked = gr.HTML(EMPTY_TURN)
            # A Textbox, not gr.Code: Code strips the trailing newline the model actually saw.
            self.text = gr.Textbox(
                label="Exact templated prompt",
                lines=6,
                max_lines=30,
                buttons=["copy"],
                interactive=False,
                elem_id="gi-prompt-text",
            )
        self.controls: list[Any] = []
        self.outputs = [self.notes, self.marked, self.text]

    def render(self, session: Session, turn: Any, fresh: bool = False) -> dict[Any, Any]:
        panel = session.prompt_panel(turn)
        return {self.notes: panel.notes, self.marked: panel.html, self.text: panel.text}
