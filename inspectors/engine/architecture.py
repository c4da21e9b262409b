"""The parts of a decoder-only model the inspector reads, found from the model rather than from Gemma's own
attribute paths: the decoder blocks (whose outputs are the residual stream), each block's attention, the
final norm, the unembedding and any final logit soft-capping.

Tested on Gemma 2, Gemma 3, Llama (SmolLM2), Mistral and Qwen2; other transformers causal LMs built the
same way (a decoder with `.layers`, each with `.self_attn`, and a final `.norm`) work too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from inspectors.errors import ModelLoadError

TESTED = ("gemma", "gemma2", "gemma3_text", "llama", "mistral", "qwen2")


@dataclass(frozen=True)
class Parts:
    layers: torch.nn.ModuleList  # decoder blocks; block L outputs blocks.L.hook_resid_post
    final_norm: torch.nn.Module
    unembedding: torch.nn.Module  # lm_head (tied to the input embeddings or not)
    final_logit_softcap: float | None  # Gemma 2: logits = tanh(logits / c) * c

    def attention(self, layer: int) -> torch.nn.Module:
        return self.layers[layer].self_attn


def find_parts(model: Any) -> Parts:
    """The model's parts, or a ModelLoadError that says what is missing and which architectures work."""
    config = getattr(model.config, "text_config", None) or model.config
    model_type = getattr(config, "model_type", type(model).__name__)
    try:
        decoder = model.get_decoder()
    except (AttributeError, NotImplementedError):
        decoder = getattr(model, "model", None)
    layers = getattr(decoder, "layers", None)
    norm = getattr(decoder, "norm", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    missing = [
        what
        for what, ok in (
            ("decoder layers (`model.get_decoder().layers`)", isinstance(layers, torch.nn.ModuleList) and len(layers)),
            (
                "attention in each layer (`.self_attn`)",
                layers is not None and all(hasattr(b, "self_attn") for b in layers),
            ),
            ("a final norm (`.norm`)", isinstance(norm, torch.nn.Module)),
            ("an output embedding (`lm_head`)", isinstance(head, torch.nn.Module)),
        )
        if not ok
    ]
    if missing:
        raise ModelLoadError(
            f"{model_type} ({type(model).__name__}) is not a decoder-only model this inspector can read: it has no "
            f"{', no '.join(missing)}. Supported: transformers causal LMs built like {', '.join(TESTED)} "
            "(tested), e.g. Gemma, Llama, Mistral, Qwen2, SmolLM2."
        )
    softcap = getattr(config, "final_logit_softcapping", None)
    return Parts(layers, norm, head, float(softcap) if softcap else None)
