"""Why tab: how much each earlier token contributed to a chosen reply token, per token, word and segment."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.engine.attribution import DEFAULT_STEPS, METHODS
from inspectors.session import Session


class WhyTab:
    id = "why"

    def __init__(self) -> None:
        with gr.Tab("Why", id=self.id) as self.tab:
            self.reply_chips = gr.HighlightedText(label="Reply tokens: click the one to explain", show_legend=False)
            with gr.Row():
                self.step = gr.Number(value=0, precision=0, label="Reply token (step)")
                self.method = gr.Dropdown(
                    [("gradient x embedding (fast)", METHODS[0]), ("integrated gradients", METHODS[1]),
                     ("occlusion by chat segment", METHODS[2])], value=METHODS[0], label="Method",
                )  # fmt: skip
                self.steps = gr.Number(value=DEFAULT_STEPS, precision=0, label="Integration steps")
            self.summary = gr.Markdown()
            self.warning = gr.Markdown()
            self.shading = gr.HighlightedText(
                label="Earlier tokens shaded by their contribution (green: raised it; red: lowered it)",
                show_legend=False, show_inline_category=False,
            )  # fmt: skip
            self.plot = gr.Plot()
            self.words = gr.Dataframe(headers=["word", "score"], interactive=False, label="Strongest words")
        self.controls = [self.step, self.method, self.steps]
        self.outputs = [self.reply_chips, self.summary, self.warning, self.shading, self.plot, self.words, self.step]

    def render(
        self, session: Session, turn: Any, step: Any, method: Any, steps: Any, fresh: bool = False
    ) -> dict[Any, Any]:
        panel = session.why_panel(turn, 0 if fresh else step, method, steps)
        chips = session.next_token_panel(turn, panel.step).reply_chips if panel.figure is not None else []
        return {
            self.reply_chips: chips, self.summary: panel.summary, self.warning: panel.warning,
            self.shading: panel.shading, self.plot: panel.figure, self.words: panel.words, self.step: panel.step,
        }  # fmt: skip
