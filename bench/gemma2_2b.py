"""google/gemma-2-2b-it at its real size on this CPU, in bfloat16: a random-weight model of its exact config
(2.6B parameters; the embedded Gemma tokenizer and Gemma 2's template, since only shapes matter) and a random
SAE of Gemma Scope's shape (16,384 x 2,304) at layer 20. Whether it fits a 16 GB, 2-vCPU CPU Space.

    python bench/gemma2_2b.py     # prints one JSON object as its last line (minutes)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.shapes import save_random_gemma2_2b_it
from inspectors.session import Session, Shared
from inspectors.settings import REPO_ROOT, Settings

PROMPT_TOKENS, NEW_TOKENS = 256, 16


def rss_gib() -> float:
    return psutil.Process().memory_info().rss / 2**30


def save_gemma_scope_shaped_sae(folder: Path, d_in: int = 2304, d_sae: int = 16_384, layer: int = 20) -> Path:
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(0)
    config = JumpReLUSAEConfig(
        d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post")
    )
    JumpReLUSAE(config).save_model(folder)
    return folder


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_process(settings: Settings, repeats: int) -> dict:
    """Load, prefill, decode, one captured turn and every tab, in this process (freed on return)."""
    before = rss_gib()
    started = time.perf_counter()
    session = Session(Shared(settings))
    lm = session.model()
    figures = {"gemma2_2b_load_s": time.perf_counter() - started, "gemma2_2b_rss_gib": rss_gib()}
    figures["gemma2_2b_weights_gib"] = sum(p.numel() * p.element_size() for p in lm.model.parameters()) / 2**30
    figures["gemma2_2b_parameters_b"] = sum(p.numel() for p in lm.model.parameters()) / 1e9
    figures["gemma2_2b_rss_growth_gib"] = figures["gemma2_2b_rss_gib"] - before
    ids = torch.randint(1000, 20000, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))

    def generate() -> None:
        lm.model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
        )  # fmt: skip

    with torch.inference_mode():
        lm.model(ids)  # warm-up
        prefill = statistics.median(timed(lambda: lm.model(ids)) for _ in range(repeats))
        total = timed(generate)
    figures["gemma2_2b_prefill_256_s"] = prefill
    figures["gemma2_2b_decode_tokens_per_s"] = (NEW_TOKENS - 1) / max(total - prefill, 1e-9)
    session.shared.sae(session.model_id, wait=True)
    started = time.perf_counter()
    last = list(session.send("Explain what attention does in a transformer.", "", 0, 0, 1, NEW_TOKENS, "0"))[-1]
    figures["gemma2_2b_captured_turn_s"] = time.perf_counter() - started
    figures["gemma2_2b_captured_turn_tokens"] = session.records[-1].n_tokens
    assert last.ok, last.status
    for name, panel in [
        ("prompt", lambda: session.prompt_panel(0)),
        ("tokens", lambda: session.tokens_panel(0)),
        ("next_token", lambda: session.next_token_panel(0, 0)),
        ("attention", lambda: session.attention_panel(0, None, "mean")),
        ("sae", lambda: session.sae_panel(0, None, "10004", 0)),
        ("sae_other_feature", lambda: session.sae_panel(0, None, "7", 0)),
    ]:
        figures[f"gemma2_2b_tab_{name}_s"] = timed(panel)
    figures["gemma2_2b_peak_rss_gib"] = rss_gib()
    return figures


def measure(repeats: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="gemma2-2b-") as tmp:
        model_dir = save_random_gemma2_2b_it(Path(tmp) / "gemma-2-2b-it-shaped")
        sae_dir = save_gemma_scope_shaped_sae(Path(tmp) / "sae")
        settings = Settings(model_id=str(model_dir), dtype="bfloat16", sae=str(sae_dir), sae_feature=10004,
                            max_context_tokens=2048, max_new_tokens_limit=512)  # fmt: skip
        figures = in_process(settings, repeats)
        out = Path(tmp) / "report"
        env = {**os.environ, "GEMMA_INSPECTOR_DTYPE": "bfloat16", "GEMMA_INSPECTOR_SAE": str(sae_dir)}
        command = [sys.executable, "-m", "inspectors.report", "--quick", "--model", str(model_dir), "--out", str(out)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        figures["gemma2_2b_quick_report_s"] = time.perf_counter() - started
        figures["gemma2_2b_quick_report_ok"] = done.returncode == 0
        if done.returncode == 0:
            figures["gemma2_2b_quick_report_lab_s"] = json.loads((out / "report.json").read_text())["timing"]
        else:
            figures["gemma2_2b_quick_report_error"] = done.stderr[-500:]
    figures["fits_16gb_cpu_space"] = figures["gemma2_2b_peak_rss_gib"] < 14  # leave the OS and Gradio room
    return figures


if __name__ == "__main__":
    print(json.dumps(measure()))
