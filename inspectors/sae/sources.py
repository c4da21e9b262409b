"""Which SAE a model gets: the configured one, else its Gemma Scope release, else the project's own.

The project ships SAEs it trained offline for the embedded Gemma 3 270M (`inspectors/data/saes/`,
made by `python -m inspectors.sae.train`). They are used when the model has no published release,
or when the release cannot be downloaded (offline, gated, no token): the reason is kept on the
LoadedSAE (`note`) so the app can say which SAE it shows and why.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from inspectors.engine.loading import LoadedModel
from inspectors.sae.catalog import release_for
from inspectors.sae.features import index_for
from inspectors.sae.loading import (
    LoadedSAE,
    SAELoadError,
    check_fits,
    layer_of_hook,
    load_sae_from_disk,
    load_sae_from_release,
)
from inspectors.settings import EMBEDDED_MODEL_ID, REPO_ROOT, Settings

SHIPPED_DIR = REPO_ROOT / "inspectors" / "data" / "saes"
# The shipped SAEs were trained on the embedded model's residual stream; the hub's Gemma 3 270M has
# the same architecture and (up to Q4_K_M quantization) the same weights, so they carry over.
SHIPPED_MODEL_ALIASES = {EMBEDDED_MODEL_ID: EMBEDDED_MODEL_ID, "google/gemma-3-270m": EMBEDDED_MODEL_ID}
DEFAULT_FEATURE_QUERY = "time travel"  # the course's feature 10004 is about time travel


def shipped_saes(model_id: str, root: Path | None = None) -> dict[int, Path]:
    """{layer: folder} of the shipped SAEs trained on `model_id` (or the model it stands for)."""
    target = SHIPPED_MODEL_ALIASES.get(model_id)
    root = root or SHIPPED_DIR
    found = {}
    for cfg_file in sorted(root.glob("*/cfg.json")) if target else []:
        metadata = json.loads(cfg_file.read_text(encoding="utf-8")).get("metadata", {})
        if metadata.get("model_name") == target:
            found[layer_of_hook(metadata.get("hook_name"))] = cfg_file.parent
    return found


def available_layers(lm: LoadedModel, settings: Settings | None = None) -> list[int]:
    """Layers an SAE can be asked for: the release's and the shipped ones (a configured SAE: its own)."""
    settings = settings or lm.settings
    if settings.sae:
        return [open_sae(lm, settings=settings).layer]
    release = release_for(lm.model_id)
    layers = set(release.layers) if release else set()
    return sorted(layers | set(shipped_saes(lm.model_id)))


_opened: dict[tuple, LoadedSAE | SAELoadError] = {}
_opened_lock = threading.Lock()


def open_sae(lm: LoadedModel, layer: int | None = None, settings: Settings | None = None) -> LoadedSAE:
    """The SAE for `lm` at `layer` (default: the release's default layer), checked to fit the model.

    Loaded once per process and shared read-only; a failure is remembered too, so an unreachable Hub
    costs its retries once, not on every lab run. Raises SAELoadError with what to do when no SAE fits.
    """
    settings = settings or lm.settings
    key = (lm.model_id, layer, settings.sae)
    with _opened_lock:
        if key not in _opened:
            try:
                # loaded on the CPU: an SAE moves to the residual stream's device on first use (LoadedSAE.encode)
                device = "cpu"
                lsae = _configured(settings.sae, device) if settings.sae else _published_or_shipped(lm, layer, device)
                check_fits(lsae, lm)
                _opened[key] = lsae
            except SAELoadError as err:
                _opened[key] = err
        found = _opened[key]
    if isinstance(found, SAELoadError):
        raise found
    return found


def forget_opened() -> None:
    """Drop the remembered SAEs and failures (tests; or to retry the Hub after going online)."""
    with _opened_lock:
        _opened.clear()


def _configured(source: str, device: str) -> LoadedSAE:
    if ":" in source and not source.startswith(("/", ".")):
        release, sae_id = source.split(":", 1)
        return load_sae_from_release(release, sae_id, device=device)
    return _load_shipped_or_disk(Path(source), device)


def _published_or_shipped(lm: LoadedModel, layer: int | None, device: str) -> LoadedSAE:
    release = release_for(lm.model_id)
    shipped = shipped_saes(lm.model_id)
    reason = ""
    if release is not None:
        layer = release.default_layer if layer is None else layer
        if layer in release.layers:
            try:
                lsae = load_sae_from_release(release.release, release.sae_id(layer), device=device)
                lsae.default_feature = release.default_feature
                return lsae
            except SAELoadError as err:
                reason = str(err)
    if shipped:
        chosen = layer if layer in shipped else min(shipped, key=lambda have: (abs(have - (layer or 0)), have))
        lsae = _load_shipped_or_disk(shipped[chosen], device)
        why = f"{reason} " if reason else ""
        moved = (
            f" (no shipped SAE at layer {layer}; nearest is {chosen})" if layer is not None and layer != chosen else ""
        )
        lsae.note = (
            f"{why}Showing the project's own SAE for the embedded Gemma 3 270M, trained offline at layer "
            f"{chosen}{moved}; its features are explained by their top contexts, not on Neuronpedia."
        )
        return lsae
    if reason:
        raise SAELoadError(reason)
    if release is not None:
        raise SAELoadError(f"{release.release} has no SAE at layer {layer}; it has layers {list(release.layers)}.")
    model_type = str(getattr(lm.text_config, "model_type", ""))
    why = (
        ""
        if model_type.startswith("gemma")
        else f" It is a {model_type} model, not Gemma: Gemma Scope's SAEs and the ones this project ships read "
        "Gemma models' residual streams, which no other model shares."
    )
    raise SAELoadError(
        f"No sparse autoencoder is known for `{lm.model_id}` (prompts/sae_releases.yaml) and none is configured, "
        f"so there are no feature activations to show.{why} Set GEMMA_INSPECTOR_SAE to a sae-lens folder or to "
        "`release:sae_id` of an SAE trained on this model."
    )


def _load_shipped_or_disk(folder: Path, device: str) -> LoadedSAE:
    lsae = load_sae_from_disk(folder, device=device)
    if folder.resolve().parent == SHIPPED_DIR.resolve():
        lsae.name = f"{folder.name} (shipped)"  # not an absolute path that differs per checkout
    lsae.features = index_for(str(folder))
    if lsae.features is not None:
        hits = lsae.features.search(DEFAULT_FEATURE_QUERY, limit=1)
        lsae.default_feature = hits[0].feature if hits else None
    return lsae
