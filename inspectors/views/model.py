"""The model card under the app's title: which model, what kind, and how it runs."""

from __future__ import annotations

from typing import Any


def model_card(lm: Any) -> str:
    """Markdown for a LoadedModel: id and description (whether it is instruction-tuned), shapes, dtype."""
    template = "the tokenizer" if lm.template_source == "tokenizer" else "Gemma (prompts/)"
    return (
        f"**Model:** `{lm.model_id}` — {lm.description}  \n"
        f"{lm.n_layers} layers · {lm.n_heads} heads · context {lm.context_limit} tokens · "
        f"{lm.dtype_name} on {lm.device.type}"
        + (f" ({lm.dtype_note})" if getattr(lm, "dtype_note", "") else "")
        + f" · template: {template}"
    )
