"""The API: every action and every tab as a named endpoint that takes raw values and returns JSON.

The endpoints are declared with `gr.api` rather than on the UI's widgets, so a value is never refused
by a widget's own checks (a slider's stale maximum, a number box that cannot parse "abc") before the
session can say what was wrong. Each is a thin adapter to the request's `Session`; state is kept per
client session, so call `/chat` first. (No `from __future__ import annotations` here: Gradio reads
these signatures' types at run time to describe the API.)
"""

import inspect
from pathlib import Path
from typing import Any

import gradio as gr

from inspectors.labs.inputs import BOOL, FLOAT, INT, LINES, NUMBERS, TABLE, lab_inputs
from inspectors.labs.registry import LABS
from inspectors.session import Session, SessionStore
from inspectors.ui.common import arrived_at, session_of, shown_errors
from inspectors.ui.inspect import VIEWS
from inspectors.ui.labs import LABS_GROUP

Number = int | float | str  # what a client may send where a number is meant; the session checks it
OptionalNumber = int | float | str | None


class Api:
    def __init__(self, store: SessionStore):
        self.store = store

    def session(self, request: gr.Request) -> Session:
        return session_of(self.store, request)

    # ---- chat -------------------------------------------------------------------------------------------
    def chat(
        self,
        message: str,
        system_prompt: str = "",
        temperature: Number = 0,
        top_k: Number = 0,
        top_p: Number = 1,
        max_new_tokens: Number = 64,
        seed: OptionalNumber = None,
        request: gr.Request = None,
    ) -> dict:  # a generator: each streamed update, then the final one ({"done": true})
        """Send a message and stream the reply: {messages, status, message_box, done}."""
        session = self.session(request)
        controls = (system_prompt, temperature, top_k, top_p, max_new_tokens, seed)
        for update in session.send(message, *controls, submitted_at=arrived_at(request)):
            yield update.api()

    def retry(
        self,
        system_prompt: str = "",
        temperature: Number = 0,
        top_k: Number = 0,
        top_p: Number = 1,
        max_new_tokens: Number = 64,
        seed: OptionalNumber = None,
        request: gr.Request = None,
    ) -> dict:  # a generator, as /chat
        """Regenerate the last reply; if that fails, the previous reply is kept."""
        controls = (system_prompt, temperature, top_k, top_p, max_new_tokens, seed)
        for update in self.session(request).retry(*controls):
            yield update.api()

    def undo(self, request: gr.Request = None) -> dict:
        """Remove the last exchange; its message comes back as message_box."""
        return self.session(request).undo().api()

    def clear(self, request: gr.Request = None) -> dict:
        """Start the conversation afresh (the system prompt stays)."""
        return self.session(request).clear().api()

    def stop(self, request: gr.Request = None) -> str:
        """Stop this session's reply, streaming or still queued (a queued /chat job can also be cancelled)."""
        return self.session(request).stop()

    @shown_errors
    def load_model(self, model_id: str, request: gr.Request = None) -> dict:
        """Switch this session's model; the conversation is kept either way: {ok, status, model_id}."""
        switch = self.session(request).load_model(model_id)
        return {"ok": switch.ok, "status": switch.status, "model_id": switch.model_id}

    @shown_errors
    def model_info(self, request: gr.Request = None) -> dict:
        """This session's model and, when the configured model could not be loaded, why and what to do."""
        from inspectors.views.model import model_card

        session = self.session(request)
        return {"model_id": session.model_id, "card": model_card(session.model()), "notice": session.shared.notice}

    # ---- inspection -------------------------------------------------------------------------------------
    @shown_errors
    def turns(self, request: gr.Request = None) -> list:
        """[label, turn] of every turn; turns are 0-based."""
        return [[label, index] for label, index in self.session(request).turn_choices()]

    @shown_errors
    def inspect_prompt(self, turn: OptionalNumber = None, request: gr.Request = None) -> dict:
        """The turn's exact templated prompt and its warnings (turn empty: the latest)."""
        return self.session(request).prompt_panel(turn).api()

    @shown_errors
    def inspect_tokens(self, turn: OptionalNumber = None, request: gr.Request = None) -> dict:
        """Every token of the turn: [position, id, token, part]."""
        return self.session(request).tokens_panel(turn).api()

    @shown_errors
    def next_token(self, turn: OptionalNumber = None, step: Number = 0, request: gr.Request = None) -> dict:
        """One generation step's top candidates, raw and after the sampling settings."""
        return self.session(request).next_token_panel(turn, step).api()

    @shown_errors
    def attention(
        self,
        turn: OptionalNumber = None,
        layer: OptionalNumber = None,
        head: Number = "mean",
        query_start: Number = 0,
        request: gr.Request = None,
    ) -> dict:
        """One head's (or the mean's) attention rows for up to 256 queries from query_start."""
        return self.session(request).attention_panel(turn, layer, head, query_start).api()

    @shown_errors
    def sae(
        self,
        turn: OptionalNumber = None,
        layer: OptionalNumber = None,
        feature: OptionalNumber = None,
        position: Number = 0,
        request: gr.Request = None,
    ) -> dict:
        """A feature's activation on every token, and the top features at a position."""
        return self.session(request).sae_panel(turn, layer, feature, position).api()

    @shown_errors
    def logit_lens(
        self,
        turn: OptionalNumber = None,
        with_prompt: bool = False,
        start: Number = 0,
        precision: str = "auto",
        request: gr.Request = None,
    ) -> dict:
        """The logit lens: per layer and position, the lens's top token and the probability of the token that came
        (64 positions from `start`; `precision` "float32" for every layer in float32, "auto" for a faster
        bfloat16 vocabulary scan before the last layer where the CPU has one)."""
        return self.session(request).lens_panel(turn, with_prompt, start, precision=precision).api()

    @shown_errors
    def attribution(
        self,
        turn: OptionalNumber = None,
        step: Number = 0,
        method: str = "gradient",
        steps: Number = 32,
        request: gr.Request = None,
    ) -> dict:
        """How much each earlier token contributed to reply token `step` (gradient, integrated_gradients,
        occlusion): per token and per chat segment."""
        return self.session(request).why_panel(turn, step, method, steps).api()

    @shown_errors
    def turn_attention(
        self, turn: OptionalNumber = None, layer: Number = "mean", head: Number = "mean", request: gr.Request = None
    ) -> dict:
        """The share of each reply token's attention that goes to each chat segment."""
        return self.session(request).turn_attention_panel(turn, layer, head).api()

    @shown_errors
    def search_features(self, query: str, layer: OptionalNumber = None, request: gr.Request = None) -> dict:
        """Features of a shipped SAE whose top contexts fire on the query's words."""
        return self.session(request).search_panel(query, layer).api()

    @shown_errors
    def tokenize(self, text: str, request: gr.Request = None) -> list:
        """[position, id, token] of any text under the session's model's tokenizer."""
        return self.session(request).tokenize(text)

    # ---- what if ----------------------------------------------------------------------------------------
    def branch(
        self,
        turn: OptionalNumber = None,
        step: Number = 0,
        token_id: OptionalNumber = None,
        text: str = "",
        request: gr.Request = None,
    ) -> dict:  # a generator, as /chat
        """Regenerate turn `turn`'s reply from `step` with `token_id` (or the tokens of `text`) forced, with
        the turn's settings and seed; the original is kept as another branch and the chat follows the new one."""
        session = self.session(request)
        for update in session.branch(turn, step, token_id, text, submitted_at=arrived_at(request)):
            yield update.api()

    def steer(
        self,
        message: str = "",
        turn: OptionalNumber = None,
        mode: str = "SAE features",
        layer: OptionalNumber = None,
        features: str | list | None = "",
        strength: Number = 1.0,
        scale: str = "residual norm",
        prompts_a: str | list | None = "",
        prompts_b: str | list | None = "",
        system_prompt: str = "",
        temperature: Number = 0,
        top_k: Number = 0,
        top_p: Number = 1,
        max_new_tokens: Number = 64,
        seed: OptionalNumber = None,
        request: gr.Request = None,
    ) -> dict:  # a generator, as /chat
        """Reply twice with one seed, default and steered (SAE features at `layer` scaled by `scale`, or
        activation addition at `layer` from prompts_a minus prompts_b): both replies, the KL per step, the
        feature on each. With `message` it is the next turn; without, turn `turn` is regenerated steered."""
        session = self.session(request)
        steering = (mode, layer, features, strength, scale, prompts_a, prompts_b)
        controls = (system_prompt, temperature, top_k, top_p, max_new_tokens, seed)
        for update in session.steer(message, turn, *steering, *controls, submitted_at=arrived_at(request)):
            yield update.api()

    @shown_errors
    def branches(self, request: gr.Request = None) -> dict:
        """The conversation's branches, [label, index], and the one the chat continues."""
        session = self.session(request)
        choices = [[label, index] for label, index in session.branch_choices()]
        return {"branches": choices, "active": session.conversation.active}

    def switch_branch(self, branch: Number = 0, request: gr.Request = None) -> dict:
        """Continue the chat from another branch: {messages, status, message_box, done}."""
        return self.session(request).switch_branch(branch).api()

    @shown_errors
    def compare(
        self, turn_a: OptionalNumber = None, turn_b: OptionalNumber = None, against: str = "no template",
        request: gr.Request = None,
    ) -> dict:  # fmt: skip
        """Turn A against turn B (against="turn") or against its own message without the chat template:
        tokens, first-token KL and top-10 overlap, per-layer cosine, common top SAE features."""
        return self.session(request).compare(turn_a, turn_b, against).api()

    # ---- save and share ---------------------------------------------------------------------------------
    @shown_errors
    def save(
        self, turn: OptionalNumber = None, what: str = "turn", kind: str = "json", request: gr.Request = None
    ) -> dict:
        """Save turn `turn` (with the turns before it) or the whole conversation as JSON or as an offline HTML
        page: {ok, status, server_path, filename, content}; `content` is the JSON document itself (for /open_saved)."""
        saved = self.session(request).save(turn, what, kind)
        out = saved.api()
        is_json = saved.ok and saved.path and saved.path.endswith(".json")
        out["content"] = Path(saved.path).read_text(encoding="utf-8") if is_json else None
        return out

    def open_saved(self, content: str = "", request: gr.Request = None) -> dict:
        """Open a saved conversation, given as the JSON document's text (as /save returns it): it replaces the
        conversation, and every stored view works without running the model. {messages, status, message_box}."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        return self.session(request).open_saved(data).api()

    def rerun(self, turn: OptionalNumber = None, request: gr.Request = None) -> dict:  # a generator, as /chat
        """Re-run turn `turn` on the session's model with its own messages, settings and seed: a new branch,
        and whether its tokens are identical to the saved ones."""
        for update in self.session(request).rerun(turn, submitted_at=arrived_at(request)):
            yield update.api()

    # ---- registration -----------------------------------------------------------------------------------
    def register(self) -> None:
        """Declare every endpoint inside the current Blocks."""
        chat = {"concurrency_id": "chat", "concurrency_limit": 1}
        gr.api(self.chat, api_name="chat", **chat)
        gr.api(self.retry, api_name="retry", **chat)
        gr.api(self.undo, api_name="undo", queue=False)
        gr.api(self.clear, api_name="clear", queue=False)
        gr.api(self.stop, api_name="stop", queue=False)
        gr.api(self.load_model, api_name="load_model", concurrency_id="models", concurrency_limit=1)
        gr.api(self.model_info, api_name="model_info", concurrency_id="models", concurrency_limit=1)
        gr.api(self.branch, api_name="branch", **chat)
        gr.api(self.steer, api_name="steer", **chat)
        gr.api(self.switch_branch, api_name="switch_branch", queue=False)
        gr.api(self.branches, api_name="branches", queue=False)
        gr.api(self.rerun, api_name="rerun", **chat)
        gr.api(self.open_saved, api_name="open_saved", **chat)
        gr.api(self.save, api_name="save", concurrency_id="share", concurrency_limit=2)
        views = (self.turns, self.inspect_prompt, self.inspect_tokens, self.next_token, self.attention, self.sae,
                 self.logit_lens, self.attribution, self.turn_attention, self.compare)  # fmt: skip
        for fn in views:
            gr.api(fn, api_name=fn.__name__, concurrency_id=VIEWS)
        gr.api(self.search_features, api_name="search_features", concurrency_id="search", concurrency_limit=2)
        gr.api(self.tokenize, api_name="tokenize", concurrency_id=VIEWS)
        for lab in LABS:
            gr.api(self.lab_endpoint(lab), api_name=f"lab_{lab}", concurrency_id=LABS_GROUP, concurrency_limit=1)

    def lab_endpoint(self, lab: str) -> Any:
        """/lab_<lab>: its preset's keys as parameters (each optional: left out, the preset's value)."""
        specs = lab_inputs(lab)
        hints = {BOOL: bool | str, INT: OptionalNumber, FLOAT: OptionalNumber, NUMBERS: str | list | None,
                 LINES: str | list | None, TABLE: dict | list | None}  # fmt: skip

        def run(*args: Any) -> dict:
            values, request = args[: len(specs)], args[len(specs)]
            raw = {spec.name: value for spec, value in zip(specs, values, strict=True)}
            return self.session(request).lab_panel(lab, raw).api()

        keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
        # a parameter left out takes the preset's value (the client fills in these defaults)
        parameters = [inspect.Parameter(s.name, keyword, default=s.default) for s in specs]
        parameters.append(inspect.Parameter("request", keyword, default=None, annotation=gr.Request))
        run.__signature__ = inspect.Signature(parameters, return_annotation=dict)  # type: ignore[attr-defined]
        run.__annotations__ = {s.name: hints.get(s.kind, str | None) for s in specs} | {"request": gr.Request}
        run.__name__ = f"lab_{lab}"
        run.__doc__ = f"Run the lab {lab!r} on the session's model: {{lab, summary, result, figures}}."
        return run
