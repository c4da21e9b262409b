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
        # a branch or a steered reply forks the conversation: the chat continues the branch picked here
        self.branch_picker = gr.Dropdown(
            choices=[], label="Branch of the conversation", interactive=True, elem_id="gi-branches"
        )
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
        with gr.Accordion("Save, share, open, re-run", open=False, elem_id="gi-share"):
            with gr.Row():
                self.save_what = gr.Radio(
                    [("the picked turn", "turn"), ("the whole conversation", "conversation")], value="turn",
                    label="Save", scale=2,
                )  # fmt: skip
                self.save_json = gr.Button("JSON (opens again here)", scale=1, elem_id="gi-save-json")
                self.save_html = gr.Button("Offline HTML page", scale=1, elem_id="gi-save-html")
            self.saved_file = gr.File(label="Download", interactive=False, elem_id="gi-saved")
            self.open_file = gr.File(label="Open a saved JSON (replaces this chat)", file_types=[".json"],
                                     elem_id="gi-open")  # fmt: skip
            self.rerun = gr.Button("Re-run the picked turn on the loaded model (same seed and settings)")

    @property
    def controls(self) -> list[Any]:
        """The generation settings, in Session.send's order after the message."""
        return [self.system_prompt, self.temperature, self.top_k, self.top_p, self.max_new_tokens, self.seed]

    @property
    def outputs(self) -> list[Any]:
        """What a chat action updates: the chat pane, the status line and the message box."""
        return [self.chatbot, self.status, self.message]
