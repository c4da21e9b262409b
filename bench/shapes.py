"""Random-weight models of real shapes, for measuring at full size without downloading gated weights."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM

from inspectors.engine.loading import embedded_model_dir
from inspectors.settings import PROMPTS_DIR, Settings


def gemma2_2b_it_config(vocab_size: int, tiny: bool = False) -> Gemma2Config:
    """google/gemma-2-2b-it's config (2.6B parameters), with the vocabulary of the tokenizer used; `tiny`: the
    same architecture (soft-capping, alternating sliding-window layers) at a size that runs in seconds."""
    layers = 4 if tiny else 26
    return Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=64 if tiny else 2304,
        intermediate_size=128 if tiny else 9216,
        num_hidden_layers=layers,
        layer_types=["sliding_attention", "full_attention"] * (layers // 2),
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=16 if tiny else 256,
        max_position_embeddings=8192,
        sliding_window=4096,
        query_pre_attn_scalar=256,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh",
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )


def save_random_gemma2_2b_it(folder: Path, tiny: bool = False, dtype: torch.dtype = torch.bfloat16) -> Path:
    """A random model of gemma-2-2b-it's shapes (or a tiny one), with the embedded Gemma tokenizer and Gemma
    2's chat template: only the shapes matter for memory and speed."""
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir(Settings.load()))
    tokenizer.chat_template = (PROMPTS_DIR / "gemma2_chat_template.jinja").read_text(encoding="utf-8")
    config = gemma2_2b_it_config(len(tokenizer), tiny)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = Gemma2ForCausalLM(config).to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
