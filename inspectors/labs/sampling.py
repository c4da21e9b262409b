"""Lab `sampling` (course HW3 section 4): top-k vs top-p sampling, and how diverse each one's samples are.

Every setting samples `n_samples` continuations of one plain-text prompt (no chat template, one `<bos>`)
with transformers' own warpers (`generate(do_sample=True, top_k=..., top_p=...)`), then scores their
diversity with self-BLEU (as the course) and distinct-1/2.

A setting is a compact string: comma-separated `key=value` pairs with keys `top_k`, `top_p` and
`temperature`, e.g. `top_k=2`, `top_p=0.6`, `top_k=50,top_p=0.9`, `temperature=0.7,top_p=0.9`. A key left
out is off (top_k=0, top_p=1) and the temperature is the lab's `temperature`. The string is the setting's
name in the result. `course_variant` reproduces the course's quirk: a setting that gives no `top_k` keeps
transformers' default top_k=50, so its "top-p" samples were also top-k filtered.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig

from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.sampling import MAX_SEED, MAX_TEMPERATURE, check_int, check_number
from inspectors.errors import InvalidParameterError
from inspectors.labs.diversity import distinct_n, self_bleu_per_sentence, smoothing_function
from inspectors.labs.generation import check_bool, check_max_new_tokens, split_at_stop

COURSE_DEFAULT_TOP_K = 50  # transformers' default top_k, left active by the course's top-p runs
MAX_SAMPLES = 200
MAX_SETTINGS = 16
SETTING_KEYS = ("top_k", "top_p", "temperature")
SPEC_EXAMPLES = "'top_k=2', 'top_p=0.6' or 'top_k=50,top_p=0.9'"


@dataclass(frozen=True)
class SamplingSetting:
    """One parsed setting; a field is None when the spec leaves it out."""

    name: str  # the spec as written, whitespace removed: the key of this setting in the result
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None

    def effective(self, temperature: float, course_variant: bool) -> dict[str, Any]:
        """What generate is given: top_k (0 = off), top_p (1 = off), temperature, and whether the course's
        implicit top_k=50 was applied."""
        implicit_top_k = self.top_k is None and course_variant
        return {
            "top_k": self.top_k if self.top_k is not None else (COURSE_DEFAULT_TOP_K if implicit_top_k else 0),
            "top_p": float(self.top_p if self.top_p is not None else 1.0),
            "temperature": float(self.temperature if self.temperature is not None else temperature),
            "course_top_k_applied": implicit_top_k,
        }


def parse_setting(spec: object, where: str = "setting") -> SamplingSetting:
    """Parse one setting string such as `top_k=2` or `top_k=50,top_p=0.9`; errors name `where` and the rule."""

    def bad(rule: str) -> InvalidParameterError:
        return InvalidParameterError(where, rule, spec)

    if not isinstance(spec, str) or not spec.strip():
        raise bad(f"must be a non-empty string such as {SPEC_EXAMPLES}")
    name = "".join(spec.split())
    values: dict[str, Any] = {}
    for part in name.split(","):
        key, sep, raw = part.partition("=")
        if not sep or not key or not raw:
            raise bad(f"must be comma-separated key=value pairs such as {SPEC_EXAMPLES}; {part!r} is not one")
        if key not in SETTING_KEYS:
            raise bad(f"has an unknown key {key!r}; the keys are {', '.join(SETTING_KEYS)} (e.g. {SPEC_EXAMPLES})")
        if key in values:
            raise bad(f"gives {key} twice")
        values[key] = _parse_value(key, raw, bad)
    return SamplingSetting(name=name, **values)


def _parse_value(key: str, raw: str, bad) -> int | float:
    if key == "top_k":
        if not raw.isdigit():
            raise bad(f"top_k must be a whole number >= 0 (0 = off, 1 = greedy), not {raw!r}")
        return int(raw)
    try:
        value = float(raw)
    except ValueError:
        raise bad(f"{key} must be a number, not {raw!r}") from None
    if key == "top_p" and not 0.0 <= value <= 1.0:
        raise bad(f"top_p must be in [0, 1] (1 = off, 0 = greedy), not {raw!r}")
    if key == "temperature" and not (math.isfinite(value) and 0.0 < value <= MAX_TEMPERATURE):
        raise bad(f"temperature must be in (0, {MAX_TEMPERATURE:g}] (sampling needs it positive), not {raw!r}")
    return value


def parse_settings(specs: object) -> list[SamplingSetting]:
    """Parse the preset's list of setting strings; names must be unique (they key the result)."""
    if isinstance(specs, str) or not isinstance(specs, Sequence) or not specs:
        raise InvalidParameterError("settings", f"must be a non-empty list of strings such as [{SPEC_EXAMPLES}]", specs)
    if len(specs) > MAX_SETTINGS:
        raise InvalidParameterError("settings", f"may hold at most {MAX_SETTINGS} settings", len(specs))
    settings = [parse_setting(spec, f"settings[{i}]") for i, spec in enumerate(specs)]
    names = [s.name for s in settings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidParameterError("settings", f"must not repeat a setting (repeated: {duplicates})", specs)
    return settings


def setting_seed(seed: int, name: str) -> int:
    """The torch seed of one setting: a hash of the lab's seed and the setting's name, so adding, removing
    or reordering settings leaves every other setting's samples unchanged."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class SettingResult:
    name: str
    top_k: int  # as given to generate: 0 = off
    top_p: float  # 1 = off
    temperature: float
    course_top_k_applied: bool  # the course's implicit top_k=50 was active (course_variant)
    seed: int  # torch seed of this setting's generate call
    samples: list[str]  # decoded new tokens, special tokens skipped, stripped
    n_new_tokens: list[int]  # tokens each sample generated before stopping (stop token not counted)
    self_bleu_per_sample: list[float]
    self_bleu: float
    distinct_1: float
    distinct_2: float

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": list(self.samples),
            "self_bleu": self.self_bleu,
            "distinct_1": self.distinct_1,
            "distinct_2": self.distinct_2,
            "self_bleu_per_sample": list(self.self_bleu_per_sample),
            "n_new_tokens": list(self.n_new_tokens),
            "top_k": self.top_k,
            "top_p": self.top_p,
            "temperature": self.temperature,
            "course_top_k_applied": self.course_top_k_applied,
            "seed": self.seed,
        }


@dataclass
class SamplingResult:
    model_id: str
    prompt: str
    n_prompt_tokens: int
    n_samples: int
    max_new_tokens: int
    temperature: float
    seed: int
    smoothing: str | None
    course_variant: bool
    settings: list[SettingResult] = field(default_factory=list)

    def setting(self, name: str) -> SettingResult:
        for result in self.settings:
            if result.name == name:
                return result
        raise KeyError(f"no setting named {name!r}; settings: {[s.name for s in self.settings]}")

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "prompt": self.prompt,
            "n_prompt_tokens": self.n_prompt_tokens,
            "n_samples": self.n_samples,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "smoothing": self.smoothing,
            "course_variant": self.course_variant,
            "settings": {s.name: s.to_json() for s in self.settings},
        }


def prompt_ids(lm: LoadedModel, prompt: str) -> list[int]:
    """The prompt as plain text, no chat template, as the tokenizer encodes it by itself: on Gemma with
    exactly one `<bos>` first; on a tokenizer that adds none (SmolLM2), none."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParameterError("prompt", "must be a non-empty string", prompt)
    return list(lm.tokenizer(prompt, add_special_tokens=True)["input_ids"])


def _generation_config(lm: LoadedModel, effective: dict[str, Any], n_samples: int, max_new_tokens: int):
    # Every warper value is explicit, so neither the model's generation_config (Gemma 3 ships top_k=64)
    # nor transformers' defaults (top_k=50) add a filter the setting does not name.
    return GenerationConfig(
        do_sample=True,
        temperature=effective["temperature"],
        top_k=effective["top_k"],
        top_p=effective["top_p"],
        repetition_penalty=1.0,
        max_new_tokens=max_new_tokens,
        num_return_sequences=n_samples,
        eos_token_id=lm.stop_token_ids,
        pad_token_id=lm.pad_token_id,
        use_cache=True,
    )


def _decode(lm: LoadedModel, new_ids: list[int]) -> tuple[str, int]:
    """(the sample's text up to its stop token, how many tokens that is)."""
    kept, _ = split_at_stop(lm, new_ids)
    return lm.tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept)


def sample_setting(
    lm: LoadedModel,
    ids: list[int],
    setting: SamplingSetting,
    *,
    n_samples: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    course_variant: bool,
    smoothing: str | None,
) -> SettingResult:
    """`n_samples` continuations of `ids` under one setting (one batched generate call), and their diversity."""
    effective = setting.effective(temperature, course_variant)
    torch_seed = setting_seed(seed, setting.name)
    config = _generation_config(lm, effective, n_samples, max_new_tokens)
    input_ids = torch.tensor([ids], dtype=torch.long, device=lm.device)  # (1, T)
    with lm.lock, torch.inference_mode():
        # Seeded inside the lock: the RNG is process-global and another session could draw from it.
        torch.manual_seed(torch_seed)
        sequences = lm.model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config
        )  # (n_samples, T + new)
    decoded = [_decode(lm, row[len(ids) :].tolist()) for row in sequences]
    samples = [text for text, _ in decoded]
    per_sample = self_bleu_per_sentence(samples, smoothing)
    return SettingResult(
        name=setting.name,
        top_k=effective["top_k"],
        top_p=effective["top_p"],
        temperature=effective["temperature"],
        course_top_k_applied=effective["course_top_k_applied"],
        seed=torch_seed,
        samples=samples,
        n_new_tokens=[n for _, n in decoded],
        self_bleu_per_sample=per_sample,
        self_bleu=float(sum(per_sample) / len(per_sample)),
        distinct_1=distinct_n(samples, 1),
        distinct_2=distinct_n(samples, 2),
    )


def run(
    lm: LoadedModel,
    *,
    progress: ProgressFn | None = None,
    prompt: str,
    settings: list[str],
    n_samples: int = 20,
    max_new_tokens: int = 30,
    temperature: float = 1.0,
    seed: int = 0,
    smoothing: str | None = None,
    course_variant: bool = False,
) -> SamplingResult:
    """Sample `n_samples` continuations of `prompt` under each of `settings` and score their diversity."""
    parsed = parse_settings(settings)
    check_int("n_samples", n_samples, 2, MAX_SAMPLES)  # self-BLEU compares each sample with the others
    check_max_new_tokens(lm, max_new_tokens)
    check_int("seed", seed, 0, MAX_SEED)
    check_number("temperature", temperature, 0.0, MAX_TEMPERATURE, low_open=True)  # sampling needs T > 0
    check_bool("course_variant", course_variant)
    smoothing_function(smoothing)  # refuses an unknown method before any generation
    ids = prompt_ids(lm, prompt)
    results = []
    for i, setting in enumerate(parsed):
        if progress:
            progress(i / len(parsed), f"Sampling {n_samples} continuations with {setting.name}")
        results.append(
            sample_setting(
                lm,
                ids,
                setting,
                n_samples=n_samples,
                max_new_tokens=max_new_tokens,
                temperature=float(temperature),
                seed=seed,
                course_variant=course_variant,
                smoothing=smoothing,
            )
        )
    if progress:
        progress(1.0, "Sampling done")
    return SamplingResult(
        model_id=lm.model_id,
        prompt=prompt,
        n_prompt_tokens=len(ids),
        n_samples=n_samples,
        max_new_tokens=max_new_tokens,
        temperature=float(temperature),
        seed=seed,
        smoothing=smoothing,
        course_variant=course_variant,
        settings=results,
    )
