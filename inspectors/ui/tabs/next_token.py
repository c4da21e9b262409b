"""Next token tab: one generation step's candidates, raw softmax beside the distribution after the
sampling warpers; the step is picked by clicking a reply token or with the slider."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session


class NextTokenTab:
    id = "next_token"

    def __init__(self) -> None:
        with gr.Tab("Next token", id=self.id) as self.tab:
            self.reply_chips = gr.HighlightedText(label="Reply tokens: click one to see its step", show_legend=False)
            self.step = gr.Slider(0, 1, value=0, step=1, label="Generation step")
            self.summary = gr.Markdown()
            self.plot = gr.Plot()
            self.table = gr.Dataframe(
                headers=["rank", "token", "id", "raw p", "warped p", "generated"], interactive=False
            )
            with gr.Accordion("What if: branch the reply here", open=True):
                gr.Markdown(
                    "Click a candidate in the table (or type text), then branch: the reply is regenerated from "
                    "this step with that token forced, same settings and seed. The original reply is kept; the "
                    "branch picker under the chat switches between them."
                )
                with gr.Row():
                    self.branch_token = gr.Textbox(label="Token id (click a row)", scale=1, elem_id="gi-branch-id")
                    self.branch_text = gr.Textbox(label="…or text to force", scale=2, max_length=200)
                    self.branch_button = gr.Button("Branch from this step", scale=1, elem_id="gi-branch")
        self.controls = [self.step]
        self.outputs = [self.plot, self.table, self.summary, self.reply_chips, self.step]

    def render(self, session: Session, turn: Any, step: Any, fresh: bool = False) -> dict[Any, Any]:
        panel = session.next_token_panel(turn, 0 if fresh else step)
        return {
            self.plot: panel.figure,
            self.table: panel.rows,
            self.summary: panel.summary,
            self.reply_chips: panel.reply_chips,
            self.step: gr.Slider(maximum=max(1, panel.n_steps - 1), value=panel.step),  # a slider needs max > min
        }
