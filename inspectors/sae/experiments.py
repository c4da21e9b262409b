"""The course's SAE experiments (HW3 section 7) on any model with an SAE, as pure functions.

Token positions include `<bos>` unless `skip_bos`: Gemma Scope was trained without the BOS
position, whose residual norm is an outlier, so its activations there are not meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspectors.engine.forward import hidden_states, layer_outputs
from inspectors.engine.loading import LoadedModel
from inspectors.engine.pieces import readable_pieces
from inspectors.errors import InvalidParameterError
from inspectors.sae.loading import LoadedSAE, check_feature


@dataclass
class FeatureOnText:
    text: str
    tokens: list[str]
    values: np.ndarray  # (T,) activation of the feature on each token
    layer: int
    feature: int
    skip_bos: bool

    @property
    def max_activation(self) -> float:
        values = self.values[1:] if self.skip_bos and len(self.values) > 1 else self.values
        return float(values.max()) if values.size else 0.0


def _ids(lm: LoadedModel, text: str) -> np.ndarray:
    if not text.strip():
        raise InvalidParameterError("text", "must not be empty", text)
    return np.asarray(lm.tokenizer(text, add_special_tokens=True)["input_ids"])  # one <bos>, as the course


def feature_on_text(lm: LoadedModel, lsae: LoadedSAE, text: str, feature: int, skip_bos: bool = True) -> FeatureOnText:
    """Per-token activation of `feature` on `text` at the SAE's own layer (course 7.2-7.6)."""
    check_feature(lsae, feature)
    ids = _ids(lm, text)
    resid = layer_outputs(lm, ids, [lsae.layer])[lsae.layer]
    return FeatureOnText(
        text=text,
        tokens=readable_pieces(lm.tokenizer, ids.tolist()),
        values=lsae.feature_values(resid, feature),
        layer=lsae.layer,
        feature=feature,
        skip_bos=skip_bos,
    )


def compare_prompts(
    lm: LoadedModel, lsae: LoadedSAE, texts: list[str], feature: int, skip_bos: bool = True
) -> list[FeatureOnText]:
    """Course 7.2-7.3: the feature's activations on each prompt; compare `max_activation`s."""
    return [feature_on_text(lm, lsae, text, feature, skip_bos) for text in texts]


@dataclass
class TokenAcrossLayers:
    token: str
    position: int
    layers: list[int]
    values: list[float]  # activation of the feature at each layer
    variant: str  # 'sae per layer' or the course's variant


COURSE_VARIANT = "course variant: one SAE applied to hidden_states[L] of every layer"


def token_across_layers(
    lm: LoadedModel,
    saes: dict[int, LoadedSAE],
    text: str,
    position: int,
    feature: int,
    course_variant: bool = False,
) -> TokenAcrossLayers:
    """Course 7.7-7.9: one token's feature activation across layers.

    Default: each layer read by the SAE trained on it (`saes` maps layer -> SAE). With
    `course_variant`, the single SAE in `saes` is applied to `hidden_states[L]` for every L, as the
    reference notebook did: hidden_states[L] is the output of block L-1, and the SAE was trained on
    one layer only, so the other layers' numbers are not that feature.
    """
    ids = _ids(lm, text)
    if not isinstance(position, int) or not 0 <= position < len(ids):
        raise InvalidParameterError("position", f"must be an integer in [0, {len(ids) - 1}]", position)
    token = readable_pieces(lm.tokenizer, [int(ids[position])])[0]
    if course_variant:
        if len(saes) != 1:
            raise InvalidParameterError("saes", "must hold exactly one SAE for the course variant", sorted(saes))
        (lsae,) = saes.values()
        check_feature(lsae, feature)
        states = hidden_states(lm, ids)
        layers = list(range(len(states)))
        values = [float(lsae.feature_values(states[layer], feature)[position]) for layer in layers]
        return TokenAcrossLayers(token, position, layers, values, COURSE_VARIANT)
    if not saes:
        raise InvalidParameterError("saes", "must hold at least one layer's SAE", saes)
    layers = sorted(saes)
    for lsae in saes.values():
        check_feature(lsae, feature)
    resid = layer_outputs(lm, ids, layers)
    values = [float(saes[layer].feature_values(resid[layer], feature)[position]) for layer in layers]
    return TokenAcrossLayers(token, position, layers, values, "sae per layer")
