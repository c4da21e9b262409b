"""The Blocks layout: chat on the left, the current turn's tabs on the right. Wiring only."""

from __future__ import annotations

import gradio as gr

from inspectors.engine.loading import load_model
from inspectors.settings import Settings
from inspectors.ui.handlers import EMPTY_TURN, Handlers, model_card
from inspectors.ui.labs import build_labs_tab
from inspectors.ui.session import Session
from inspectors.views.tokens import PART_COLORS

CSS = """
.gi-prompt {white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; line-height: 1.5;}
.gi-special {background: #c7d2fe; color: #312e81; border-radius: 4px; padding: 0 3px; font-weight: 600;}
.gi-tokens {display: flex; flex-wrap: wrap; gap: 3px; font-family: ui-monospace, monospace; font-size: 13px;}
.gi-tok {border-radius: 4px; padding: 1px 4px;}
"""
MODEL_LOCK = "model"  # one model call at a time per process: the weights are shared


def build_app(settings: Settings | None = None) -> gr.Blocks:
    settings = settings or Settings.load()
    lm = load_model(settings=settings)
    handlers = Handlers(settings)
    handlers.sae_for(lm)  # start loading the default model's SAE in the background
    with gr.Blocks(title="Gemma Inspector") as demo:
        session = gr.State(None)  # a Session per browser tab, created on first use
        with gr.Row():
            with gr.Column(scale=5):
                gr.Markdown("# Gemma Inspector")
                card = gr.Markdown(model_card(lm))
                with gr.Row():
                    choices = list(dict.fromkeys([settings.model_id, *settings.allowed_model_ids]))
                    model_picker = gr.Dropdown(
                        choices, value=lm.model_id, label="Model", allow_custom_value=not settings.hosted, scale=4
                    )
                    load_button = gr.Button("Load model", scale=1)
                chatbot = gr.Chatbot(label="Chat", height=460, buttons=["copy", "copy_all"])
                message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, lines=1)
                with gr.Row():
                    send = gr.Button("Send", variant="primary")
                    stop = gr.Button("Stop")
                    retry = gr.Button("Retry")
                    undo = gr.Button("Undo")
                    clear = gr.Button("Clear")
                status = gr.Markdown(elem_id="gi-status")
                system_prompt = gr.Textbox(label="System prompt", lines=2, placeholder="Optional")
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
                    top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0, 1, value=1, step=0.01, label="Top-p (1 = off, 0 = greedy)")
                    max_new_tokens = gr.Slider(
                        1,
                        settings.max_new_tokens_limit,
                        value=min(64, settings.max_new_tokens_limit),
                        step=1,
                        label="Max new tokens",
                    )
                    seed = gr.Textbox(label="Seed (empty: a new one each turn, shown in the status)")
            with gr.Column(scale=6):
                # custom values: API clients name a turn by index without the browser having listed it
                turn = gr.Dropdown(choices=[], label="Turn to inspect", interactive=True, allow_custom_value=True)
                with gr.Tabs():
                    with gr.Tab("Prompt"):
                        prompt_warnings = gr.Markdown()
                        prompt_marked = gr.HTML(EMPTY_TURN)
                        # A Textbox, not gr.Code: Code strips the trailing newline the model actually saw.
                        prompt_text = gr.Textbox(
                            label="Exact templated prompt", lines=6, max_lines=30, buttons=["copy"], interactive=False
                        )
                    with gr.Tab("Tokens"):
                        token_chips = gr.HighlightedText(
                            label="Tokens (template / prompt / reply; ␣ space, ↵ newline)",
                            color_map=PART_COLORS,
                            show_legend=True,
                            combine_adjacent=False,
                        )
                        token_table = gr.Dataframe(headers=["position", "id", "token", "part"], interactive=False)
                        with gr.Row():
                            free_text = gr.Textbox(label="Tokenize any text", scale=4)
                            tokenize_button = gr.Button("Tokenize", scale=1)
                        free_table = gr.Dataframe(headers=["position", "id", "token"], interactive=False)
                    with gr.Tab("Next token"):
                        reply_chips = gr.HighlightedText(
                            label="Reply tokens: click one to see its step", show_legend=False
                        )
                        step = gr.Slider(0, 1, value=0, step=1, label="Generation step")
                        step_text = gr.Markdown()
                        step_plot = gr.Plot()
                        step_table = gr.Dataframe(
                            headers=["rank", "token", "id", "raw p", "warped p", "generated"], interactive=False
                        )
                    with gr.Tab("Attention"):
                        with gr.Row():
                            layer = gr.Slider(0, lm.n_layers - 1, value=lm.n_layers // 2, step=1, label="Layer")
                            head = gr.Radio(["mean", *map(str, range(lm.n_heads))], value="0", label="Head")
                            query_start = gr.Number(value=0, precision=0, label="First query row (long turns)")
                        attention_plot = gr.Plot()
                        heads_plot = gr.Plot()
                    with gr.Tab("SAE"):
                        with gr.Row():
                            sae_layer = gr.Dropdown(
                                handlers.sae_layer_choices(None), value="", label="SAE layer", scale=1
                            )
                            feature = gr.Number(
                                value=settings.sae_feature,
                                precision=0,
                                label="Feature (empty: the SAE's default)",
                                scale=2,
                            )
                            position = gr.Number(
                                value=0, precision=0, label="Token position (its top features)", scale=2
                            )
                        sae_text = gr.Markdown()
                        sae_tokens = gr.HighlightedText(
                            label="Tokens shaded by the feature's activation",
                            show_legend=False,
                            show_inline_category=False,
                        )
                        sae_plot = gr.Plot()
                        sae_table = gr.Dataframe(
                            headers=["rank", "feature", "activation", "Neuronpedia"], interactive=False
                        )
                        sae_card = gr.Markdown()
                        with gr.Accordion("Find features by words", open=False):
                            with gr.Row():
                                search_query = gr.Textbox(
                                    label="Words", placeholder="e.g. travel", scale=4, submit_btn=True
                                )
                            search_text = gr.Markdown()
                            search_table = gr.Dataframe(
                                headers=["feature", "score", "example (token in [brackets])"],
                                interactive=False,
                                elem_id="gi-search",
                            )

        with gr.Accordion("Labs: the course's experiments, rerun on the current model", open=False, elem_id="gi-labs"):
            build_labs_tab(session, handlers.model)

        chat_inputs = [message, session, system_prompt, temperature, top_k, top_p, max_new_tokens, seed]
        chat_outputs = [chatbot, session, status, message]
        views = [
            (handlers.prompt, [session, turn], [prompt_text, prompt_marked, prompt_warnings], "inspect_prompt"),
            (handlers.tokens, [session, turn], [token_chips, token_table], "inspect_tokens"),
            (
                handlers.next_token,
                [session, turn, step],
                [step_plot, step_table, step_text, reply_chips, step],
                "next_token",
            ),
            (handlers.attention, [session, turn, layer, head, query_start], [attention_plot, heads_plot], "attention"),
            (
                handlers.sae,
                [session, turn, sae_layer, feature, position],
                [sae_text, sae_tokens, sae_plot, sae_table, sae_card, feature],
                "sae",
            ),
        ]

        def refresh(event: gr.events.Dependency) -> None:
            """After a turn: update the turn list, then every tab."""
            event = event.then(handlers.turns, session, turn, api_name=False)
            event = event.then(lambda: 0, None, step, api_name=False)  # a new turn opens on its first reply token
            for fn, inputs, outputs, _ in views:
                event = event.then(fn, inputs, outputs, api_name=False, concurrency_id=MODEL_LOCK)

        for trigger in (message.submit, send.click):
            refresh(
                trigger(
                    handlers.chat,
                    chat_inputs,
                    chat_outputs,
                    api_name="chat" if trigger == message.submit else False,
                    concurrency_limit=1,
                    concurrency_id=MODEL_LOCK,
                )
            )
        refresh(
            retry.click(
                handlers.retry,
                [session, system_prompt, temperature, top_k, top_p, max_new_tokens, seed],
                chat_outputs,
                api_name="retry",
                concurrency_limit=1,
                concurrency_id=MODEL_LOCK,
            )
        )
        refresh(undo.click(handlers.undo, session, chat_outputs, api_name="undo"))
        refresh(clear.click(handlers.clear, session, chat_outputs, api_name="clear"))
        stop.click(handlers.stop, None, None, api_name="stop", concurrency_limit=None)

        for fn, inputs, outputs, name in views:  # picking a turn refreshes each tab; each is an API endpoint
            turn.input(fn, inputs, outputs, api_name=name, concurrency_id=MODEL_LOCK)
        step.release(handlers.next_token, [session, turn, step], views[2][2], api_name=False)
        reply_chips.select(_clicked_step, None, step, api_name=False).then(
            handlers.next_token, [session, turn, step], views[2][2], api_name=False
        )
        for control in (layer, head, query_start):
            control.change(handlers.attention, views[3][1], views[3][2], api_name=False, concurrency_id=MODEL_LOCK)
        for control in (feature, position):
            control.submit(handlers.sae, views[4][1], views[4][2], api_name=False, concurrency_id=MODEL_LOCK)
        sae_tokens.select(_clicked_step, None, position, api_name=False).then(
            handlers.sae, views[4][1], views[4][2], api_name=False, concurrency_id=MODEL_LOCK
        )
        sae_layer.input(handlers.sae_layer_changed, [session, sae_layer], [session, feature], api_name=False).then(
            handlers.sae, views[4][1], views[4][2], api_name=False, concurrency_id=MODEL_LOCK
        )
        search_query.submit(
            handlers.search_features,
            [session, search_query, sae_layer],
            [search_text, search_table],
            api_name="search_features",
            concurrency_id=MODEL_LOCK,
        )
        search_table.select(_clicked_feature, None, feature, api_name=False).then(
            handlers.sae, views[4][1], views[4][2], api_name=False, concurrency_id=MODEL_LOCK
        )
        tokenize_button.click(handlers.tokenize, [session, free_text], free_table, api_name="tokenize")
        free_text.submit(handlers.tokenize, [session, free_text], free_table, api_name=False)

        load_event = load_button.click(
            handlers.switch_model,
            [model_picker, session],
            [session, status, card, model_picker],
            api_name="load_model",
            concurrency_limit=1,
            concurrency_id=MODEL_LOCK,
        )
        load_event.then(_attention_controls(handlers), session, [layer, head], api_name=False).then(
            handlers.sae_layers, session, sae_layer, api_name=False
        ).then(lambda s: ([], "", s), session, [chatbot, message, session], api_name=False)
        refresh(load_event)
    demo.queue(max_size=64, default_concurrency_limit=4)
    return demo


def _clicked_step(evt: gr.SelectData) -> int:
    return int(evt.index) if evt.index is not None else 0


def _clicked_feature(evt: gr.SelectData) -> int | None:
    """A click anywhere in a search result's row picks that row's feature (its first cell)."""
    row = evt.row_value or []
    return int(row[0]) if row else None


def _attention_controls(handlers: Handlers):
    def controls(session: Session | None):
        lm = handlers.model(session)
        return (
            gr.Slider(maximum=lm.n_layers - 1, value=min(lm.n_layers // 2, lm.n_layers - 1)),
            gr.Radio(["mean", *map(str, range(lm.n_heads))], value="0"),
        )

    return controls
