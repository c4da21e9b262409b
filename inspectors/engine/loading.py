"""The only `from_pretrained` calls for chat models: the embedded Gemma 3 270M and any hub id.

Weights are shared read-only across sessions. `LoadedModel.lock` serialises every forward pass:
the capture hooks are registered on the shared modules, so two concurrent turns would otherwise see
each other's activations, and the sampling RNG is process-global.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from inspectors.engine.architecture import Parts, find_parts
from inspectors.engine.devices import needs_config, resolve_device, resolve_dtype
from inspectors.engine.embedded import EMBEDDED, embedded_model_dir, is_embedded
from inspectors.engine.gpu import on_zero_gpu
from inspectors.engine.templating import GEMMA_TEMPLATE_FILE, gemma_chat_template
from inspectors.errors import ModelLoadError
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


# End-of-turn markers of the chat formats in use: Gemma, ChatML (SmolLM2, Qwen), Llama 3, Phi-3
TURN_ENDS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")


@dataclass
class LoadedModel:
    model_id: str
    model: Any  # a transformers causal LM in eval mode
    tokenizer: Any
    chat_template: str
    template_source: str  # 'tokenizer' or the path of the shipped template file
    description: str
    device: torch.device
    dtype: torch.dtype
    context_limit: int  # max tokens of prompt + reply
    settings: Settings = field(default_factory=Settings, repr=False)
    dtype_note: str = ""  # why this dtype (shown beside the model's name)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def text_config(self) -> Any:
        config = self.model.config
        return getattr(config, "text_config", None) or config

    @property
    def dtype_name(self) -> str:
        """The precision's name as records, reports and the model card show it, e.g. 'float32'."""
        return str(self.dtype).removeprefix("torch.")

    @property
    def n_layers(self) -> int:
        return int(self.text_config.num_hidden_layers)

    @property
    def n_heads(self) -> int:
        return int(self.text_config.num_attention_heads)

    @functools.cached_property
    def parts(self) -> Parts:
        """The decoder blocks, final norm, unembedding and soft-capping, found from the model."""
        return find_parts(self.model)

    @property
    def decoder_layers(self) -> Any:
        """The decoder blocks; block L outputs the residual stream `blocks.L.hook_resid_post`."""
        return self.parts.layers

    @property
    def max_new_tokens_limit(self) -> int:
        """The most tokens one generation may add: the settings' cap, and room for one prompt token."""
        return min(self.settings.max_new_tokens_limit, self.context_limit - 1)

    @property
    def pad_token_id(self) -> int:
        """What generate pads with: the tokenizer's pad token, else the first stop token."""
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.stop_token_ids[0]

    def stop_name(self, token: int) -> str:
        """How a reply that ended on stop token `token` is reported: 'end_of_turn' or 'eos'."""
        return "end_of_turn" if self.tokenizer.convert_ids_to_tokens(int(token)) in TURN_ENDS else "eos"

    @functools.cached_property
    def stop_token_ids(self) -> list[int]:
        """The eos token, the chat format's end-of-turn token and the generation config's: the embedded
        Gemma GGUF's config names only `<eos>`, not `<end_of_turn>`."""
        ids = {self.tokenizer.eos_token_id}
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[marker] for marker in TURN_ENDS if marker in vocab)
        configured = self.model.generation_config.eos_token_id
        ids.update(configured if isinstance(configured, list) else [configured])
        return sorted(i for i in ids if i is not None)

    @functools.cached_property
    def special_ids(self) -> frozenset[int]:
        """Every special token id: <bos>, <eos>, the template markers and the tokenizer's other added
        special tokens (Gemma's `all_special_ids` omits `<start_of_turn>`)."""
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        marked = {i for i, token in added.items() if getattr(token, "special", False)}
        return frozenset(marked | set(self.tokenizer.all_special_ids) | set(self.stop_token_ids))


_loaded: dict[tuple, LoadedModel] = {}
_loading_locks: dict[tuple, threading.Lock] = {}
_loaded_lock = threading.Lock()


def load_model(
    model_id: str | None = None, settings: Settings | None = None, progress: ProgressFn | None = None
) -> LoadedModel:
    """Load (once per process and settings) the embedded Gemma, a hub id or a local folder.

    Loads of different models proceed side by side; a second request for a model being loaded waits
    for that load instead of starting another."""
    settings = settings or Settings.load()
    model_id = model_id or settings.model_id
    if settings.hosted and model_id not in settings.allowed_model_ids:
        raise ModelLoadError(
            f"{model_id!r} is not offered on this deployment; choose one of {settings.allowed_model_ids}."
        )
    device = resolve_device(settings)
    # the dtype follows from these (and the architecture, on a GPU without native bfloat16)
    key = (model_id, str(device), settings.dtype, settings.load_in_4bit, str(settings.cache_dir))
    with _loaded_lock:
        shared = _loaded.get(key)
        lock = _loading_locks.setdefault(key, threading.Lock())
    if shared is None:
        with lock:
            shared = _loaded.get(key)
            if shared is None:
                shared = _load(model_id, settings, device, progress or _log_progress)
                with _loaded_lock:
                    _loaded[key] = shared
    if shared.settings == settings:
        return shared
    # Same weights, tokenizer and lock; only the limits that come from settings differ.
    return dataclasses.replace(shared, settings=settings, context_limit=_context_limit(shared.model, settings))


def loaded_model_ids() -> list[str]:
    """Ids of the models this process has loaded."""
    with _loaded_lock:
        return sorted({key[0] for key in _loaded})


def _log_progress(fraction: float, message: str) -> None:
    log.info("[%3.0f%%] %s", 100 * fraction, message)


def _load(model_id: str, settings: Settings, device: torch.device, progress: ProgressFn) -> LoadedModel:
    if settings.load_in_4bit and device.type != "cuda":
        raise ModelLoadError("4-bit (NF4) loading needs a CUDA GPU; unset GEMMA_INSPECTOR_4BIT to run on CPU.")
    if settings.load_in_4bit and on_zero_gpu():
        raise ModelLoadError("4-bit (NF4) loading is not offered on ZeroGPU, which has the memory for bfloat16.")
    if is_embedded(model_id):
        source, description, token = (
            embedded_model_dir(settings, progress, model_id),
            EMBEDDED[model_id].description,
            None,
        )
    else:
        source, token = model_id, settings.hf_token
        check_model_folder(model_id)
        tuned = "instruction-tuned" if model_id.rstrip("/").endswith("-it") else "check whether it is instruction-tuned"
        description = f"{model_id} ({tuned})"
    try:
        config = AutoConfig.from_pretrained(source, token=token) if needs_config(settings, device) else None
        dtype, dtype_note = resolve_dtype(settings, device, config)
        progress(0.8, f"Loading {model_id} on {device} as {str(dtype).removeprefix('torch.')} ({dtype_note})")
        kwargs: dict[str, Any] = {"dtype": dtype, "token": token, "trust_remote_code": False}
        if settings.load_in_4bit:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=True,
            )
        # On ZeroGPU the server's CUDA is a stand-in that only works on the thread that imported `spaces`;
        # transformers' device_map loading copies weights to the device in worker threads. So load on the
        # CPU and move with .to(), on this thread, as the ZeroGPU docs do.
        on_gpu_map = device.type == "cuda" and not on_zero_gpu()
        if on_gpu_map:
            # Spreads a model larger than one GPU over all of them.
            kwargs["device_map"] = "auto" if settings.device == "auto" else {"": device.index or 0}
        tokenizer = AutoTokenizer.from_pretrained(source, token=token)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as err:  # translated into an actionable message, never a raw traceback
        raise ModelLoadError(explain_load_error(model_id, err)) from err
    find_parts(model)  # an architecture the inspector cannot read is refused now, with what it needs
    if not on_gpu_map:
        model.to(device)
    model.eval()
    model.requires_grad_(False)
    template, template_source = tokenizer.chat_template, "tokenizer"
    if not template:
        template, template_source = gemma_chat_template(), str(GEMMA_TEMPLATE_FILE)
    progress(1.0, f"Loaded {model_id}")
    return LoadedModel(
        model_id=model_id,
        model=model,
        tokenizer=tokenizer,
        chat_template=template,
        template_source=template_source,
        description=description,
        device=next(model.parameters()).device,
        dtype=dtype,
        context_limit=_context_limit(model, settings),
        settings=settings,
        dtype_note=dtype_note,
    )


MODEL_FOLDER_NEEDS = (
    "a model folder needs config.json, the weights (`*.safetensors`, or `pytorch_model*.bin`) and the tokenizer's "
    "files (tokenizer.json or tokenizer.model, with tokenizer_config.json), as save_pretrained writes them"
)


def check_model_folder(model_id: str) -> None:
    """A local folder that holds no model gets a message that says so, not a tokenizer library's complaint."""
    path = Path(model_id).expanduser()
    if not path.exists():
        return  # a hub id, or a path that does not exist: from_pretrained's errors are explained below
    if not path.is_dir():
        raise ModelLoadError(f"{model_id!r} is a file, not a model folder: {MODEL_FOLDER_NEEDS}.")
    names = {p.name for p in path.iterdir()}
    weights = any(n.endswith(".safetensors") or (n.startswith("pytorch_model") and n.endswith(".bin")) for n in names)
    tokenizer = bool({"tokenizer.json", "tokenizer.model"} & names)
    missing = [what for what, ok in (("config.json", "config.json" in names), ("weights", weights),
                                     ("tokenizer", tokenizer)) if not ok]  # fmt: skip
    if missing:
        raise ModelLoadError(
            f"The folder {model_id!r} holds no model (missing: {', '.join(missing)}): {MODEL_FOLDER_NEEDS}."
        )


def _context_limit(model: Any, settings: Settings) -> int:
    window = getattr(getattr(model.config, "text_config", None) or model.config, "max_position_embeddings", None)
    return min(settings.max_context_tokens, window or settings.max_context_tokens)


def explain_load_error(model_id: str, err: BaseException) -> str:
    """A message that says what to do, from the hub/transformers exception chain."""
    from huggingface_hub import errors as hub_errors

    chain = []
    current: BaseException | None = err
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in chain).lower()
    page = f"https://huggingface.co/{model_id}"
    token_help = (
        "create a read token at https://huggingface.co/settings/tokens and set it as the HF_TOKEN environment "
        "variable (on a Space: a secret named HF_TOKEN)"
    )

    def any_is(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    if any_is(hub_errors.HFValidationError) or "repo id must" in text:
        return (
            f"{model_id!r} was not found: it is neither an existing local folder nor a valid Hugging Face id "
            "(owner/name, e.g. google/gemma-2-2b-it)."
        )
    if any_is(hub_errors.GatedRepoError) or "gated" in text:
        return f"{model_id} is a gated model: accept its licence at {page} while logged in, then {token_help}."
    if "401" in text or "invalid user token" in text or "unauthorized" in text:
        return f"The Hugging Face Hub refused the token for {model_id}: {token_help}, then restart."
    if any_is(hub_errors.RepositoryNotFoundError) or "not a valid model identifier" in text or "404" in text:
        return (
            f"{model_id!r} was not found: check the spelling (e.g. google/gemma-2-2b-it) or the local folder path. "
            f"If it is a private model, {token_help}."
        )
    if (
        any_is(hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled, ConnectionError)
        or "offline" in text
        or "connection" in text
        or "couldn't connect" in text
    ):
        return (
            f"{model_id} is not in the local Hugging Face cache and the Hub cannot be reached (offline). Download "
            f"it once on a machine with internet, or use the embedded model ({EMBEDDED_MODEL_ID})."
        )
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in text:
        return f"Not enough memory to load {model_id}: try GEMMA_INSPECTOR_4BIT=1 on a GPU, or a smaller model."
    return f"Could not load {model_id}: {type(err).__name__}: {err}"
