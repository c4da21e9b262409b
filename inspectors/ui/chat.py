"""The chat column: model picker, chat, message box, buttons, system prompt and sampling controls."""

from __future__ import annotations

from typing import Any

import gradio as gr

from inspectors.settings import Settings


class ChatColumn:
    def __init__(self, settings: Settings) -> None:
        gr.Markdown("# Gemma Inspector")
        self.card = gr.Markdown("Loading the model…")
        # why the app runs on another model than configured, and what to do; hidden when all is well
        self.notice = gr.Markdown(visible=False, elem_id="gi-notice")
        self.retry_default = gr.Button("Retry loading the configured model", visible=False, size="sm")
        with gr.Row():
            choices = list(dict.fromkeys([settings.model_id, *settings.allowed_model_ids]))
            self.model_picker = gr.Dropdown(
                choices, value=settings.model_id, label="Model", allow_custom_value=not settings.hosted, scale=4
            )
            self.load_button = gr.Button("Load model", scale=1)
        self.chatbot = gr.Chatbot(label="Chat", height=460, buttons=["copy", "copy_all"])
        self.message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, lines=1)
        with gr.Row():
            self.send = gr.Button("Send", variant="primary")
            self.stop = gr.Button("Stop")
            self.retry = gr.Button("Retry")
            self.undo = gr.Button("Undo")
            self.clear = gr.Button("Clear")
        self.status = gr.Markdown(elem_id="gi-status")
        self.system_prompt = gr.Textbox(label="System prompt", lines=2, placeholder="Optional")
        with gr.Accordion("Sampling", open=False):
            self.temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
            self.top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)")
            self.top_p = gr.Slider(0, 1, value=1, step=0.01, label="Top-p (1 = off, 0 = greedy)")
            self.max_new_tokens = gr.Slider(
                1,
                settings.max_new_tokens_limit,
                value=min(64, settings.max_new_tokens_limit),
                step=1,
                label="Max new tokens",
            )
            self.seed = gr.Textbox(label="Seed (empty: a new one each turn, shown in the status)")

    @property
    def controls(self) -> list[Any]:
        """The generation settings, in Session.send's order after the message."""
        return [self.system_prompt, self.temperature, self.top_k, self.top_p, self.max_new_tokens, self.seed]

    @property
    def outputs(self) -> list[Any]:
        """What a chat action updates: the chat pane, the status line and the message box."""
        return [self.chatbot, self.status, self.message]
