"""What if: branch a reply at any token, steer a reply, and move between the conversation's branches.

A branch regenerates turn i's reply from step s with a chosen token forced (the turn's own prompt and
sampling settings, its seed included); a steered reply is generated with a vector added after one layer,
beside the default reply with the same seed. Either becomes a new branch of the conversation (the turns
before it shared, the original kept) and the chat continues from it. Bound to `Session` as methods.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from inspectors.engine import calls
from inspectors.engine.record import TurnRecord
from inspectors.engine.sampling import MAX_SEED, SamplingParams
from inspectors.engine.steering import MAX_ACTIVATION, RESIDUAL_NORM, Steering
from inspectors.errors import InspectorError, InvalidParameterError
from inspectors.inputs import MAX_MESSAGE_CHARS, as_choice, as_float, as_index, as_int, as_lines, as_numbers, as_text
from inspectors.views.whatif import steering_figure, steering_rows, steering_summary

if TYPE_CHECKING:
    from inspectors.session.session import ChatUpdate, Session


FEATURES, MEAN_DIFFERENCE = "SAE features", "activation addition"
STEER_MODES = (FEATURES, MEAN_DIFFERENCE)
SCALES = (RESIDUAL_NORM, MAX_ACTIVATION)
MAX_STEER_FEATURES = 8
MAX_STRENGTH = {RESIDUAL_NORM: 4.0, MAX_ACTIVATION: 50.0}  # beyond these the model only babbles
MAX_CONTRAST_PROMPTS, MAX_CONTRAST_CHARS = 16, 500
MAX_BRANCH_TEXT_CHARS = 200


@dataclass
class SteerUpdate:
    """The chat pane after (or while) steering, and the side-by-side comparison of the two replies."""

    chat: ChatUpdate
    default_text: str = ""
    steered_text: str = ""
    summary: str = ""
    figure: Any = None  # per step: KL(steered || default); per token: the feature on each reply
    rows: list[list[Any]] = field(default_factory=list)  # [step, default token, steered token, KL]

    def api(self) -> dict[str, Any]:
        return {
            **self.chat.api(),
            "default_reply": self.default_text,
            "steered_reply": self.steered_text,
            "summary": self.summary,
            "headers": ["step", "default token", "steered token", "KL (nats)"],
            "rows": self.rows,
        }


# ---- branches -------------------------------------------------------------------------------------------
def branch_choices(session: Session) -> list[tuple[str, int]]:
    """Branch-picker entries, 'Branch 2 · turn 3, step 5 forced ' blue' (4 turns)' -> index."""
    choices = []
    for i, branch in enumerate(session.conversation.branches):
        n = len(branch.records)
        choices.append((f"Branch {i + 1} · {branch.label} ({n} turn{'s' if n != 1 else ''})", i))
    return choices


def switch_branch(session: Session, branch: Any) -> ChatUpdate:
    """Continue the chat from another branch (the one shown is kept as it is)."""
    if not session._begin():
        return session._update(f"⚠️ {_busy()}", ok=False)
    try:
        index = as_index("branch", branch, len(session.conversation.branches), "this conversation")
        session.conversation.switch(index)
        label = session.conversation.branch.label
        return session._update(f"Now on branch {index + 1} ({label}): the next message continues it.")
    except InspectorError as err:
        return session._update(f"⚠️ {err}", ok=False)
    finally:
        session._end()


def branch(
    session: Session, turn: Any = None, step: Any = 0, token_id: Any = None, text: Any = "",
    *, submitted_at: float | None = None,
) -> Iterator[ChatUpdate]:  # fmt: skip
    """Regenerate turn `turn`'s reply from step `step` with `token_id` (or the tokens of `text`) forced
    there, with the turn's sampling settings and seed; the result is a new branch, which the chat follows."""
    yield from session.exclusive(
        "branch", lambda: _branch(session, turn, step, token_id, text),
        lambda status: session._update(status, ok=False), submitted_at, "Stopped before the branch started.",
    )  # fmt: skip


def _branch(session: Session, turn: Any, step: Any, token_id: Any, text: Any) -> Iterator[ChatUpdate]:
    index, record = session.record(turn)
    if record is None:
        raise InvalidParameterError("turn", "has nothing to branch yet: send a message first", turn)
    step = as_index("step", step, record.steps.n_steps, "this reply")
    lm = session.shared.model(record.model_id)
    given = _forced_tokens(lm, token_id, text)
    reply = record.token_ids[record.n_prompt :].tolist()
    forced = [*reply[:step], *given]
    params = SamplingParams(**record.params)
    if len(forced) > params.max_new_tokens:
        params = SamplingParams(**{**record.params, "max_new_tokens": len(forced)})
    new = yield from regenerate(session, index, record.model_id, record.messages, params, None, forced)
    piece = lm.tokenizer.decode(given)
    new.branch = {"from_turn": index, "step": step, "token_ids": given, "token": piece}
    label = f"turn {index + 1}, step {step} forced {piece!r}"
    number = session.conversation.fork(index, record.messages[-1]["content"], new, label) + 1
    yield session._update(
        f"Branch {number}: turn {index + 1} regenerated from step {step} with {piece!r} forced, seed "
        f"{params.seed}. The original is kept (the branch picker lists both); the chat continues from here."
    )


def regenerate(
    session: Session, index: int, model_id: str, messages: list, params: SamplingParams,
    steering: Steering | None, forced: list[int], status: str = "Generating…",
) -> Iterator[ChatUpdate]:  # fmt: skip
    """Generate turn `index`'s reply again from its prompt `messages`, streaming it into the chat pane in place
    of that turn (the turns after it hidden meanwhile); returns the new record (`new = yield from ...`).
    The caller holds the session (`Session.exclusive`) and decides what becomes of the record."""
    layer, feature = session._probe_choice()
    pending = session.chat_messages()[: 2 * index + 1]
    session._stop.clear()
    stream = calls.stream_reply(
        session.shared.ref(model_id), messages, params, session._stop, layer, feature, steering, forced
    )
    new = None
    for progress in stream:
        if progress.record is None:
            yield _streaming(pending, {"role": "assistant", "content": progress.reply_text}, status)
        else:
            new = progress.record
    if new is None:  # pragma: no cover - the last progress always carries the record
        raise InspectorError("The reply ended without a record: try again.")
    return new


def _forced_tokens(lm: Any, token_id: Any, text: Any) -> list[int]:
    words = as_text("text", text, max_chars=MAX_BRANCH_TEXT_CHARS)
    if token_id is not None and not (isinstance(token_id, str) and not token_id.strip()):
        if words:
            raise InvalidParameterError(
                "token_id", "and text cannot both be given: pick a token or type text", token_id
            )
        vocab = lm.model.get_input_embeddings().num_embeddings
        return [as_int("token_id", token_id, 0, vocab - 1)]
    if not words:
        raise InvalidParameterError("token_id", "is missing: click a candidate token, or type text to force", token_id)
    ids = lm.tokenizer(words, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InvalidParameterError("text", "has no tokens", text)
    return ids


# ---- steering -------------------------------------------------------------------------------------------
def steer(
    session: Session, message: Any = "", turn: Any = None, mode: Any = FEATURES, layer: Any = None,
    features: Any = "", strength: Any = 1.0, scale: Any = RESIDUAL_NORM, prompts_a: Any = "", prompts_b: Any = "",
    system_prompt: Any = "", temperature: Any = 0.0, top_k: Any = 0, top_p: Any = 1.0, max_new_tokens: Any = 64,
    seed: Any = None, *, submitted_at: float | None = None,
) -> Iterator[SteerUpdate]:  # fmt: skip
    """Reply twice with the same seed, default and steered, streamed one after the other into two panes.

    With `message`, it is the next turn: the default reply joins the conversation and the steered one is a
    branch beside it, which the chat follows. Without, turn `turn` (empty: the latest) is regenerated
    steered, with its own prompt, settings and seed; the default is that turn as it was."""
    from inspectors.session.session import sampling_params

    kept = message if isinstance(message, str) else ""

    def replies() -> Iterator[SteerUpdate]:
        text = as_text("message", message, max_chars=MAX_MESSAGE_CHARS)
        if text:
            system = as_text("system_prompt", system_prompt, max_chars=MAX_MESSAGE_CHARS)
            params = sampling_params(temperature, top_k, top_p, max_new_tokens, seed)
            if params.seed is None:  # both replies need the same one
                params = params.with_seed(secrets.randbelow(MAX_SEED + 1))
            session.model()
            session.conversation.system_prompt = system
            request, index, default = session.conversation.request(text), len(session.records), None
            model_id = session.model_id
        else:
            index, default = session.record(turn)
            if default is None:
                raise InvalidParameterError("message", "is empty and there is no turn to regenerate: type one", "")
            request, params, model_id = default.messages, SamplingParams(**default.params), default.model_id
        steering, feature_layer, feature = _steering(session, model_id, mode, layer, features, strength, scale,
                                                     prompts_a, prompts_b)  # fmt: skip
        yield from _steer_replies(session, model_id, request, params, index, default, steering, feature_layer, feature)

    yield from session.exclusive(
        "steering", replies, lambda status: SteerUpdate(session._update(status, kept, ok=False)), submitted_at,
        "Stopped before steering started.",
    )  # fmt: skip


def _steering(
    session: Session, model_id: str, mode: Any, layer: Any, features: Any, strength: Any, scale: Any,
    prompts_a: Any, prompts_b: Any,
) -> tuple[Steering, int | None, int | None]:  # fmt: skip
    """The steering vector, and the SAE layer and feature whose activation the comparison shows."""
    mode = as_choice("mode", mode, STEER_MODES)
    lm = session.shared.model(model_id)
    ref = session.shared.ref(model_id)
    if mode == MEAN_DIFFERENCE:
        strength = as_float("strength", strength, -MAX_STRENGTH[MAX_ACTIVATION], MAX_STRENGTH[MAX_ACTIVATION])
        layer = as_int("layer", layer, 0, lm.n_layers - 1)
        sets = []
        for name, prompts in (("prompts_a", prompts_a), ("prompts_b", prompts_b)):
            lines = as_lines(name, prompts, allow_empty=False)
            if len(lines) > MAX_CONTRAST_PROMPTS:
                raise InvalidParameterError(name, f"must have at most {MAX_CONTRAST_PROMPTS} lines", len(lines))
            for line in lines:
                as_text(name, line, max_chars=MAX_CONTRAST_CHARS)
            sets.append(lines)
        return calls.mean_difference_vector(ref, layer, sets[0], sets[1], strength), None, None
    scale = as_choice("scale", scale, SCALES)
    strength = as_float("strength", strength, -MAX_STRENGTH[scale], MAX_STRENGTH[scale])
    layer = None if layer is None or (isinstance(layer, str) and not layer.strip()) else as_int("layer", layer, 0)
    lsae, reason = session.shared.sae(model_id, layer, wait=True)
    if lsae is None:
        raise InvalidParameterError("layer", f"has no SAE to steer with ({reason.rstrip('.')})", layer)
    chosen = as_numbers("features", features, int)
    if len(chosen) > MAX_STEER_FEATURES:
        raise InvalidParameterError("features", f"must list at most {MAX_STEER_FEATURES}", features)
    for feature in chosen:
        as_int("feature", feature, 0, lsae.d_sae - 1)
    steering = calls.feature_steering_vector(ref, layer, chosen, strength, scale)
    return steering, layer, chosen[0]


def _steer_replies(
    session: Session, model_id: str, request: list, params: SamplingParams, index: int,
    default: TurnRecord | None, steering: Steering, feature_layer: int | None, feature: int | None,
) -> Iterator[SteerUpdate]:  # fmt: skip
    ref = session.shared.ref(model_id)
    pending = [*session.chat_messages()[: 2 * index], {"role": "user", "content": request[-1]["content"]}]
    probe_layer, probe_feature = (feature_layer, feature) if feature is not None else session._probe_choice()
    texts = {"default": default.reply_text if default else "", "steered": ""}
    records: dict[str, TurnRecord] = {"default": default} if default else {}
    runs = (("default", None), ("steered", steering)) if default is None else (("steered", steering),)
    session._stop.clear()
    for name, vector in runs:
        stream = calls.stream_reply(ref, request, params, session._stop, probe_layer, probe_feature, vector)
        for progress in stream:
            if progress.record is None:
                texts[name] = progress.reply_text
                shown = {"role": "assistant", "content": texts[name]}
                yield SteerUpdate(_streaming(pending, shown, f"Generating the {name} reply…"),
                                  texts["default"], texts["steered"])  # fmt: skip
            else:
                records[name] = progress.record
        if session._stop.is_set():
            break
    if "steered" not in records:  # stopped before the steered reply: nothing changes
        yield SteerUpdate(session._update("Stopped: the conversation is unchanged."), texts["default"], "")
        return
    steered = records["steered"]
    steered.branch = {"from_turn": index, "steered": True}
    if default is None:
        session.conversation.append(request[-1]["content"], records["default"])
    default = records["default"]
    label = f"turn {index + 1} steered ({steering.description.split(':')[0]})"
    number = session.conversation.fork(index, request[-1]["content"], steered, label) + 1
    activations = _feature_on_both(session, model_id, feature_layer, feature, default, steered)
    status = (
        f"Branch {number}: turn {index + 1} steered, seed {params.seed}. The default reply stays on the branch "
        "it was on; the chat continues from the steered one (pick another branch to go back)."
    )
    yield SteerUpdate(
        session._update(status),
        default.reply_text,
        steered.reply_text,
        steering_summary(steering.description, params.seed, default, steered, feature, activations),
        steering_figure(default, steered, feature, activations),
        steering_rows(default, steered),
    )


def _feature_on_both(
    session: Session, model_id: str, layer: int | None, feature: int | None, *records: TurnRecord
) -> list[np.ndarray] | None:
    """The steered feature's activation on every token of each record (None without an SAE feature)."""
    if feature is None:
        return None
    lsae, _ = session.shared.sae(model_id, layer, wait=True)
    return [session.shared.sae_activations(model_id, layer, lsae, r, feature).feature_values for r in records]


def _streaming(pending: list[dict[str, str]], reply: dict[str, str], status: str = "Generating…") -> ChatUpdate:
    from inspectors.session.session import ChatUpdate

    return ChatUpdate([*pending, reply], status, "", done=False)


def _busy() -> str:
    from inspectors.session.session import BUSY

    return BUSY
