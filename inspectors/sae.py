"""Sparse-autoencoder features with sae-lens: load an SAE, read its activations for a turn, sparsely.

An SAE trained on `blocks.L.hook_resid_post` reads the output of decoder layer L, which capture
hooks directly (`hidden_states[L+1]` would be the same except after the last layer, where it is
taken after the final norm). A record keeps only each token's top-k features and one chosen
feature's column: a dense T x d_sae array (2,048 x 16,384 floats = 128 MB) never enters session state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspectors.cache import LRUCache, turn_key
from inspectors.capture import LayerProbe
from inspectors.errors import InspectorError, InvalidParameterError
from inspectors.forward import layer_outputs
from inspectors.loading import LoadedModel
from inspectors.record import TurnRecord

SAE_PROBE = "sae"
TOP_FEATURES_PER_TOKEN = 16
_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")


class SAELoadError(InspectorError, RuntimeError):
    """An SAE could not be loaded or does not fit the model."""


@dataclass
class LoadedSAE:
    sae: Any  # a sae_lens SAE, read-only, shared across sessions
    name: str  # 'release/sae_id' or the folder it was loaded from
    layer: int  # reads the output of this decoder layer
    hook_name: str
    d_sae: int
    neuronpedia_id: str | None  # e.g. 'gemma-2-2b/20-gemmascope-res-16k'
    default_feature: int | None = None  # shown first, e.g. 10004 (time travel) on Gemma Scope layer 20
    note: str = ""  # e.g. why this SAE is shown instead of the published one
    features: Any = None  # a sae_features.FeatureIndex when the SAE ships its top contexts

    def feature_url(self, feature: int) -> str | None:
        return neuronpedia_url(self.neuronpedia_id, feature)

    def encode(self, resid: torch.Tensor) -> torch.Tensor:
        """(T, d_model) residual stream -> (T, d_sae) feature activations, on the SAE's device and dtype."""
        with torch.inference_mode():
            return self.sae.encode(resid.to(device=self.sae.W_enc.device, dtype=self.sae.W_enc.dtype))

    def feature_values(self, resid: torch.Tensor, feature: int) -> np.ndarray:
        """(T,) activations of one feature, float32 on the CPU."""
        return self.encode(resid)[:, check_feature(self, feature)].float().cpu().numpy()


def neuronpedia_url(neuronpedia_id: str | None, feature: int) -> str | None:
    """The feature's Neuronpedia page, for SAEs whose release data names one (Gemma Scope)."""
    return f"https://www.neuronpedia.org/{neuronpedia_id}/{feature}" if neuronpedia_id else None


def layer_of_hook(hook_name: str | None) -> int:
    match = _HOOK.match(hook_name or "")
    if match is None:
        raise SAELoadError(
            f"The SAE reads {hook_name!r}; only residual-stream SAEs on blocks.L.hook_resid_post are supported."
        )
    return int(match.group(1))


def _wrap(sae: Any, name: str) -> LoadedSAE:
    sae.eval()
    sae.requires_grad_(False)
    hook_name = sae.cfg.metadata.hook_name
    return LoadedSAE(
        sae=sae,
        name=name,
        layer=layer_of_hook(hook_name),
        hook_name=hook_name,
        d_sae=int(sae.cfg.d_sae),
        neuronpedia_id=sae.cfg.metadata.neuronpedia_id,
    )


def load_sae_from_disk(path: str | Path, device: str = "cpu") -> LoadedSAE:
    """An SAE in sae-lens's disk format (cfg.json + sae_weights.safetensors)."""
    from sae_lens import SAE

    try:
        sae = SAE.load_from_disk(str(path), device=device)
    except Exception as err:
        raise SAELoadError(f"Could not load the SAE at {path}: {type(err).__name__}: {err}") from err
    return _wrap(sae, str(path))


def load_sae_from_release(release: str, sae_id: str, device: str = "cpu") -> LoadedSAE:
    """A published SAE (e.g. Gemma Scope) through sae-lens's release table, downloaded from the Hub."""
    from sae_lens import SAE

    try:
        sae = SAE.from_pretrained(release, sae_id, device=device)
    except Exception as err:
        text = str(err).lower()
        if "offline" in text or "connect" in text or "resolve" in text or "localentrynotfound" in text:
            reason = "the Hugging Face Hub cannot be reached and it is not in the local cache"
        elif "gated" in text or "401" in text or "403" in text:
            reason = "access was refused: accept the licence on its Hub page and set HF_TOKEN"
        else:
            reason = f"{type(err).__name__}: {err}"
        raise SAELoadError(f"Could not load the SAE {release} / {sae_id}: {reason}.") from err
    return _wrap(sae, f"{release}/{sae_id}")


def check_fits(lsae: LoadedSAE, lm: LoadedModel) -> None:
    d_model = int(lm.text_config.hidden_size)
    if int(lsae.sae.cfg.d_in) != d_model:
        raise SAELoadError(
            f"The SAE {lsae.name} reads vectors of size {lsae.sae.cfg.d_in}, but {lm.model_id} has "
            f"d_model {d_model}: pick an SAE trained on this model."
        )
    if lsae.layer >= lm.n_layers:
        raise SAELoadError(f"The SAE {lsae.name} reads layer {lsae.layer}; {lm.model_id} has {lm.n_layers}.")


@dataclass
class SparseActivations:
    """SAE features of every token of a turn, sparse. T = tokens, k = features kept per token."""

    sae_name: str
    layer: int
    d_sae: int
    neuronpedia_id: str | None
    top_ids: np.ndarray  # (T, k) int32, strongest first
    top_values: np.ndarray  # (T, k) float32
    feature: int  # the feature whose every activation is kept
    feature_values: np.ndarray  # (T,) float32

    def feature_url(self, feature: int) -> str | None:
        return neuronpedia_url(self.neuronpedia_id, feature)


def check_feature(lsae: LoadedSAE, feature: int) -> int:
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < lsae.d_sae:
        raise InvalidParameterError("feature", f"must be an integer in [0, {lsae.d_sae - 1}] for {lsae.name}", feature)
    return feature


def encode_sparse(lsae: LoadedSAE, resid: torch.Tensor, feature: int, k: int = TOP_FEATURES_PER_TOKEN):
    """(T, d_model) residual stream -> SparseActivations; the dense (T, d_sae) lives only here."""
    check_feature(lsae, feature)
    acts = lsae.encode(resid)  # (T, d_sae): the only dense copy, dropped on return
    top = torch.topk(acts, min(k, lsae.d_sae), dim=-1)
    column = acts[:, feature]
    return SparseActivations(
        sae_name=lsae.name,
        layer=lsae.layer,
        d_sae=lsae.d_sae,
        neuronpedia_id=lsae.neuronpedia_id,
        top_ids=top.indices.cpu().numpy().astype(np.int32),
        top_values=top.values.float().cpu().numpy(),
        feature=feature,
        feature_values=column.float().cpu().numpy(),
    )


def sae_probe(lsae: LoadedSAE, feature: int, k: int = TOP_FEATURES_PER_TOKEN) -> LayerProbe:
    """A capture probe: the turn's record gets `probes['sae']` = SparseActivations."""
    check_feature(lsae, feature)
    return LayerProbe(SAE_PROBE, lsae.layer, lambda resid, ids: encode_sparse(lsae, resid, feature, k))


_columns = LRUCache(64)  # (T,) float32 each


def feature_column(lm: LoadedModel, lsae: LoadedSAE, record: TurnRecord, feature: int) -> np.ndarray:
    """(T,) activations of any feature for a finished turn. From the record when it holds that
    feature; otherwise one forward pass up to the SAE's layer (cached), so no dense array is stored."""
    check_feature(lsae, feature)
    stored = record.probes.get(SAE_PROBE)
    if isinstance(stored, SparseActivations) and stored.sae_name == lsae.name and stored.feature == feature:
        return stored.feature_values
    key = turn_key(lm.model_id, lm.model, record.token_ids, "sae", lsae.name, feature)
    values = _columns.get(key)
    if values is None:
        resid = layer_outputs(lm, record.token_ids, [lsae.layer])[lsae.layer]
        values = lsae.feature_values(resid, feature)
        _columns.put(key, values)
    return values


_sparse = LRUCache(16)  # SparseActivations of turns captured with another SAE (or none)


def turn_activations(lm: LoadedModel, lsae: LoadedSAE, record: TurnRecord, feature: int) -> SparseActivations:
    """The turn's sparse activations under `lsae`, with `feature`'s full column. From the record when it
    was captured with this SAE (another feature's column computed on demand); otherwise one forward pass
    gives both the top features and the column (cached), and still no dense array is kept."""
    check_feature(lsae, feature)
    stored = record.probes.get(SAE_PROBE)
    if isinstance(stored, SparseActivations) and stored.sae_name == lsae.name:
        if stored.feature == feature:
            return stored
        return replace(stored, feature=feature, feature_values=feature_column(lm, lsae, record, feature))
    key = turn_key(lm.model_id, lm.model, record.token_ids, "sae-sparse", lsae.name, feature)
    acts = _sparse.get(key)
    if acts is None:
        acts = encode_sparse(lsae, layer_outputs(lm, record.token_ids, [lsae.layer])[lsae.layer], feature)
        _sparse.put(key, acts)
    return acts
