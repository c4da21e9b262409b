"""Residual-stream activations of the embedded model over the corpus, cached on disk as float32 (Gemma 3's
residual stream outgrows float16's 65,504 in deeper layers).

Texts are packed into `<bos>` + 255-token windows. The `<bos>` position is dropped: Gemma's residual
stream there has a norm hundreds of times larger than anywhere else, and SAEs are trained without it
(Gemma Scope did the same). The forward pass stops after the highest layer asked for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from inspectors.engine.forward import batch_layer_outputs
from inspectors.engine.loading import LoadedModel

CONTEXT = 256


@dataclass
class ActivationStore:
    """Activations (n, d_model) per layer plus, for each row, its token id, window and position."""

    directory: Path
    layers: tuple[int, ...]

    def acts(self, layer: int) -> np.ndarray:
        return np.load(self.directory / f"layer_{layer}.npy", mmap_mode="r")

    @property
    def token_ids(self) -> np.ndarray:  # (windows, CONTEXT) including <bos>
        return np.load(self.directory / "windows.npy", mmap_mode="r")

    @property
    def n_rows(self) -> int:
        return int(json.loads((self.directory / "meta.json").read_text())["n_rows"])

    def window_and_position(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows skip each window's <bos>: row r is window r // (CONTEXT-1), position r % (CONTEXT-1) + 1."""
        return row // (CONTEXT - 1), row % (CONTEXT - 1) + 1


def pack_windows(tokenizer, texts: Sequence[str]) -> np.ndarray:
    """(windows, CONTEXT) token ids: each text tokenized, concatenated with blank lines, cut into
    CONTEXT-1 token pieces, each prefixed by <bos>; the ragged tail is dropped."""
    stream: list[int] = []
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        stream.extend(separator)
    body = CONTEXT - 1
    n = len(stream) // body
    windows = np.asarray(stream[: n * body], dtype=np.int32).reshape(n, body)
    bos = np.full((n, 1), tokenizer.bos_token_id, dtype=np.int32)
    return np.concatenate([bos, windows], axis=1)


def residuals(lm: LoadedModel, input_ids: torch.Tensor, layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """{layer: (batch, T, d)} outputs of the decoder layers, one forward pass stopped after the last."""
    return batch_layer_outputs(lm, input_ids, list(layers))


def collect(
    lm: LoadedModel, texts: Sequence[str], layers: Sequence[int], directory: Path, batch_size: int = 8
) -> ActivationStore:
    """Write layer_L.npy (float32, rows = non-<bos> positions), windows.npy and meta.json; reuse them
    when `directory` already holds a complete run over the same windows and these layers (or more: one
    layer retrained after a five-layer collection reads the cache, never rewrites it)."""
    directory.mkdir(parents=True, exist_ok=True)
    windows = pack_windows(lm.tokenizer, texts)
    layers = tuple(sorted(set(layers)))
    meta = {
        "model": lm.model_id,
        "layers": list(layers),
        "context": CONTEXT,
        "n_windows": len(windows),
        "dtype": "float32",
    }
    meta["n_rows"] = int(len(windows) * (CONTEXT - 1))
    meta_file = directory / "meta.json"
    if meta_file.is_file():
        cached = json.loads(meta_file.read_text())
        same_run = {**cached, "layers": meta["layers"]} == meta and set(layers) <= set(cached.get("layers", []))
        if same_run and np.array_equal(np.load(directory / "windows.npy"), windows):
            return ActivationStore(directory, layers)
    meta_file.unlink(missing_ok=True)  # written last, so a killed run is never mistaken for a finished one
    np.save(directory / "windows.npy", windows)
    d_model = int(lm.text_config.hidden_size)
    outputs = {
        layer: np.lib.format.open_memmap(
            directory / f"layer_{layer}.npy", mode="w+", dtype=np.float32, shape=(meta["n_rows"], d_model)
        )
        for layer in layers
    }
    body = CONTEXT - 1
    with tqdm(total=meta["n_rows"], desc=f"Residuals of layers {list(layers)}", unit="tok") as bar:
        for start in range(0, len(windows), batch_size):
            batch = torch.tensor(windows[start : start + batch_size], dtype=torch.long, device=lm.device)
            acts = residuals(lm, batch, layers)
            for layer in layers:
                rows = acts[layer][:, 1:, :].float().cpu().numpy().reshape(-1, d_model)
                outputs[layer][start * body : start * body + len(rows)] = rows
            bar.update(len(batch) * body)
    for array in outputs.values():
        array.flush()
    meta_file.write_text(json.dumps(meta))
    return ActivationStore(directory, layers)


def text_activations(lm: LoadedModel, text: str, layer: int, batch_size: int = 8) -> np.ndarray:
    """(rows, d_model) float32 residuals of one text packed exactly as the training corpus (<bos> rows
    dropped): how the held-out sample is measured, by the training script and by the tests alike."""
    return text_activations_by_layer(lm, text, [layer], batch_size)[layer]


def text_activations_by_layer(
    lm: LoadedModel, text: str, layers: Sequence[int], batch_size: int = 8
) -> dict[int, np.ndarray]:
    """`text_activations` for several layers from the same forward passes."""
    windows = pack_windows(lm.tokenizer, [text])
    rows: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    for start in range(0, len(windows), batch_size):
        batch = torch.tensor(windows[start : start + batch_size], dtype=torch.long, device=lm.device)
        acts = residuals(lm, batch, list(layers))
        for layer in layers:
            chunk = acts[layer][:, 1:, :]
            rows[layer].append(chunk.float().cpu().numpy().reshape(-1, chunk.shape[-1]))
    return {layer: np.concatenate(parts) for layer, parts in rows.items()}
