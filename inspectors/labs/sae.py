"""Lab 7 (HW3 7.2-7.9): one SAE feature on two prompts, on each token of a sentence, and across layers.

Built on `inspectors.sae.experiments`. The SAE comes from `inspectors.sae.sources.open_sae` (Gemma Scope
when it can be loaded, else the SAE shipped for the model) unless one is passed in. When none fits the
model, the result says why instead of raising, so a report keeps every other lab.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspectors.engine.forward import hidden_states
from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.pieces import readable_pieces
from inspectors.errors import InvalidParameterError
from inspectors.labs.generation import check_bool
from inspectors.labs.labels import SAE_COURSE_READ
from inspectors.sae import sources as sae_sources
from inspectors.sae.experiments import (
    FeatureOnText,
    TokenAcrossLayers,
    compare_prompts,
    feature_on_text,
    token_across_layers,
)
from inspectors.sae.loading import LoadedSAE, SAELoadError, check_feature, check_fits
from inspectors.settings import REPO_ROOT

PROMPT_LABELS = ("prompt_a", "prompt_b")
COURSE_READ = SAE_COURSE_READ
PER_LAYER_NOTE = (
    "Each layer is read by its own SAE; their dictionaries are trained separately, so feature {feature} of "
    "one layer's SAE and feature {feature} of another's are different features."
)


@dataclass
class SAELabResult:
    settings: dict[str, Any]  # the inputs as given, plus the feature and layer actually used
    unavailable: str | None = None  # why no SAE could be opened; then nothing below is set
    sae_name: str | None = None
    sae_layer: int | None = None  # the SAE reads the output of this decoder layer
    d_sae: int | None = None
    feature: int | None = None
    feature_url: str | None = None
    sae_note: str = ""  # from the SAE sources, e.g. why the shipped SAE is shown instead of Gemma Scope
    prompts: list[FeatureOnText] = field(default_factory=list)  # 7.2-7.3: prompt_a, prompt_b
    sentence: FeatureOnText | None = None  # 7.4-7.6
    across: TokenAcrossLayers | None = None  # 7.7-7.9
    across_saes: dict[int, str] = field(default_factory=dict)  # layer -> SAE that read it (per-layer mode)
    notes: list[str] = field(default_factory=list)

    @property
    def course_variant(self) -> bool:
        return bool(self.settings.get("course_variant"))

    @property
    def higher_prompt(self) -> str | None:
        """'prompt_a', 'prompt_b' or 'tie': whose maximum activation is higher (the course's 7.3 answer)."""
        if len(self.prompts) != 2:
            return None
        a, b = (p.max_activation for p in self.prompts)
        return "tie" if a == b else PROMPT_LABELS[0] if a > b else PROMPT_LABELS[1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"settings": _plain(self.settings), "unavailable": self.unavailable}
        if self.unavailable is not None:
            return out
        out.update(
            sae={
                "name": _display_name(self.sae_name),
                "layer": self.sae_layer,
                "d_sae": self.d_sae,
                "note": self.sae_note,
                "reads": "hidden_states[layer]" if self.course_variant else "output of decoder layer (resid_post)",
            },
            feature=self.feature,
            feature_url=self.feature_url,
            prompts={label: _text_json(p) for label, p in zip(PROMPT_LABELS, self.prompts, strict=True)},
            higher_prompt=self.higher_prompt,
            sentence=_text_json(self.sentence) if self.sentence is not None else None,
            notes=list(self.notes),
        )
        if self.across is not None:
            out["across_layers"] = {
                "token": self.across.token,
                "position": self.across.position,
                "method": self.across.variant,
                "layers": list(self.across.layers),
                "activations": [_round(v) for v in self.across.values],
                "saes": {str(k): _display_name(v) for k, v in sorted(self.across_saes.items())},
            }
        else:
            out["across_layers"] = None
        return out


def run(
    lm: LoadedModel,
    *,
    progress: ProgressFn | None = None,
    prompt_a: str,
    prompt_b: str,
    sentence: str,
    token_index: int,
    feature: int | None = None,
    layer: int | None = None,
    across_layers: list[int] | None = None,
    skip_bos: bool = True,
    course_variant: bool = False,
    lsae: LoadedSAE | None = None,
    saes_by_layer: Mapping[int, LoadedSAE] | None = None,
) -> SAELabResult:
    """Run HW3 7.2-7.9. `lsae` / `saes_by_layer` (layer -> SAE, for 7.7-7.9) replace the SAE sources,
    e.g. for a local SAE; without them every SAE comes from `inspectors.sae.sources`."""
    report = progress or (lambda fraction, message: None)
    settings = {
        "prompt_a": prompt_a,
        "prompt_b": prompt_b,
        "sentence": sentence,
        "token_index": token_index,
        "feature": feature,
        "layer": layer,
        "across_layers": across_layers,
        "skip_bos": skip_bos,
        "course_variant": course_variant,
    }
    _check_inputs(lm, settings)

    report(0.0, "Opening the SAE")
    from_sources = lsae is None
    try:
        if lsae is None:
            lsae = sae_sources.open_sae(lm, layer=layer)
        elif layer is not None and layer != lsae.layer:
            raise InvalidParameterError("layer", f"must be empty or {lsae.layer}, the layer of the SAE given", layer)
        check_fits(lsae, lm)
    except SAELoadError as err:
        return SAELabResult(settings=settings, unavailable=str(err))
    if feature is None:
        feature = lsae.default_feature if lsae.default_feature is not None else 0
    check_feature(lsae, feature)
    result = SAELabResult(
        settings={**settings, "feature": feature, "layer": lsae.layer},
        sae_name=lsae.name,
        sae_layer=lsae.layer,
        d_sae=lsae.d_sae,
        feature=feature,
        feature_url=lsae.feature_url(feature),
        sae_note=lsae.note,
    )

    report(0.2, "7.2-7.3: the feature on both prompts")
    if course_variant:
        result.prompts = [_course_feature_on_text(lm, lsae, text, feature, skip_bos) for text in (prompt_a, prompt_b)]
        report(0.45, "7.4-7.6: the feature on each token of the sentence")
        result.sentence = _course_feature_on_text(lm, lsae, sentence, feature, skip_bos)
        report(0.65, "7.7-7.9: one SAE on every layer's hidden state (course variant)")
        across = token_across_layers(lm, {lsae.layer: lsae}, sentence, token_index, feature, course_variant=True)
        result.across = _keep_layers(across, across_layers)
        result.notes.append(
            f"Course variant: the layer-{lsae.layer} SAE read hidden_states[L] of every L; it was trained on one "
            "layer only, so the other layers' values are not this feature."
        )
    else:
        result.prompts = compare_prompts(lm, lsae, [prompt_a, prompt_b], feature, skip_bos)
        report(0.45, "7.4-7.6: the feature on each token of the sentence")
        result.sentence = feature_on_text(lm, lsae, sentence, feature, skip_bos)
        report(0.6, "7.7-7.9: opening an SAE per layer")
        saes = _saes_per_layer(lm, lsae, saes_by_layer, from_sources, across_layers, feature, result.notes, report)
        report(0.9, f"7.7-7.9: the feature across {len(saes)} layer(s)")
        result.across = token_across_layers(lm, saes, sentence, token_index, feature)
        result.across_saes = {layer_: s.name for layer_, s in saes.items()}
        result.notes.append(PER_LAYER_NOTE.format(feature=feature))
        if len(saes) == 1:
            result.notes.append(
                f"Only layer {lsae.layer} has an SAE here, so 7.7-7.9 has one point; `course_variant` applies "
                "that one SAE to every layer as the course did."
            )
    report(1.0, "Done")
    return result


def _check_inputs(lm: LoadedModel, settings: dict[str, Any]) -> None:
    """Bad inputs fail before any SAE is opened (which may mean a download)."""
    for name in ("prompt_a", "prompt_b", "sentence"):
        value = settings[name]
        if not isinstance(value, str) or not value.strip():
            raise InvalidParameterError(name, "must be a non-empty string", value)
    for name in ("skip_bos", "course_variant"):
        check_bool(name, settings[name])
    n_tokens = len(lm.tokenizer(settings["sentence"], add_special_tokens=True)["input_ids"])
    index = settings["token_index"]
    if not _is_int(index) or not 0 <= index < n_tokens:
        raise InvalidParameterError(
            "token_index", f"must be an integer in [0, {n_tokens - 1}] (the sentence's tokens, <bos> = 0)", index
        )
    layer = settings["layer"]
    if layer is not None and (not _is_int(layer) or not 0 <= layer < lm.n_layers):
        raise InvalidParameterError("layer", f"must be empty or an integer in [0, {lm.n_layers - 1}]", layer)
    if settings["feature"] is not None and (not _is_int(settings["feature"]) or settings["feature"] < 0):
        raise InvalidParameterError("feature", "must be empty or an integer >= 0", settings["feature"])
    layers = settings["across_layers"]
    # the course variant reads hidden_states, which has one more entry (the embeddings) than there are layers
    top = lm.n_layers if settings["course_variant"] else lm.n_layers - 1
    if layers is not None and (
        not isinstance(layers, list) or not layers or not all(_is_int(x) and 0 <= x <= top for x in layers)
    ):
        raise InvalidParameterError("across_layers", f"must be empty or a list of integers in [0, {top}]", layers)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _course_feature_on_text(lm: LoadedModel, lsae: LoadedSAE, text: str, feature: int, skip_bos: bool):
    """The course's reading: the layer-L SAE fed hidden_states[L], i.e. the output of block L-1."""
    ids = np.asarray(lm.tokenizer(text, add_special_tokens=True)["input_ids"])
    states = hidden_states(lm, ids)
    return FeatureOnText(
        text=text,
        tokens=readable_pieces(lm.tokenizer, ids.tolist()),
        values=lsae.feature_values(states[lsae.layer], feature),
        layer=lsae.layer,
        feature=feature,
        skip_bos=skip_bos,
    )


def _keep_layers(across: TokenAcrossLayers, layers: list[int] | None) -> TokenAcrossLayers:
    if layers is None:
        return across
    kept = [(layer, v) for layer, v in zip(across.layers, across.values, strict=True) if layer in set(layers)]
    return TokenAcrossLayers(
        across.token, across.position, [layer for layer, _ in kept], [v for _, v in kept], across.variant
    )


MAX_DEFAULT_LAYERS = 8  # SAEs opened for 7.7-7.9 when `across_layers` is empty


def _saes_per_layer(
    lm: LoadedModel,
    lsae: LoadedSAE,
    given: Mapping[int, LoadedSAE] | None,
    from_sources: bool,
    wanted: list[int] | None,
    feature: int,
    notes: list[str],
    report: ProgressFn,
) -> dict[int, LoadedSAE]:
    """layer -> SAE for 7.7-7.9: the given mapping, else every layer the sources have (or `wanted`);
    an SAE passed in alone stands alone."""
    if given is not None:
        saes = dict(given)
    else:
        saes = {lsae.layer: lsae}
        if from_sources:
            candidates = [layer for layer in sae_sources.available_layers(lm) if wanted is None or layer in wanted]
            if lsae.note:
                # The published release could not be opened for the default layer (offline, gated): asking
                # it again for every other layer would only repeat that, so only the shipped layers are read.
                shipped = sae_sources.shipped_saes(lm.model_id)
                candidates = [layer for layer in candidates if layer in shipped]
            if wanted is None and len(candidates) > MAX_DEFAULT_LAYERS:
                # Gemma Scope has an SAE on every layer (26 x 300 MB on gemma-2-2b): by default read a spread
                # of them; `across_layers` asks for any others.
                picks = np.linspace(0, len(candidates) - 1, MAX_DEFAULT_LAYERS).round().astype(int)
                candidates = sorted({candidates[i] for i in picks})
                notes.append(f"7.7-7.9 reads layers {candidates}; set `across_layers` for others.")
            skipped = []
            for i, layer in enumerate(candidates):
                if layer in saes:
                    continue
                report(0.6 + 0.3 * i / max(1, len(candidates)), f"7.7-7.9: opening the layer-{layer} SAE")
                try:
                    opened = sae_sources.open_sae(lm, layer=layer)
                    check_fits(opened, lm)
                except SAELoadError as err:
                    notes.append(f"Layer {layer} left out: {err}")
                    continue
                if opened.layer != layer:  # the sources' nearest stand-in reads another layer
                    skipped.append(layer)
                    continue
                saes[layer] = opened
            if skipped:
                notes.append(f"No SAE reads layer(s) {skipped}: left out of 7.7-7.9.")
    if wanted is not None:
        missing = sorted(set(wanted) - set(saes))
        if missing:
            notes.append(f"No SAE for layer(s) {missing}: left out of 7.7-7.9.")
        saes = {layer: s for layer, s in saes.items() if layer in wanted}
    for layer in sorted(saes):
        if feature >= saes[layer].d_sae:
            notes.append(f"Layer {layer} left out: its SAE has only {saes[layer].d_sae} features.")
            del saes[layer]
    if not saes:
        saes = {lsae.layer: lsae}
    return dict(sorted(saes.items()))


def _round(value: float) -> float:
    return round(float(value), 6)


def _display_name(name: str | None) -> str | None:
    """An SAE shipped in the repository is named relative to it, so reports match across checkouts."""
    if name is None:
        return None
    root = str(REPO_ROOT) + "/"
    return name[len(root) :] if name.startswith(root) else name


def _text_json(result: FeatureOnText) -> dict[str, Any]:
    values = result.values
    counted = values[1:] if result.skip_bos and len(values) > 1 else values
    offset = len(values) - len(counted)
    peak = int(np.argmax(counted)) + offset if counted.size else 0
    return {
        "text": result.text,
        "tokens": list(result.tokens),
        "activations": [_round(v) for v in values],
        "max_activation": _round(result.max_activation),
        "max_position": peak,
        "max_token": result.tokens[peak] if result.tokens else "",
        "active_tokens": int(np.sum(counted > 0)),
        "counted_tokens": len(counted),
        "skip_bos": result.skip_bos,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
