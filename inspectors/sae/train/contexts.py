"""Each feature's top activating contexts over the training corpus, stored compactly for offline search.

The file is gzip'd JSON: per feature its firing density, its maximum activation and up to
`per_feature` contexts (text before the token, the token, a little text after, the activation),
taken from distinct windows so one repetitive passage doesn't fill a feature's whole card.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from inspectors.sae.train.activations import ActivationStore

LEFT_TOKENS = 12
RIGHT_TOKENS = 3


def top_rows(
    sae, acts: np.ndarray, per_feature: int, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values (d_sae, m), rows (d_sae, m), density (d_sae,)): each feature's `m` largest activations
    over `acts`, m = 4 * per_feature candidates so distinct windows can be picked afterwards."""
    d_sae, m = int(sae.cfg.d_sae), per_feature * 4
    best_values = torch.full((d_sae, m), -1.0)
    best_rows = torch.zeros((d_sae, m), dtype=torch.long)
    fired = torch.zeros(d_sae)
    with torch.inference_mode():
        for start in tqdm(range(0, len(acts), batch_size), desc="Top contexts", unit="batch"):
            x = torch.from_numpy(np.asarray(acts[start : start + batch_size], dtype=np.float32))
            features = sae.encode(x).T  # (d_sae, batch)
            fired += (features > 0).sum(dim=1)
            rows = torch.arange(start, start + len(x)).expand(d_sae, -1)
            values = torch.cat([best_values, features], dim=1)
            candidates = torch.cat([best_rows, rows], dim=1)
            best_values, index = values.topk(m, dim=1)
            best_rows = candidates.gather(1, index)
    return best_values.numpy(), best_rows.numpy(), (fired / len(acts)).numpy()


def build_contexts(sae, store: ActivationStore, layer: int, tokenizer, per_feature: int = 8) -> dict:
    values, rows, density = top_rows(sae, store.acts(layer), per_feature)
    windows = store.token_ids
    features = []
    for feature in tqdm(range(values.shape[0]), desc="Context text", unit="feature"):
        contexts, seen = [], set()
        for value, row in zip(values[feature], rows[feature], strict=True):
            if value <= 0 or len(contexts) == per_feature:
                break
            window, position = store.window_and_position(np.int64(row))
            if int(window) in seen:
                continue
            seen.add(int(window))
            ids = windows[int(window)]
            left = ids[max(1, position - LEFT_TOKENS) : position]
            contexts.append(
                {
                    "left": tokenizer.decode(left.tolist()),
                    "token": tokenizer.decode([int(ids[position])]),
                    "right": tokenizer.decode(ids[position + 1 : position + 1 + RIGHT_TOKENS].tolist()),
                    "act": round(float(value), 3),
                }
            )
        features.append(
            {
                "density": float(f"{density[feature]:.3g}"),
                "max": round(float(values[feature][0]), 3),
                "contexts": contexts,
            }
        )
    return {"left_tokens": LEFT_TOKENS, "right_tokens": RIGHT_TOKENS, "features": features}


def write_contexts(data: dict, path: Path) -> None:
    # mtime=0: the same contexts give the same bytes, so a rerun doesn't churn the shipped file
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
