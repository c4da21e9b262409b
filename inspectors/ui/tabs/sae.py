"""SAE tab: a feature's activation on every token of the turn, the strongest features of a chosen token,
the feature's card, a layer picker and, for SAEs that ship their top contexts, a search by words."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session


class SAETab:
    id = "sae"

    def __init__(self, default_feature: int | None) -> None:
        with gr.Tab("SAE", id=self.id) as self.tab:
            with gr.Row():
                self.layer = gr.Dropdown([("default", "")], value="", label="SAE layer", scale=1)
                # a Textbox: empty means "the SAE's default feature", which a Number cannot say
                self.feature = gr.Textbox(
                    value="" if default_feature is None else str(default_feature),
                    label="Feature (empty: the SAE's default)",
                    scale=2,
                )
                self.position = gr.Number(value=0, precision=0, label="Token position (its top features)", scale=2)
            self.summary = gr.Markdown()
            self.shading = gr.HighlightedText(
                label="Tokens shaded by the feature's activation", show_legend=False, show_inline_category=False
            )
            self.plot = gr.Plot()
            self.table = gr.Dataframe(headers=["rank", "feature", "activation", "Neuronpedia"], interactive=False)
            self.card = gr.Markdown()
            with gr.Accordion("Find features by words", open=False):
                self.query = gr.Textbox(label="Words", placeholder="e.g. travel", submit_btn=True, max_length=200)
                self.search_text = gr.Markdown()
                self.search_table = gr.Dataframe(
                    headers=["feature", "score", "example (token in [brackets])"],
                    interactive=False,
                    elem_id="gi-search",
                )
        self.controls = [self.layer, self.feature, self.position]
        self.outputs = [self.summary, self.shading, self.plot, self.table, self.card, self.feature, self.position]

    def render(
        self, session: Session, turn: Any, layer: Any, feature: Any, position: Any, fresh: bool = False
    ) -> dict[Any, Any]:
        panel = session.sae_panel(turn, layer, feature, 0 if fresh else position)
        updates = {
            self.summary: panel.summary,
            self.shading: panel.shading,
            self.plot: panel.figure,
            self.table: panel.rows,
            self.card: panel.card,
            self.position: 0 if fresh else gr.skip(),
        }
        # the box shows the feature actually shown; with no SAE it stays as the user left it
        updates[self.feature] = gr.skip() if panel.feature is None else str(panel.feature)
        return updates

    def layer_choices(self, session: Session) -> gr.Dropdown:
        layers = session.shared.sae_layers(session.model_id)
        return gr.Dropdown(choices=[("default", ""), *((str(n), str(n)) for n in layers)], value="")
