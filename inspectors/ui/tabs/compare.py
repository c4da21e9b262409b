"""Compare tab: the turn picked above against another turn, or against its own message without the chat
template (the course's first experiment, live). Computed on request: it runs the model twice."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session
from inspectors.session.compare import AGAINST, NO_TEMPLATE
from inspectors.views.compare import LAYER_HEADERS, SAE_HEADERS, TOP_HEADERS


class CompareTab:
    id = "compare"

    def __init__(self) -> None:
        with gr.Tab("Compare", id=self.id) as self.tab:
            gr.Markdown(
                "The turn picked above (A) against B: another turn, or the same message without the chat "
                "template. Tokens side by side, the first reply token's distributions (KL, top-10 overlap), "
                "the last prompt token's residual per layer (cosine), and the SAE features the two share."
            )
            with gr.Row():
                self.against = gr.Radio(list(AGAINST), value=NO_TEMPLATE, label="Compare with", scale=2)
                self.turn_b = gr.Dropdown(choices=[], label="Turn B (when comparing with a turn)", scale=2)
                self.button = gr.Button("Compare", variant="primary", scale=1, elem_id="gi-compare")
            self.summary = gr.Markdown(elem_id="gi-compare-summary")
            with gr.Row():
                self.tokens_a = gr.HighlightedText(label="A", show_legend=True)
                self.tokens_b = gr.HighlightedText(label="B", show_legend=True)
            self.plot = gr.Plot()
            self.top_table = gr.Dataframe(headers=TOP_HEADERS, interactive=False, label="First reply token")
            self.sae_table = gr.Dataframe(headers=SAE_HEADERS, interactive=False, label="Top SAE features")
            self.layer_table = gr.Dataframe(headers=LAYER_HEADERS, interactive=False, label="Per layer")
        self.inputs = [self.against, self.turn_b]
        self.outputs = [self.summary, self.tokens_a, self.tokens_b, self.plot, self.top_table, self.sae_table,
                        self.layer_table]  # fmt: skip

    def render(self, session: Session, turn: Any, against: Any, turn_b: Any) -> tuple:
        panel = session.compare(turn, turn_b, against)
        if not panel.ok:
            return panel.status, *(gr.skip() for _ in self.outputs[1:])
        return (
            panel.status,
            gr.HighlightedText(panel.tokens_a, label=panel.label_a),
            gr.HighlightedText(panel.tokens_b, label=panel.label_b),
            panel.figure,
            panel.top_rows,
            panel.sae_rows,
            panel.layer_rows,
        )
