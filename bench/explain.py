"""The "why" views on the embedded model: their cost as ratios to one prefill of the same turn, how faithful
the attributions are, and how big the Attention tab's payload is for a 2,048-token turn.

    python bench/explain.py      # prints one JSON object as its last line

The logit lens is timed as the Layers tab runs it: the reply's recorded distributions stand in for the last
layer, the layers before it scan the vocabulary in bfloat16 where the CPU does that natively ("auto"), and one
page of 64 positions is computed at a time. `logit_lens_float32_s` is the same with float32 at every layer.

Faithfulness: for each of 12 prompts, the first reply token's probability after deleting the 3 user-message
tokens an attribution method ranks highest, against deleting the 3 it ranks lowest: a faithful method's
top tokens matter more (a larger mean drop). Occlusion scores whole segments, so it has no token ranking.
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

from inspectors.engine.attribution import attribute
from inspectors.engine.capture import run_turn
from inspectors.engine.lens import KnownOutput, logit_lens
from inspectors.engine.loading import load_model
from inspectors.engine.sampling import SamplingParams
from inspectors.session import Session, Shared
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "The first man to walk on the Moon was",
    "Photosynthesis turns sunlight into",
    "The largest planet in the solar system is",
    "Shakespeare wrote the play Romeo and",
    "The chemical symbol for gold is",
    "A triangle has three sides and a square has",
    "The Great Wall is in the country of",
    "Einstein is famous for the theory of",
    "The opposite of hot is",
    "Monday comes before",
]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def prefill_s(lm, ids: np.ndarray) -> float:
    with torch.inference_mode():
        tensor = torch.tensor(ids[None, :])
        lm.model(tensor)  # warm-up
        return statistics.median(timed(lambda: lm.model(tensor)) for _ in range(3))


def lens_ratio(lm, record, positions: np.ndarray, precision: str) -> float:
    """The lens over `positions` as the Layers tab computes it / one prefill of the whole turn."""
    ids, known = record.token_ids, KnownOutput.of_reply(record)  # what the Layers tab hands the lens
    logit_lens(lm, ids, positions, known_output=known, precision=precision)  # warm-up (the bfloat16 head copy)
    lens_s = statistics.median(
        timed(lambda: logit_lens(lm, ids, positions, known_output=known, precision=precision)) for _ in range(5)
    )
    return lens_s / prefill_s(lm, ids)


def lens_costs(lm) -> dict:
    """The lens on the short turn the other costs use, in both precisions, and on one page (64 positions) of
    a long reply in a three-turn chat, where a prefill covers more tokens than the page the tab shows."""
    short = run_turn(lm, [{"role": "user", "content": "Tell me about the history of the Moon landings."}],
                     SamplingParams(max_new_tokens=32))  # fmt: skip
    reply = np.arange(short.n_prompt - 1, short.n_tokens - 1)
    chat = [
        {"role": "user", "content": "Tell me about the history of the Moon landings."},
        {"role": "assistant", "content": short.reply_text},
        {"role": "user", "content": "And what did the astronauts bring back? Tell me in detail, please."},
    ]
    long = run_turn(lm, chat, SamplingParams(max_new_tokens=160, repetition_penalty=1.3))
    page = np.arange(long.n_prompt - 1, long.n_tokens - 1)[:64]
    return {
        "logit_lens_s": lens_ratio(lm, short, reply, "auto"),
        "logit_lens_float32_s": lens_ratio(lm, short, reply, "float32"),
        "logit_lens_page_of_long_turn_s": lens_ratio(lm, long, page, "auto"),
        "logit_lens_long_turn_tokens": long.n_tokens,
        "logit_lens_precision": logit_lens(lm, short.token_ids, reply[:1]).precision,
    }


def costs(lm) -> dict:
    record = run_turn(lm, [{"role": "user", "content": "Tell me about the history of the Moon landings."}],
                      SamplingParams(max_new_tokens=32))  # fmt: skip
    base = prefill_s(lm, record.token_ids)
    position = record.n_prompt + 1
    fast_s = statistics.median(timed(lambda: attribute(lm, record.token_ids, position, "gradient")) for _ in range(3))
    ig_s = timed(lambda: attribute(lm, record.token_ids, position, "integrated_gradients", steps=32))
    return {
        "explain_turn_tokens": record.n_tokens,
        "explain_prefill_s": base,
        "attribution_fast_s": fast_s / base,
        "attribution_ig_s": ig_s / base,
    }


def user_positions(record) -> np.ndarray:
    return record.segments.positions("current user message")


def probability(lm, ids: list[int], target: int) -> float:
    with torch.inference_mode():
        logits = lm.model(torch.tensor([ids]), logits_to_keep=1).logits[0, -1].double()
    return float(torch.softmax(logits, -1)[target])


def faithfulness(lm) -> dict:
    drops: dict[str, dict[str, list[float]]] = {
        m: {"top3": [], "bottom3": []} for m in ("gradient", "integrated_gradients")
    }
    for prompt in PROMPTS:
        record = run_turn(lm, [{"role": "user", "content": prompt}], SamplingParams(max_new_tokens=1))
        ids, position = record.token_ids, record.n_prompt
        target = int(ids[position])
        base = probability(lm, ids[:position].tolist(), target)
        users = user_positions(record)
        for method in drops:
            scores = attribute(lm, ids, position, method, steps=32).scores[users]
            order = users[np.argsort(-scores)]
            for name, chosen in (("top3", order[:3]), ("bottom3", order[-3:])):
                kept = [int(t) for i, t in enumerate(ids[:position]) if i not in set(chosen.tolist())]
                drops[method][name].append(base - probability(lm, kept, target))
    return {
        f"faithfulness_{method}_{name}_mean_drop": float(np.mean(values))
        for method, by in drops.items()
        for name, values in by.items()
    } | {"faithfulness_prompts": len(PROMPTS)}


def payload(settings: Settings) -> dict:
    """Plotly JSON bytes of the Attention tab's views for a 2,048-token turn."""
    session = Session(Shared(settings))
    text = "The history of astronomy is long and full of surprises. " * 230
    last = list(session.send(text, "", 0, 0, 1, 8, "0"))[-1]
    assert last.ok, last.status
    record = session.records[-1]
    attention = session.attention_panel(0, 9, "mean", 0)
    segments = session.turn_attention_panel(0, "mean", "mean")
    sizes = {name: len(fig.to_json()) for name, fig in (("heatmap", attention.heatmap),
             ("segment_bars", segments.stacked), ("segment_layers", segments.by_layer)) if fig is not None}  # fmt: skip
    return {"attention_view_tokens": record.n_tokens, "attention_view_payload_mb": sum(sizes.values()) / 2**20,
            "attention_view_payload_parts_kb": {k: round(v / 1024, 1) for k, v in sizes.items()}}  # fmt: skip


def main() -> None:
    settings = Settings(model_id=EMBEDDED_MODEL_ID, max_context_tokens=2048, max_new_tokens_limit=256)
    lm = load_model(EMBEDDED_MODEL_ID, settings)
    results = {}
    results.update(costs(lm))
    results.update(lens_costs(lm))
    results.update(faithfulness(lm))
    results.update(payload(settings))
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
