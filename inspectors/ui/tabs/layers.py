"""Layers tab: the logit lens of the turn, a commitment strip over the reply, and a cell's top-10."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session


class LayersTab:
    id = "layers"

    def __init__(self) -> None:
        with gr.Tab("Layers", id=self.id) as self.tab:
            with gr.Row():
                self.with_prompt = gr.Checkbox(value=False, label="Include the prompt's positions")
                self.start = gr.Number(value=0, precision=0, label="First position shown (long turns)")
                self.exact = gr.Checkbox(
                    value=False, label="Exact: float32 at every layer (slower on a CPU)",
                    info="Off: the layers before the last scan the vocabulary in bfloat16 where the CPU is faster",
                )  # fmt: skip
            self.summary = gr.Markdown()
            self.commitment = gr.HighlightedText(
                label="Commitment: from which layer on the lens's top token is the token that came",
                show_legend=False,
            )
            self.plot = gr.Plot(elem_id="gi-lens")
            self.cell = gr.Dataframe(
                headers=["rank", "token", "id", "p"], interactive=False, label="Top-10 of the clicked cell"
            )
            # The clicked cell, set by the plot's click (Gradio's Plot reports no clicks: a small script does)
            self.clicked = gr.Textbox(elem_id="gi-lens-cell", elem_classes=["gi-hidden"], show_label=False)
        self.controls = [self.with_prompt, self.start, self.exact, self.clicked]
        self.outputs = [self.summary, self.commitment, self.plot, self.cell]

    def render(
        self, session: Session, turn: Any, with_prompt: Any, start: Any, exact: Any, clicked: Any, fresh: bool = False
    ) -> dict[Any, Any]:
        layer, column = _cell(clicked) if not fresh else (None, 0)
        precision = "float32" if exact else "auto"
        panel = session.lens_panel(turn, with_prompt, 0 if fresh else start, layer, column, precision)
        return {self.summary: panel.summary, self.commitment: panel.commitment, self.plot: panel.figure,
                self.cell: panel.cell}  # fmt: skip


def _cell(clicked: Any) -> tuple[int | None, int]:
    """'layer,column' from the plot's click (empty: the default cell)."""
    try:
        layer, column = (int(x) for x in str(clicked or "").split(","))
    except ValueError:
        return None, 0
    return layer, column
