"""SAE tab: a feature's activation on every token of the turn, the strongest features of a chosen token,
the feature's card, a layer picker and, for SAEs that ship their top contexts, a search by words."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.session import Session
from inspectors.session.whatif import FEATURES, MAX_STRENGTH, MEAN_DIFFERENCE, SCALES, STEER_MODES


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
            self._steering_controls()
        self.controls = [self.layer, self.feature, self.position]
        self.outputs = [self.summary, self.shading, self.plot, self.table, self.card, self.feature, self.position]

    def _steering_controls(self) -> None:
        with gr.Accordion("What if: steer a reply with features", open=False, elem_id="gi-steer"):
            gr.Markdown(
                "Adds strength x the features' decoder directions to the residual stream after the SAE's layer, "
                "at every position, for one reply, generated twice with one seed: default and steered. "
                "Strength is a multiple of the layer's typical residual norm (Gemma's residuals are in the "
                "thousands: a raw 1 would do nothing) or of the feature's peak activation. Activation addition "
                "needs no SAE: the difference of mean residuals between two prompt sets."
            )
            with gr.Row():
                self.steer_mode = gr.Radio(list(STEER_MODES), value=FEATURES, label="Steer with", scale=2)
                self.steer_features = gr.Textbox(label="Features (empty: the one shown above)", scale=2)
                self.steer_layer = gr.Number(value=6, precision=0, label="Layer (activation addition)", scale=1)
            with gr.Row():
                limit = MAX_STRENGTH[SCALES[0]]
                self.steer_strength = gr.Slider(
                    -limit, limit, value=0.1, step=0.01, label="Strength (0.05 to 0.2 of the residual norm steers; "
                    "much more and a small model babbles)", scale=3,
                )  # fmt: skip
                self.steer_scale = gr.Radio(list(SCALES), value=SCALES[0], label="Strength is relative to", scale=2)
            with gr.Row(visible=False) as self.contrast_row:
                self.prompts_a = gr.Textbox(label="Prompts toward (one per line)", lines=3, value="I love this.")
                self.prompts_b = gr.Textbox(label="Prompts away from (one per line)", lines=3, value="I hate this.")
            self.steer_message = gr.Textbox(
                label="Message to reply to (empty: regenerate the turn picked above)", max_length=4000
            )
            self.steer_button = gr.Button("Generate default and steered", variant="primary", elem_id="gi-steer-go")
            with gr.Row():
                self.default_pane = gr.Textbox(label="Default reply", lines=6, interactive=False)
                self.steered_pane = gr.Textbox(label="Steered reply", lines=6, interactive=False, elem_id="gi-steered")
            self.steer_summary = gr.Markdown()
            self.steer_plot = gr.Plot()
            self.steer_table = gr.Dataframe(
                headers=["step", "default token", "steered token", "KL (nats)"], interactive=False
            )
        self.steer_mode.input(
            lambda mode: gr.Row(visible=mode == MEAN_DIFFERENCE), self.steer_mode, self.contrast_row,
            queue=False, api_visibility="private",
        )  # fmt: skip
        self.steer_scale.input(
            lambda scale: gr.Slider(minimum=-MAX_STRENGTH[scale], maximum=MAX_STRENGTH[scale]),
            self.steer_scale, self.steer_strength, queue=False, api_visibility="private",
        )  # fmt: skip

    @property
    def steer_inputs(self) -> list[Any]:
        """In `steer_arguments`' order."""
        return [self.steer_message, self.steer_mode, self.layer, self.steer_layer, self.steer_features, self.feature,
                self.steer_strength, self.steer_scale, self.prompts_a, self.prompts_b]  # fmt: skip

    @property
    def steer_outputs(self) -> list[Any]:
        return [self.default_pane, self.steered_pane, self.steer_summary, self.steer_plot, self.steer_table]

    @staticmethod
    def steer_arguments(
        message: Any, mode: Any, sae_layer: Any, contrast_layer: Any, features: Any, shown_feature: Any, *rest: Any
    ) -> tuple:
        """Session.steer's (message, mode, layer, features, strength, scale, prompts_a, prompts_b): the layer is
        the SAE's for features and the typed one for activation addition; no features typed, the one shown."""
        layer = contrast_layer if mode == MEAN_DIFFERENCE else sae_layer
        typed = features if isinstance(features, str) and features.strip() else shown_feature
        return (message, mode, layer, typed, *rest)

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
