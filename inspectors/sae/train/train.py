"""A TopK SAE trained with sae-lens's own `SAETrainer` over cached residual activations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class TrainOptions:
    d_sae: int = 4096
    k: int = 64  # TopK: exactly k active features per token, so L0 is k by construction
    batch_size: int = 1024
    epochs: float = 1.5
    lr: float = 1e-3
    seed: int = 0
    dead_feature_window: int = 50  # steps without firing before the AuxK loss revives a feature


def shuffled_batches(acts: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless float32 batches, a fresh seeded permutation each epoch."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(acts), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield acts[order[start : start + batch_size]].float()


def train_topk_sae(acts: np.ndarray, hook_name: str, model_name: str, options: TrainOptions, metadata: dict):
    """Train on `acts` (n, d_in); returns the sae-lens TrainingSAE (activation scaling folded in)."""
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(options.seed)
    data = torch.from_numpy(np.array(acts))  # (n, d) in RAM; batches are cast to float32
    finite = torch.isfinite(data).all(dim=1)
    data = data[finite] if not bool(finite.all()) else data
    # Scaled so the mean norm is sqrt(d_in) (sae-lens's "expected_average_only_in", done here so the
    # decoder bias can start at the scaled mean, as sae-lens's runner does with b_dec_init_method="mean").
    # Without that start the bias must crawl to Gemma's large constant offsets (one dimension sits
    # near 2,400) and most features die before it gets there.
    sample = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(options.seed))[:50_000]].float()
    scaling_factor = float(data.shape[1] ** 0.5 / sample.norm(dim=1).mean())
    total = int(len(data) * options.epochs)
    steps = total // options.batch_size
    cfg = TopKTrainingSAEConfig(
        d_in=int(data.shape[1]),
        d_sae=options.d_sae,
        k=options.k,
        normalize_activations="none",
        metadata=SAEMetadata(hook_name=hook_name, model_name=model_name, **metadata),
    )
    sae = TopKTrainingSAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(sample.mean(dim=0) * scaling_factor)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total,
        train_batch_size_samples=options.batch_size,
        lr=options.lr,
        lr_warm_up_steps=max(1, steps // 20),
        lr_decay_steps=steps // 5,
        lr_end=options.lr / 10,
        dead_feature_window=options.dead_feature_window,
        feature_sampling_window=options.dead_feature_window * 2,
        logger=LoggingConfig(log_to_wandb=False),
    )
    batches = (batch * scaling_factor for batch in shuffled_batches(data, options.batch_size, options.seed))
    sae = SAETrainer(trainer_cfg, sae, batches).fit()
    sae.fold_activation_norm_scaling_factor(scaling_factor)  # the saved SAE reads raw residuals
    return sae


def save(sae, directory: Path, half: bool = True) -> None:
    """sae-lens's inference format: cfg.json (hook name in its metadata) + sae_weights.safetensors. With
    `half`, the weights are stored in float16 (half the size; sae-lens loads them as the config's float32)."""
    from safetensors.torch import load_file, save_file

    weights_path, _ = sae.save_inference_model(directory)
    if half:
        save_file({name: tensor.half() for name, tensor in load_file(weights_path).items()}, weights_path)
