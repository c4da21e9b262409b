"""One prepared check on a GPU machine (the device tool): gemma-2-2b-it's shapes loaded in the automatic
dtype (bfloat16 on a GPU that has it) and in 4-bit, a captured turn, every tab, a lab; memory and time of
each. Prints one JSON object as its last line and writes it to $OUT/gpu_check.json when OUT is set.

    python bench/gpu_check.py            # on a GPU
    python bench/gpu_check.py --tiny     # the same steps on a tiny model, on any machine (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.shapes import save_random_gemma2_2b_it
from inspectors.session import Session, Shared
from inspectors.settings import Settings


def gib(n_bytes: float) -> float:
    return round(n_bytes / 2**30, 3)


def check(model_dir: Path, settings: Settings, label: str) -> dict:
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    figures: dict = {}
    started = time.perf_counter()
    session = Session(Shared(settings), label)
    lm = session.model()
    figures["load_s"] = time.perf_counter() - started
    figures["dtype"], figures["dtype_note"], figures["device"] = str(lm.dtype), lm.dtype_note, str(lm.device)
    if cuda:
        figures["weights_gib"] = gib(torch.cuda.memory_allocated())
    started = time.perf_counter()
    last = list(session.send("Explain attention in one sentence.", "", 0, 0, 1, 64, "0"))[-1]
    figures["turn_s"] = time.perf_counter() - started
    figures["turn_ok"] = last.ok
    figures["turn_status"] = last.status
    record = session.records[-1]
    figures["turn_tokens"] = record.n_tokens
    for name, panel in [
        ("prompt", lambda: session.prompt_panel(0)),
        ("tokens", lambda: session.tokens_panel(0)),
        ("next_token", lambda: session.next_token_panel(0, 0)),
        ("attention", lambda: session.attention_panel(0, None, "mean")),
        ("sae", lambda: session.sae_panel(0)),
    ]:
        started = time.perf_counter()
        panel()
        figures[f"tab_{name}_s"] = time.perf_counter() - started
    started = time.perf_counter()
    lab = session.lab_panel("attention_generation", {"prompt": "Google", "max_new_tokens": 8, "layer": 1, "head": 0})
    figures["lab_attention_generation_s"] = time.perf_counter() - started
    figures["lab_ok"] = lab.result is not None
    if cuda:
        figures["peak_gib"] = gib(torch.cuda.max_memory_allocated())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model: the same steps anywhere, in seconds")
    args = parser.parse_args()
    results: dict = {"gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_random_gemma2_2b_it(Path(tmp) / "gemma-2-2b-it-shaped", tiny=args.tiny)
        base = {"model_id": str(model_dir), "max_context_tokens": 2048, "max_new_tokens_limit": 512}
        results["auto_dtype"] = check(model_dir, Settings(**base), "auto")
        if torch.cuda.is_available():
            results["nf4"] = check(model_dir, Settings(**base, load_in_4bit=True), "nf4")
        else:
            results["nf4"] = "skipped: 4-bit needs a CUDA GPU"
    line = json.dumps(results)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(line)
    print(line)


if __name__ == "__main__":
    main()
