"""Gemma Inspector: chat with Gemma and see the current turn's prompt and tokens.

python app.py      # the embedded Gemma 3 270M, offline; GEMMA_INSPECTOR_MODEL picks another
"""

from __future__ import annotations

import functools
import logging

import gradio as gr

from inspectors import Settings, load_model
from inspectors.ui.chat import latest_prompt, latest_tokens, respond


def build_app(settings: Settings | None = None) -> gr.Blocks:
    settings = settings or Settings.load()
    lm = load_model(settings=settings)
    with gr.Blocks(title="Gemma Inspector") as demo:
        gr.Markdown(f"# Gemma Inspector\n**Model:** `{lm.model_id}` — {lm.description}")
        conversation = gr.State(None)  # a Conversation per browser session, created on first message
        with gr.Row():
            with gr.Column(scale=1):
                chatbot = gr.Chatbot(label="Chat", height=480)
                message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False)
                status = gr.Markdown()
                system_prompt = gr.Textbox(label="System prompt", lines=2)
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
                    top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0, 1, value=1, step=0.01, label="Top-p (1 = off)")
                    max_new_tokens = gr.Slider(
                        1, settings.max_new_tokens_limit, value=128, step=1, label="Max new tokens"
                    )
                    seed = gr.Textbox(label="Seed (empty = random, recorded)")
            with gr.Column(scale=1), gr.Tabs():
                with gr.Tab("Prompt"):
                    prompt = gr.Code(label="Exact templated prompt", language=None)
                with gr.Tab("Tokens"):
                    tokens = gr.Dataframe(headers=["position", "id", "token", "part"], interactive=False)
        message.submit(
            functools.partial(respond, lm),
            [message, conversation, system_prompt, temperature, top_k, top_p, max_new_tokens, seed],
            [chatbot, conversation, status],
            api_name="chat",
            concurrency_limit=1,
        ).then(lambda: "", None, message).then(latest_prompt, conversation, prompt).then(
            latest_tokens, conversation, tokens
        )
    demo.queue(max_size=32)
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    build_app().launch()
