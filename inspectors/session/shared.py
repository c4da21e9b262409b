"""What every session shares, read-only: the settings, the loaded models and SAEs, and a cache of views
computed by the model. Per-user state lives in `Session`; this holds nothing that belongs to one user.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from inspectors.engine import calls
from inspectors.engine.cache import LRUCache, turn_key
from inspectors.engine.calls import ModelRef
from inspectors.engine.gpu import on_zero_gpu
from inspectors.engine.loading import LoadedModel, ProgressFn, loaded_model_ids
from inspectors.engine.record import TurnRecord
from inspectors.errors import InspectorError, InvalidParameterError, ModelLoadError
from inspectors.inputs import MAX_MODEL_ID_CHARS, as_text
from inspectors.sae.activations import SAE_PROBE
from inspectors.sae.sparse import SparseActivations
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

log = logging.getLogger(__name__)

ATTENTION_CACHE_ENTRIES = 6  # layers kept across all sessions; each is heads x T^2 float16
SAE_CACHE_ENTRIES = 32  # sparse activations of a turn: top-k per token and one feature's column
EXPLAIN_CACHE_ENTRIES = 32  # lens grids (layers x positions x top-10), attributions, segment attention
SAELookup = tuple[object | None, str]  # (LoadedSAE or None, why there is none or that it is loading)


class Shared:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._default_model_id = settings.model_id
        self.notice = ""  # why the app runs on another model than configured, and what to do (markdown)
        self._started = threading.Event()
        self._started.set()  # until start() is called, the configured model is the default, loaded on use
        self._models_fixed = False  # on ZeroGPU, after start-up: no model loads but those loaded then
        # (model id, layer) -> its SAE (or why there is none), loaded in the background: a first download,
        # or a Hub that cannot be reached, must not hold up the chat.
        self._saes: dict[tuple[str, int | None], Future] = {}
        self._sae_lock = threading.Lock()
        self._sae_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sae-load")
        self._attention = LRUCache(ATTENTION_CACHE_ENTRIES)
        self._sae_activations = LRUCache(SAE_CACHE_ENTRIES)
        self._explained = LRUCache(EXPLAIN_CACHE_ENTRIES)

    # ---- start-up -------------------------------------------------------------------------------------
    def start(self, background: bool = False, preload: list[str] | None = None) -> None:
        """Load the configured model before anyone chats, and its SAE. If it cannot be loaded (a gated model
        without a token, the Hub down), the app runs on the embedded model and `notice` says what failed and
        what to do: start-up never fails for a model. `preload`: more models to load now with their SAEs
        (on ZeroGPU every model a session may use must be loaded before the GPU workers fork)."""
        self._started.clear()
        if background:
            threading.Thread(target=self._start, args=(preload or [],), name="model-start", daemon=True).start()
        else:
            self._start(preload or [])

    def _start(self, preload: list[str]) -> None:
        try:
            self._load_default()
            for model_id in dict.fromkeys([self._default_model_id, *preload]):
                try:
                    self.model(model_id)
                    self.sae(model_id, wait=on_zero_gpu())  # ZeroGPU: in memory before the GPU workers fork
                except InspectorError as err:
                    log.warning("could not preload %s: %s", model_id, err)
        finally:
            self._models_fixed = on_zero_gpu()
            self._started.set()

    def _load_default(self) -> None:
        configured = self.settings.model_id
        try:
            self.ref(configured).load()
            self._default_model_id, self.notice = configured, ""
        except InspectorError as err:
            log.warning(
                "the configured model %s could not be loaded; starting on %s: %s", configured, EMBEDDED_MODEL_ID, err
            )
            self._default_model_id = EMBEDDED_MODEL_ID
            self.notice = unavailable_notice(configured, err)
            self.ref(EMBEDDED_MODEL_ID).load()

    def default_model_id(self) -> str:
        """The model a new session chats with: the configured one, or the embedded one if it failed to load."""
        self._started.wait()
        return self._default_model_id

    def retry_default(self, progress: ProgressFn | None = None) -> str:
        """Try the configured model (and its SAE) again, e.g. after HF_TOKEN was added. Returns a status."""
        from inspectors.sae.sources import forget_opened

        configured = self.settings.model_id
        forget_opened()  # an SAE that failed is tried again too
        with self._sae_lock:
            self._saes = {key: f for key, f in self._saes.items() if not (f.done() and isinstance(f.result(), str))}
        try:
            self.ref(configured).load(progress)
        except InspectorError as err:
            self.notice = unavailable_notice(configured, err)
            return f"⚠️ {configured} still cannot be loaded: {err}"
        self._default_model_id, self.notice = configured, ""
        self.sae(configured)
        return f"Loaded {configured}."

    # ---- models ---------------------------------------------------------------------------------------
    def check_model_id(self, model_id: object) -> str:
        """A model id a user may load here: not empty, and on a hosted deployment one of the allowed ids."""
        text = as_text("model_id", model_id, max_chars=MAX_MODEL_ID_CHARS).strip()
        if not text:
            raise InvalidParameterError(
                "model_id", f"must name a model, e.g. one of {self.settings.allowed_model_ids}", model_id
            )
        allowed = [*self.settings.allowed_model_ids, self._default_model_id]  # the fallback is always allowed
        if self.settings.hosted and text not in allowed:
            raise ModelLoadError(
                f"{text!r} is not offered on this deployment; choose one of {self.settings.allowed_model_ids}."
            )
        return text

    def ref(self, model_id: str) -> ModelRef:
        return ModelRef(model_id, self.settings)

    def model(self, model_id: str, progress: ProgressFn | None = None) -> LoadedModel:
        """The shared model (loaded once per process); in hosted mode only an allowed id."""
        model_id = self.check_model_id(model_id)
        if self._models_fixed and model_id not in loaded_model_ids():
            # ZeroGPU's CUDA stand-in works only on the thread that imported `spaces`, and the GPU workers
            # only know what was loaded before they forked: models load at start-up or not at all.
            raise ModelLoadError(
                f"{model_id} was not loaded when this ZeroGPU Space started, and ZeroGPU can only use models "
                f"loaded then: add it to allowed_model_ids in space.yaml. Loaded: {loaded_model_ids()}."
            )
        return self.ref(model_id).load(progress)

    # ---- SAEs -----------------------------------------------------------------------------------------
    def sae(self, model_id: str, layer: int | None = None, wait: bool = False) -> SAELookup:
        """The SAE for a model at `layer` (None: its default), or why there is none, or that it is loading."""
        key = (model_id, layer)
        with self._sae_lock:
            if key not in self._saes:
                self._saes[key] = self._sae_pool.submit(self._load_sae, model_id, layer)
            future = self._saes[key]
        if not wait and not future.done():
            return None, (
                "Loading the SAE (the first use may download it): its features show with the next turn, "
                "or pick the layer again in a moment."
            )
        found = future.result()
        return (None, found) if isinstance(found, str) else (found, "")

    def _load_sae(self, model_id: str, layer: int | None) -> object:
        from inspectors.sae.sources import open_sae

        try:
            return open_sae(self.model(model_id), layer, self.settings)
        except InspectorError as err:
            log.warning("no SAE for %s at layer %s: %s", model_id, layer, err)
            return f"{err} Everything else works as usual."

    def sae_layers(self, model_id: str) -> list[int]:
        """Layers an SAE can be asked for on this model (release layers plus shipped ones)."""
        from inspectors.sae.sources import available_layers

        try:
            return available_layers(self.model(model_id), self.settings)
        except InspectorError:
            return []

    # ---- views computed by the model, cached here (on ZeroGPU the worker's own caches die with it) ------
    def attention(self, model_id: str, token_ids: np.ndarray, layer: int) -> np.ndarray:
        """(heads, T, T) float16 attention of `layer` over a finished turn; switching heads costs nothing."""
        lm = self.model(model_id)
        key = turn_key(model_id, lm.model, token_ids, "attention", layer)
        weights = self._attention.get(key)
        if weights is None:
            weights = calls.attention(self.ref(model_id), np.asarray(token_ids), layer)
            self._attention.put(key, weights)
        return weights

    def cached(self, model_id: str, token_ids: np.ndarray, parts: tuple, compute: Any) -> Any:
        """What `compute()` returns for this model and these tokens, computed once (across sessions too)."""
        key = turn_key(model_id, self.model(model_id).model, token_ids, *parts)
        value = self._explained.get(key)
        if value is None:
            value = compute()
            self._explained.put(key, value)
        return value

    def sae_activations(self, model_id: str, layer: int | None, lsae: Any, record: TurnRecord, feature: int) -> Any:
        """The turn's SparseActivations under `lsae` with `feature`'s column: from the record when it was
        captured with that SAE and feature (no model call), else one cached call."""
        stored = record.probes.get(SAE_PROBE)
        if isinstance(stored, SparseActivations) and stored.sae_name == lsae.name and stored.feature == feature:
            return stored
        key = turn_key(model_id, id(lsae), record.token_ids, "sae", feature)
        acts = self._sae_activations.get(key)
        if acts is None:
            acts = calls.sae_activations(self.ref(model_id), layer, record, feature)
            self._sae_activations.put(key, acts)
        return acts

    # ---- hosted-mode policy for inputs that name something to load ---------------------------------------
    def check_loadable_name(self, name: str, value: str, allowed: list[str]) -> None:
        """In hosted mode an input that names a model (a lab's scorer, say) must be one of `allowed`:
        nothing arbitrary from the Hub, and no local path."""
        if not self.settings.hosted:
            return
        if value not in allowed:
            local = os.path.isabs(value) or value.startswith(".") or os.path.exists(value)
            where = " (local paths are never read on a hosted deployment)" if local else ""
            raise InvalidParameterError(name, f"must be one of {allowed} on this deployment{where}", value)


def unavailable_notice(model_id: str, err: Exception) -> str:
    """What the banner says when the configured model could not be loaded at start-up."""
    return (
        f"⚠️ **{model_id} could not be loaded**, so this app runs on the embedded Gemma 3 270M (a pretrained model, "
        f"not instruction-tuned: its replies ramble). The reason: {err}  \n"
        f"To use {model_id}: log in at huggingface.co and accept its licence at https://huggingface.co/{model_id}, "
        "create a read token at https://huggingface.co/settings/tokens, and set it as HF_TOKEN (on a Space: "
        "Settings → Variables and secrets → New secret `HF_TOKEN`, which restarts the Space). Then press Retry."
    )
