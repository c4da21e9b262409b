"""Which published SAE fits a model, from prompts/sae_releases.yaml plus sae-lens's release table."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import yaml

from inspectors.errors import InvalidParameterError
from inspectors.settings import PROMPTS_DIR

CATALOG_FILE = PROMPTS_DIR / "sae_releases.yaml"


@dataclass(frozen=True)
class SAERelease:
    release: str  # a sae-lens release name
    sae_id_template: str  # e.g. 'layer_{layer}/width_16k/canonical'
    default_layer: int
    default_feature: int
    note: str = ""

    def sae_id(self, layer: int) -> str:
        if layer not in self.layers:
            raise InvalidParameterError("layer", f"must be one of {list(self.layers)} for {self.release}", layer)
        return self.sae_id_template.format(layer=layer)

    @functools.cached_property
    def layers(self) -> tuple[int, ...]:
        """Layers the release has an SAE for, read from sae-lens's release table."""
        saes = _directory()[self.release].saes_map
        pattern = re.compile("^" + re.escape(self.sae_id_template).replace(r"\{layer\}", r"(\d+)") + "$")
        return tuple(sorted(int(m.group(1)) for sae_id in saes if (m := pattern.match(sae_id))))

    def neuronpedia_id(self, layer: int) -> str | None:
        return _directory()[self.release].neuronpedia_id.get(self.sae_id(layer))


@functools.cache
def _directory() -> dict:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    return get_pretrained_saes_directory()


@functools.cache
def _catalog() -> dict[str, SAERelease]:
    entries = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    by_model = {}
    for name, entry in entries.items():
        release = SAERelease(
            release=entry["release"],
            sae_id_template=entry["sae_id"],
            default_layer=int(entry["default_layer"]),
            default_feature=int(entry["default_feature"]),
            note=entry.get("note", ""),
        )
        for model_id in entry["models"]:
            if model_id in by_model:
                raise ValueError(f"{CATALOG_FILE}: {model_id} is listed twice (again under {name})")
            by_model[model_id] = release
    return by_model


def release_for(model_id: str) -> SAERelease | None:
    """The published SAE release for a model id, or None when the catalog has none for it."""
    return _catalog().get(model_id)
