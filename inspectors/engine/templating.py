"""Chat templating: message normalisation, system-prompt folding, role checks, context trimming.

Token ids are the truth: the templated string is tokenized with `add_special_tokens=False`, since
Gemma's template already emits `<bos>` and a second one silently changes the model's behaviour.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2.exceptions import TemplateError

from inspectors.errors import ConversationError
from inspectors.settings import PROMPTS_DIR

log = logging.getLogger(__name__)

GEMMA_TEMPLATE_FILE = PROMPTS_DIR / "gemma_chat_template.jinja"

_ROLE_ALIASES = {"user": "user", "assistant": "assistant", "model": "assistant", "system": "system"}

SYSTEM_NATIVE = "native"  # the template renders a system turn of its own
SYSTEM_FOLDED_BY_TEMPLATE = "folded by the template into the first user turn"
SYSTEM_FOLDED_HERE = "folded into the first user turn (the template rejects a system role)"


def gemma_chat_template() -> str:
    """Gemma's chat template, shipped in prompts/ for tokenizers that have none (the embedded GGUF)."""
    return GEMMA_TEMPLATE_FILE.read_text(encoding="utf-8")


def flatten_content(content: Any) -> str:
    """Text of one message's content: a string, Gradio 6 content blocks, or a {"text": ...} mapping.

    Gemma 2's template would render the Python repr of a block list without complaint, so blocks are
    flattened before templating.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        if content.get("type", "text") == "text" and "text" in content:
            return str(content["text"])
        raise ConversationError(
            f"Only text messages are supported, but got a {content.get('type', 'non-text')!r} block "
            f"(keys {sorted(content)}). Remove the attachment and send the text alone."
        )
    if isinstance(content, Iterable):
        return "".join(flatten_content(block) for block in content)
    raise ConversationError(f"A message's content must be text, but is {type(content).__name__}: {content!r}")


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Flatten content to text and map role aliases (`model` -> `assistant`), checking roles and order."""
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        role = _ROLE_ALIASES.get(str(message.get("role", "")).lower())
        if role is None:
            raise ConversationError(
                f"Message {i + 1} has role {message.get('role')!r}; use one of 'system', 'user', 'assistant'."
            )
        if role == "system" and i != 0:
            raise ConversationError(f"Message {i + 1} is a system message; only the first message may be one.")
        out.append({"role": role, "content": flatten_content(message.get("content", ""))})
    check_alternation(out)
    return out


def check_alternation(messages: Sequence[Mapping[str, str]]) -> None:
    """Gemma's templates need user, model, user, ... after an optional system message, ending on user."""
    turns = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not turns:
        raise ConversationError("The conversation has no user message: type a message to send.")
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise ConversationError(
                f"Turn {i + 1} is from {message['role']!r} where {expected!r} was expected: Gemma's chat template "
                "needs user and model turns to alternate, starting with the user. Merge consecutive messages "
                "from the same role into one."
            )
    if turns[-1]["role"] != "user":
        raise ConversationError("The last message must be the user's: the model replies to a user turn.")


@dataclass
class PromptBuild:
    """The exact prompt of one turn. `ids` (prompt tokens) are the truth; `text` is what was tokenized."""

    text: str
    ids: list[int]
    messages: list[dict[str, str]]  # what was rendered, after folding and trimming
    system_handling: str | None  # None when there is no system prompt
    dropped_messages: int = 0  # oldest messages dropped to fit the context
    truncated_tokens: int = 0  # tokens cut from the end of the newest user message to fit
    warnings: list[str] = field(default_factory=list)


def render(tokenizer: Any, template: str, messages: list[dict[str, str]]) -> tuple[str, str | None]:
    """Render with the chat template; fold the system prompt into the first user turn if it is rejected."""
    has_system = messages[0]["role"] == "system"
    try:
        text = tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=True
        )
    except TemplateError as err:
        if not has_system:
            raise ConversationError(f"The chat template rejected the conversation: {err}") from err
        text = tokenizer.apply_chat_template(
            fold_system(messages), chat_template=template, tokenize=False, add_generation_prompt=True
        )
        return text, SYSTEM_FOLDED_HERE
    if not has_system:
        return text, None
    # A template that folds the system prompt itself (Gemma 3's) renders exactly what folding here renders.
    folded = tokenizer.apply_chat_template(
        fold_system(messages), chat_template=template, tokenize=False, add_generation_prompt=True
    )
    return text, SYSTEM_FOLDED_BY_TEMPLATE if folded == text else SYSTEM_NATIVE


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Prefix the first user turn with the system prompt, as Gemma 3's own template does."""
    system, first, rest = messages[0], messages[1], messages[2:]
    folded = {"role": "user", "content": f"{system['content']}\n\n{first['content']}"}
    return [folded, *rest]


def tokenize_prompt(tokenizer: Any, text: str) -> tuple[list[int], list[str]]:
    """Ids of a templated prompt, without adding special tokens again, and warnings about its `<bos>`:
    two at the start, or none where the tokenizer itself would begin with one (Gemma)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    warnings = []
    bos = tokenizer.bos_token_id
    if bos is not None:
        name = tokenizer.bos_token
        if ids[:2] == [bos, bos]:
            warnings.append(f"The prompt starts with two {name} tokens; the model was trained with one.")
        elif (not ids or ids[0] != bos) and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]:
            warnings.append(f"The prompt does not start with {name}; the model's replies degrade without it.")
    return ids, warnings


_MARKUP = re.compile(r"<[^<>\s]{1,60}>")  # how control tokens are written: <bos>, <end_of_turn>, <|im_end|>


def special_token_texts(tokenizer: Any) -> frozenset[str]:
    """The text of every special token: bos, eos, the chat format's markers (Gemma's `all_special_tokens`
    leaves out `<start_of_turn>`; its added tokens flagged special have it)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return frozenset(
        {t.content for t in added.values() if getattr(t, "special", False)} | set(tokenizer.all_special_tokens)
    )


def control_token_warnings(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> list[str]:
    """Typed text such as '<end_of_turn>' is tokenized as the control token itself, which can end a
    turn early or fake a role: say so rather than let it pass silently."""
    markers = special_token_texts(tokenizer)
    warnings = []
    for i, message in enumerate(messages, start=1):
        found = sorted({m for m in _MARKUP.findall(message["content"]) if m in markers})
        if found:
            warnings.append(
                f"Message {i} ({message['role']}) contains {', '.join(found)} as text; the tokenizer reads it as "
                "the control token itself, not as characters."
            )
    return warnings


def build_prompt(
    tokenizer: Any,
    template: str,
    messages: Sequence[Mapping[str, Any]],
    max_prompt_tokens: int,
) -> PromptBuild:
    """Template and tokenize a conversation, dropping the oldest whole turns to fit `max_prompt_tokens`.

    The newest user message is always kept; if it alone does not fit, its end is cut and
    `truncated_tokens` says by how much.
    """
    normalized = normalize_messages(messages)
    system = normalized[:1] if normalized[0]["role"] == "system" else []
    turns = normalized[len(system) :]
    dropped = truncated = 0
    while True:
        current = system + turns
        text, system_handling = render(tokenizer, template, current)
        ids, warnings = tokenize_prompt(tokenizer, text)
        overflow = len(ids) - max_prompt_tokens
        if overflow <= 0:
            break
        if len(turns) > 1:
            turns = turns[2:]  # one user message and the model's reply to it
            dropped += 2
            continue
        newest = turns[0]["content"]
        newest_ids = tokenizer(newest, add_special_tokens=False)["input_ids"]
        # Re-tokenizing a cut string can merge differently at the edge: cut a little extra each round.
        keep = len(newest_ids) - overflow - 1
        if keep <= 0:
            raise ConversationError(
                f"The prompt needs {len(ids)} tokens but at most {max_prompt_tokens} fit (the context limit "
                "minus max new tokens), even with the newest message cut to nothing: shorten the system "
                "prompt or lower max new tokens."
            )
        truncated += len(newest_ids) - keep
        turns = [{"role": "user", "content": tokenizer.decode(newest_ids[:keep])}]
    warnings.extend(control_token_warnings(tokenizer, current))
    if dropped:
        warnings.append(f"The {dropped} oldest messages were dropped to fit the context limit.")
    if truncated:
        warnings.append(f"The newest message was cut by {truncated} tokens to fit the context limit.")
    if system_handling in (SYSTEM_FOLDED_HERE, SYSTEM_FOLDED_BY_TEMPLATE):
        warnings.append(f"System prompt {system_handling}.")
    return PromptBuild(
        text=text,
        ids=ids,
        messages=current,
        system_handling=system_handling,
        dropped_messages=dropped,
        truncated_tokens=truncated,
        warnings=warnings,
    )
