"""Load sparse autoencoders with sae-lens, from a folder or a published release, and check they fit a model.

An SAE trained on `blocks.L.hook_resid_post` reads the output of decoder layer L, which capture
hooks directly (`hidden_states[L+1]` would be the same except after the last layer, where it is
taken after the final norm).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspectors.engine.loading import LoadedModel
from inspectors.errors import InspectorError, InvalidParameterError
from inspectors.sae.sparse import neuronpedia_url

_moving = threading.Lock()  # one SAE moved to a device at a time
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
        """(T, d_model) residual stream -> (T, d_sae) feature activations, in the SAE's dtype.

        The SAE runs where the residual stream is: loaded on the CPU, it moves to the model's GPU on first use.
        On ZeroGPU that first use is in a GPU worker, the only process with a real GPU; the server's copy,
        which the workers inherit, stays on the CPU."""
        if self.sae.W_enc.device != resid.device:
            with _moving:
                if self.sae.W_enc.device != resid.device:
                    self.sae.to(resid.device)
        with torch.inference_mode():
            return self.sae.encode(resid.to(dtype=self.sae.W_enc.dtype))

    def decoder_rows(self, features: Sequence[int]) -> np.ndarray:
        """(n, d_model) float32: the directions the features write into the residual stream."""
        rows = [check_feature(self, feature) for feature in features]
        return self.sae.W_dec[rows].detach().float().cpu().numpy()

    def max_activations(self, features: Sequence[int]) -> list[float]:
        """Each feature's largest activation over the SAE's own corpus (only SAEs that ship their contexts)."""
        if self.features is None:
            raise InvalidParameterError(
                "scale",
                f"'max activation' needs the features' recorded maxima, which {self.name} does not ship: "
                "use 'residual norm'",
                "max activation",
            )
        return [self.features.card(check_feature(self, feature)).max_act for feature in features]

    def feature_values(self, resid: torch.Tensor, feature: int) -> np.ndarray:
        """(T,) activations of one feature, float32 on the CPU."""
        return self.encode(resid)[:, check_feature(self, feature)].float().cpu().numpy()


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


def check_feature(lsae: LoadedSAE, feature: int) -> int:
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < lsae.d_sae:
        raise InvalidParameterError("feature", f"must be an integer in [0, {lsae.d_sae - 1}] for {lsae.name}", feature)
    return feature
