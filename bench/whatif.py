"""What if on the embedded model: steering's cost per token as a ratio to plain decoding, and a branch's
latency as a ratio to a fresh turn of the same length.

    python bench/whatif.py      # prints one JSON object as its last line

Steering adds one forward hook (a vector added after one decoder layer) and, after the reply, two
teacher-forced passes for the per-step KL between the steered and the default distributions; both are
reported: the hook alone per generated token (plain greedy `generate` of the same 48 tokens with and
without it), and the whole captured steered turn against a captured plain one. A branch re-reads its forced
prefix in one pass and generates the rest; a fresh turn generates all of it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspectors.engine.capture import run_turn
from inspectors.engine.loading import load_model
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.steering import Steering, steered, step_kl
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

MESSAGES = [{"role": "user", "content": "Tell me about the history of the Moon landings."}]
N_TOKENS, BRANCH_AT, REPEATS = 48, 24, 3


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def plain_generate(lm, prompt: torch.Tensor) -> None:
    """Greedy decoding of exactly N_TOKENS, nothing recorded: what the hook's cost is measured against."""
    with torch.inference_mode():
        lm.model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                          max_new_tokens=N_TOKENS, min_new_tokens=N_TOKENS)  # fmt: skip


def main() -> None:
    lm = load_model(EMBEDDED_MODEL_ID, Settings.load(env={}))
    params = SamplingParams(max_new_tokens=N_TOKENS, seed=0)
    layer = lm.n_layers // 2
    # a zero vector: the hook runs and the reply stays the same length, so the cost is the hook's alone
    zero = Steering(layer, np.zeros(lm.model.config.hidden_size, dtype=np.float32), "zero")
    run_turn(lm, MESSAGES, params)  # warm-up
    plain, decode, steered_turn, hooked, kl, branch = [], [], [], [], [], []
    for _ in range(REPEATS):
        seconds, record = timed(run_turn, lm, MESSAGES, params)
        plain.append(seconds / record.steps.n_steps)
        prompt = torch.tensor(record.prompt_ids[None, :], dtype=torch.long)
        decode.append(timed(plain_generate, lm, prompt)[0] / N_TOKENS)
        with steered(lm, zero):
            hooked.append(timed(plain_generate, lm, prompt)[0] / N_TOKENS)
        seconds, with_hook = timed(run_turn, lm, MESSAGES, params, steering=zero)
        steered_turn.append(seconds / with_hook.steps.n_steps)
        kl.append(timed(step_kl, lm, with_hook.token_ids, with_hook.n_prompt, zero)[0])
        prefix = record.reply_ids[:BRANCH_AT].tolist()
        seconds_branch, branched = timed(run_turn, lm, MESSAGES, params, forced=prefix)
        branch.append((seconds_branch, record.steps.n_steps * plain[-1], branched.steps.n_steps))
    per_token_plain = statistics.median(plain)
    print(json.dumps({
        "model": EMBEDDED_MODEL_ID,
        "reply_tokens": N_TOKENS,
        "plain_decode_s_per_token": per_token_plain,
        "steering_hook_ratio_per_token": statistics.median(hooked) / statistics.median(decode),
        "steered_turn_ratio_per_token_with_kl": statistics.median(steered_turn) / per_token_plain,
        "steering_kl_passes_s": statistics.median(kl),
        "branch_at_step": BRANCH_AT,
        "branch_latency_ratio_vs_fresh_turn": statistics.median(b / fresh for b, fresh, _ in branch),
        "branch_reply_tokens": branch[-1][2],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
