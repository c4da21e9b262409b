"""Attention tab: one head's (or the mean's) heatmap of a layer and every head of it (switching heads reuses
the layer the session already computed); for long turns each query's strongest keys only; and where the
reply's attention goes, by chat segment."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session


class AttentionTab:
    id = "attention"

    def __init__(self) -> None:
        with gr.Tab("Attention", id=self.id) as self.tab:
            with gr.Row():
                # ranges follow the turn's model when the tab renders
                self.layer = gr.Slider(0, 1, value=0, step=1, label="Layer")
                self.head = gr.Dropdown(["mean"], value="mean", label="Head (or the mean over heads)")
                self.query_start = gr.Number(value=0, precision=0, label="First query row (long turns)")
            self.heatmap = gr.Plot()
            self.overview = gr.Plot()
            with gr.Accordion("By chat segment: where the reply's attention goes", open=True):
                self.segment_layer = gr.Dropdown(
                    ["mean"], value="mean", label="Layer for the bars (or the mean over layers)"
                )
                self.segment_summary = gr.Markdown()
                self.segment_bars = gr.Plot()
                self.segment_layers = gr.Plot()
        self.controls = [self.layer, self.head, self.query_start, self.segment_layer]
        self.outputs = [
            self.heatmap, self.overview, self.layer, self.head, self.query_start, self.segment_layer,
            self.segment_summary, self.segment_bars, self.segment_layers,
        ]  # fmt: skip

    def render(
        self, session: Session, turn: Any, layer: Any, head: Any, query_start: Any, segment_layer: Any,
        fresh: bool = False,
    ) -> dict[Any, Any]:  # fmt: skip
        panel = session.attention_panel(turn, layer, head, 0 if fresh else query_start)
        segments = session.turn_attention_panel(turn, segment_layer, panel.head)
        heads = ["mean", *map(str, range(panel.n_heads))]
        return {
            self.heatmap: panel.heatmap,
            self.overview: gr.Plot(value=panel.overview, visible=panel.overview is not None),
            self.layer: gr.Slider(maximum=max(1, panel.n_layers - 1), value=panel.layer),
            self.head: gr.Dropdown(choices=heads, value=str(panel.head)),
            self.query_start: panel.query_start,
            self.segment_layer: gr.Dropdown(choices=["mean", *map(str, range(panel.n_layers))]),
            self.segment_summary: segments.summary,
            self.segment_bars: segments.stacked,
            self.segment_layers: segments.by_layer,
        }
