"""SAE activations of a turn: a capture probe that keeps them sparsely, and on-demand reads of a finished turn."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from inspectors.engine.cache import LRUCache, turn_key
from inspectors.engine.capture import LayerProbe
from inspectors.engine.forward import layer_outputs
from inspectors.engine.loading import LoadedModel
from inspectors.engine.record import TurnRecord
from inspectors.sae.loading import LoadedSAE, check_feature
from inspectors.sae.sparse import SparseActivations

SAE_PROBE = "sae"
TOP_FEATURES_PER_TOKEN = 16


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
