"""Benchmark of the capture engine on the embedded Gemma 3 270M. Prints one JSON object as its last line.

    python bench/run.py                # 5 interleaved repeats per measurement, gemma-2-2b-it's size too
    python bench/run.py --quick        # 3 repeats, without the full-size model

Timings on shared machines are noisy, so speed is reported as ratios measured in one run, with
plain and captured runs interleaved.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import Gemma2Config, Gemma2ForCausalLM

from inspectors import LayerProbe, SamplingParams, Settings, load_model, run_turn
from inspectors.settings import EMBEDDED_MODEL_ID

log = logging.getLogger("bench")
PROMPT_TOKENS = 256
NEW_TOKENS = 64
FILLER = (
    "The history of astronomy is long and full of surprises. Early observers tracked the planets across the "
    "night sky, recorded eclipses, and built calendars around the seasons. "
)


def chat_messages_of_length(lm, n_tokens: int) -> list[dict[str, str]]:
    """A one-message conversation whose templated prompt is exactly `n_tokens` tokens."""
    words = (FILLER * 200).split(" ")
    low, high = 1, len(words)
    while low < high:  # longest prefix of words that fits
        mid = (low + high + 1) // 2
        text = " ".join(words[:mid]) + " Summarise this."
        ids = lm.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}],
            chat_template=lm.chat_template,
            add_generation_prompt=True,
            tokenize=False,
        )
        length = len(lm.tokenizer(ids, add_special_tokens=False)["input_ids"])
        low, high = (mid, high) if length <= n_tokens else (low, mid - 1)
    text = " ".join(words[:low]) + " Summarise this."
    return [{"role": "user", "content": text}]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def capture_overhead(lm, repeats: int) -> dict:
    messages = chat_messages_of_length(lm, PROMPT_TOKENS)
    params = SamplingParams(temperature=0, max_new_tokens=NEW_TOKENS)
    # A residual probe as the SAE view uses, so "with capture" includes reading the residual stream.
    probe = LayerProbe("resid_norm", lm.n_layers // 2, lambda resid, ids: resid.norm(dim=-1).cpu().numpy())
    record = run_turn(lm, messages, params, probes=[probe])  # warm-up, and the tokens to reproduce
    prompt = torch.tensor([record.prompt_ids.tolist()], device=lm.device)
    n_new = record.steps.n_steps

    def plain() -> None:
        with torch.inference_mode():
            lm.model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=False,
                max_new_tokens=NEW_TOKENS,
                eos_token_id=lm.stop_token_ids,
            )

    plain_s, capture_s = [], []
    for _ in range(repeats):
        plain_s.append(timed(plain))
        capture_s.append(timed(lambda: run_turn(lm, messages, params, probes=[probe])))
    return {
        "capture_overhead_ratio": statistics.median(capture_s) / statistics.median(plain_s),
        "capture_prompt_tokens": record.n_prompt,
        "capture_new_tokens": n_new,
        "plain_generate_s": statistics.median(plain_s),
        "captured_turn_s": statistics.median(capture_s),
    }


def throughput(lm, repeats: int) -> dict:
    ids = torch.randint(1000, 20000, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        lm.model(ids)  # warm-up
        prefill = statistics.median(timed(lambda: lm.model(ids)) for _ in range(repeats))
        total = statistics.median(
            timed(
                lambda: lm.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=False,
                    max_new_tokens=NEW_TOKENS,
                    min_new_tokens=NEW_TOKENS,
                )
            )
            for _ in range(repeats)
        )
    return {"prefill_s": prefill, "decode_tokens_per_s": (NEW_TOKENS - 1) / max(total - prefill, 1e-9)}


def cpu_dtype_comparison(settings: Settings, fp32_lm, repeats: int) -> dict:
    """bf16 vs fp32 on this CPU, interleaved, medians: prefill, plain decode, and a captured turn.

    An earlier version timed one captured turn per dtype on three short prompts, fp32 first, and found
    bf16 no faster (1.01x): the bf16 model ran cold (its first call pays oneDNN's set-up), the replies had
    different lengths, and on a 15-token prompt a step's time is mostly what does not depend on the
    dtype (the recorder's softmax and top-k over 262k logits in float32, Python). Here both models are
    warmed up, the same 256-token prompt and a fixed number of new tokens are timed alternately, and the
    captured turn is timed per generated token."""
    bf16_lm = load_model(EMBEDDED_MODEL_ID, Settings(**{**settings.__dict__, "dtype": "bfloat16"}))
    models = {"fp32": fp32_lm, "bf16": bf16_lm}
    ids = torch.randint(1000, 20000, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    messages = chat_messages_of_length(fp32_lm, PROMPT_TOKENS)
    params = SamplingParams(temperature=0, max_new_tokens=NEW_TOKENS)

    def generate(lm) -> None:
        lm.model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
        )  # fmt: skip

    times: dict[str, dict[str, list[float]]] = {
        name: {"prefill": [], "generate": [], "turn_per_token": []} for name in models
    }
    with torch.inference_mode():
        for lm in models.values():  # warm-up: the first call of each dtype pays one-time costs
            lm.model(ids)
            generate(lm)
        for _ in range(repeats):
            for name, lm in models.items():
                times[name]["prefill"].append(timed(lambda lm=lm: lm.model(ids)))
                times[name]["generate"].append(timed(lambda lm=lm: generate(lm)))
                start = time.perf_counter()
                record = run_turn(lm, messages, params)
                times[name]["turn_per_token"].append((time.perf_counter() - start) / max(1, record.steps.n_steps))
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    decode = {name: (NEW_TOKENS - 1) / max(m["generate"] - m["prefill"], 1e-9) for name, m in med.items()}
    same, prob_diff = 0, 0.0
    prompts = ["Name a color in a rainbow.", "What is the capital of France?", "Write a haiku about autumn."]
    for prompt in prompts:
        a = run_turn(fp32_lm, [{"role": "user", "content": prompt}], SamplingParams(max_new_tokens=32))
        b = run_turn(bf16_lm, [{"role": "user", "content": prompt}], SamplingParams(max_new_tokens=32))
        same += int(a.token_ids.tolist() == b.token_ids.tolist())
        # probabilities the Next token tab shows: first reply step, the fp32 top-10 looked up in bf16
        fp32_top = dict(zip(a.steps.raw_ids[0].tolist(), a.steps.raw_probs[0].tolist(), strict=True))
        bf16_top = dict(zip(b.steps.raw_ids[0].tolist(), b.steps.raw_probs[0].tolist(), strict=True))
        shared = [i for i in list(fp32_top)[:10] if i in bf16_top]
        prob_diff = max([prob_diff, *(abs(fp32_top[i] - bf16_top[i]) for i in shared)])
    return {
        "bf16_speedup_vs_fp32": med["fp32"]["turn_per_token"] / med["bf16"]["turn_per_token"],
        "bf16_prefill_speedup_vs_fp32": med["fp32"]["prefill"] / med["bf16"]["prefill"],
        "bf16_decode_speedup_vs_fp32": decode["bf16"] / decode["fp32"],
        "bf16_prefill_s": med["bf16"]["prefill"],
        "fp32_prefill_s": med["fp32"]["prefill"],
        "bf16_decode_tokens_per_s": decode["bf16"],
        "fp32_decode_tokens_per_s": decode["fp32"],
        "bf16_same_greedy_replies": f"{same}/{len(prompts)}",
        "bf16_max_abs_prob_diff_top10": prob_diff,
    }


def smollm2(settings: Settings, repeats: int) -> dict:
    """The offline instruction-tuned model: load from the converted cache (fetched first if need be), decode."""
    from inspectors.settings import SMOLLM2_MODEL_ID

    load_model(SMOLLM2_MODEL_ID, settings)  # fetch and convert on a first run; not what is timed
    from inspectors.engine import loading

    loading._loaded.clear()  # time a start from the converted cache, as every start after the first
    started = time.perf_counter()
    lm = load_model(SMOLLM2_MODEL_ID, settings)
    load_s = time.perf_counter() - started
    figures = throughput(lm, repeats)
    return {"smollm2_load_s": load_s, "smollm2_decode_tokens_per_s": figures["decode_tokens_per_s"],
            "smollm2_prefill_s": figures["prefill_s"]}  # fmt: skip


def session_state_mb(tokenizer_dir: Path, tmp: Path, n_tokens: int = 2048) -> dict:
    """Pickled record size at 2,048 tokens for gemma-2-2b's shapes (26 layers, 8 heads, 4 KV heads,
    head_dim 256, vocab 256,000). The record holds nothing per hidden unit, so d_model is reduced to
    256 to keep the random model small on CPU; attention and vocabulary shapes are gemma-2-2b's, and a
    16,384-feature SAE probe adds the sparse activations a Gemma Scope turn carries."""
    config = Gemma2Config(
        vocab_size=256_000,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        max_position_embeddings=8192,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Gemma2ForCausalLM(config).save_pretrained(tmp)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    lm = load_model(str(tmp), Settings(max_context_tokens=n_tokens, max_new_tokens_limit=64))
    messages = chat_messages_of_length(lm, n_tokens - 64)
    # A Gemma Scope-sized SAE (16,384 features, JumpReLU, random weights) at layer 20, so the record
    # carries the sparse SAE activations a real turn would.
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from inspectors.sae.activations import sae_probe
    from inspectors.sae.loading import load_sae_from_disk

    sae_cfg = JumpReLUSAEConfig(
        d_in=config.hidden_size, d_sae=16_384, metadata=SAEMetadata(hook_name="blocks.20.hook_resid_post")
    )
    JumpReLUSAE(sae_cfg).save_model(tmp / "sae")
    probe = sae_probe(load_sae_from_disk(tmp / "sae"), feature=10004)
    record = run_turn(lm, messages, SamplingParams(max_new_tokens=64), probes=[probe])
    return {
        "session_state_mb_2048": record.serialized_size() / 2**20,
        "session_state_tokens": record.n_tokens,
        "attention_layer_mb_2048_fp16": 8 * n_tokens * n_tokens * 2 / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat per measurement")
    parser.add_argument("--no-ui", action="store_true", help="skip the browser measurement (bench/ui_turn.py)")
    parser.add_argument("--no-full-size", action="store_true", help="skip gemma-2-2b-it's size (bench/gemma2_2b.py)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    repeats = 3 if args.quick else 5
    settings = Settings.load(env={k: v for k, v in __import__("os").environ.items() if k != "GEMMA_INSPECTOR_MODEL"})
    started = time.perf_counter()
    lm = load_model(EMBEDDED_MODEL_ID, settings)
    results: dict = {"model": EMBEDDED_MODEL_ID, "dtype": str(lm.dtype), "threads": torch.get_num_threads()}
    log.info("capture overhead ...")
    results.update(capture_overhead(lm, repeats))
    log.info("throughput ...")
    results.update(throughput(lm, repeats))
    log.info("bf16 vs fp32 ...")
    results.update(cpu_dtype_comparison(settings, lm, repeats))
    log.info("session state at 2048 tokens ...")
    import tempfile

    from inspectors.engine.loading import embedded_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        results.update(session_state_mb(embedded_model_dir(settings), Path(tmp)))
    log.info("SmolLM2-135M-Instruct ...")
    results.update(smollm2(settings, repeats))
    if not (args.quick or args.no_full_size):
        log.info("gemma-2-2b-it's size in bf16 (minutes) ...")
        from bench.gemma2_2b import measure as full_size

        results.update(full_size())
    if not args.no_ui and Path("/usr/bin/chromium").exists():
        log.info("browser turns ...")
        from bench.ui_turn import measure

        ui = measure(turns=3 if args.quick else 5)
        results.update({k: v for k, v in ui.items() if k != "ui_detail"})
    results["bench_wall_s"] = time.perf_counter() - started
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
