"""Train, evaluate and ship the embedded model's own SAEs, end to end and offline.

    python -m pip install -r requirements-train.txt
    python -m inspectors.sae.train                # layers 3, 6, 9, 12 and 15

Downloads the gensim wheel from PyPI for its Wikipedia extract (corpus.py), caches residual
activations, trains a TopK SAE per layer with sae-lens's SAETrainer, measures it on held-out
articles, and writes inspectors/data/saes/<name>/{cfg.json, sae_weights.safetensors, contexts.json.gz,
card.json, README.md} plus the held-out sample the tests re-measure.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from inspectors.engine.loading import load_model
from inspectors.sae.loading import load_sae_from_disk
from inspectors.sae.sources import SHIPPED_DIR
from inspectors.sae.train import corpus
from inspectors.sae.train.activations import CONTEXT, collect, pack_windows, text_activations
from inspectors.sae.train.card import write_card
from inspectors.sae.train.contexts import build_contexts, write_contexts
from inspectors.sae.train.evaluate import cross_entropy, evaluate, loss_metrics
from inspectors.sae.train.train import TrainOptions, save, train_topk_sae
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

MAX_SAE_BYTES = 12 * 2**20
HELDOUT_SAMPLE_FILE = "heldout_sample.txt"
DEFAULT_LAYERS = [3, 6, 9, 12, 15]
LOSS_WINDOWS = 48  # held-out windows (x 255 tokens) whose next-token loss is measured with each SAE
# The last shipped layer is the hardest to reconstruct: at 1.5 epochs it cost +0.536 nats per token (over
# the 0.5 target), at 3 it meets it; the others meet it at 1.5.
LAYER_EPOCHS = {15: 3.0}
SAMPLE_LOSS_WINDOWS = 16  # of the shipped held-out sample: what the tests re-measure


def sample_windows(lm, sample_text: str) -> np.ndarray:
    """The held-out sample packed as training windows; its first SAMPLE_LOSS_WINDOWS are the loss sample."""
    return pack_windows(lm.tokenizer, [sample_text])


def sae_name(layer: int, d_sae: int) -> str:
    return f"gemma-3-270m-res-l{layer}-{d_sae // 1024}k-topk"


def heldout_sample(articles: list[corpus.Article], tokenizer, max_tokens: int) -> str:
    """The first held-out articles, whole paragraphs, up to about `max_tokens` tokens."""
    paragraphs, used = [], 0
    for article in articles:
        for paragraph in article.text.split("\n"):
            n = len(tokenizer(paragraph, add_special_tokens=False)["input_ids"])
            if used + n > max_tokens:
                return "\n".join(paragraphs)
            paragraphs.append(paragraph)
            used += n
    return "\n".join(paragraphs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inspectors.sae.train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--layers", type=int, nargs="+", default=DEFAULT_LAYERS, help="decoder layers (blocks.L.hook_resid_post)"
    )
    parser.add_argument("--d-sae", type=int, default=TrainOptions.d_sae)
    parser.add_argument("--k", type=int, default=TrainOptions.k, help="active features per token (TopK)")
    parser.add_argument(
        "--epochs", type=float, default=None, help=f"default {TrainOptions.epochs}, or as LAYER_EPOCHS says"
    )
    parser.add_argument("--batch-size", type=int, default=TrainOptions.batch_size)
    parser.add_argument("--lr", type=float, default=TrainOptions.lr)
    parser.add_argument("--seed", type=int, default=TrainOptions.seed)
    parser.add_argument("--contexts-per-feature", type=int, default=8)
    parser.add_argument("--heldout-sample-tokens", type=int, default=16000)
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR)
    parser.add_argument("--cache", type=Path, default=None, help="where the corpus and activations are cached")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)

    settings = Settings.load()
    cache = args.cache or settings.cache_dir / "sae-training"
    articles = corpus.read_articles(corpus.fetch_wheel(cache / "corpus"))
    train, held = corpus.split(articles)
    lm = load_model(EMBEDDED_MODEL_ID, settings)
    held_store = collect(lm, [a.text for a in held], args.layers, cache / "acts-heldout")
    train_store = collect(lm, [a.text for a in train], args.layers, cache / "acts-train")
    args.out.mkdir(parents=True, exist_ok=True)
    sample_text = heldout_sample(held, lm.tokenizer, args.heldout_sample_tokens)
    (args.out / HELDOUT_SAMPLE_FILE).write_text(sample_text + "\n", encoding="utf-8")

    base = TrainOptions(d_sae=args.d_sae, k=args.k, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    loss_windows = np.asarray(held_store.token_ids)[:LOSS_WINDOWS]
    sample_loss_windows = sample_windows(lm, sample_text)[:SAMPLE_LOSS_WINDOWS]
    clean, _ = cross_entropy(lm, loss_windows, args.layers[0])  # the clean loss needs no SAE: measured once
    sample_clean, _ = cross_entropy(lm, sample_loss_windows, args.layers[0])
    corpus_info = {
        "source": corpus.SOURCE,
        "licence": corpus.LICENCE,
        "train_articles": len(train),
        "heldout_articles": [a.title for a in held],
        "train_tokens": train_store.n_rows,
        "heldout_tokens": held_store.n_rows,
        "context": CONTEXT,
    }
    for layer in args.layers:
        name = sae_name(layer, args.d_sae)
        folder = args.out / name
        hook_name = f"blocks.{layer}.hook_resid_post"
        metadata = {"context_size": CONTEXT, "prepend_bos": True, "dataset_path": corpus.SOURCE, "neuronpedia_id": None}
        acts = np.asarray(train_store.acts(layer))
        epochs = args.epochs if args.epochs is not None else LAYER_EPOCHS.get(layer, base.epochs)
        options = replace(base, epochs=epochs)
        sae = train_topk_sae(acts, hook_name, EMBEDDED_MODEL_ID, options, metadata)
        save(sae, folder)
        size = sum(f.stat().st_size for f in folder.glob("sae_weights.safetensors"))
        if size > MAX_SAE_BYTES:
            raise SystemExit(f"{name}: weights are {size / 2**20:.1f} MiB, over the 12 MiB limit; lower --d-sae")
        shipped = load_sae_from_disk(folder).sae  # measure what ships, as users will load it
        metrics = {
            "heldout": evaluate(shipped, held_store.acts(layer)).to_dict(),
            "heldout_loss": loss_metrics(lm, shipped, loss_windows, layer, clean).to_dict(),
            "heldout_sample": evaluate(shipped, text_activations(lm, sample_text, layer)).to_dict(),
            "heldout_sample_loss": loss_metrics(lm, shipped, sample_loss_windows, layer, sample_clean).to_dict(),
            "train": evaluate(shipped, acts[:: max(1, len(acts) // 100_000)]).to_dict(),
        }
        write_contexts(
            build_contexts(shipped, train_store, layer, lm.tokenizer, args.contexts_per_feature),
            folder / "contexts.json.gz",
        )
        write_card(
            folder,
            name=name,
            layer=layer,
            hook_name=hook_name,
            options=asdict(options),
            corpus_info=corpus_info,
            metrics=metrics,
            weights_bytes=size,
        )
        logging.info("%s: %s", name, json.dumps(metrics["heldout"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
