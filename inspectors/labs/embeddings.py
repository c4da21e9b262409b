"""Lab `embeddings` (course HW3 section 5): t-SNE of sentences' contextual embeddings.

The sentences go through the model as one padded batch; one layer's hidden states are pooled into one
vector per sentence, mapped to 2-D with scikit-learn's t-SNE, and compared by cosine similarity. Each
sentence carries a sense label (fruit / company / telecom in the course) that colours the plot: the
expected picture is "apple" and "orange" the fruits apart from Apple and Orange the companies.

Pooling:
- `mean`: mean over the sentence's real tokens (`<bos>` included unless `include_bos` is false). The batch
  is right-padded, so under causal attention no real token sees a pad and each vector equals the one
  from the sentence alone.
- `last`: the last real token's hidden state (the only position that has read the whole sentence).
- `course_variant`: the course's reference, the mean over every position of the batch, pads included,
  with the tokenizer's own padding side (left for Gemma tokenizers, so a shorter sentence's pads come
  first and its real tokens sit at shifted positions): shorter sentences are pulled toward the pads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.manifold import TSNE
from sklearn.metrics.pairwise import cosine_similarity
from threadpoolctl import threadpool_limits

from inspectors.engine.loading import LoadedModel, ProgressFn
from inspectors.engine.sampling import MAX_SEED
from inspectors.errors import InvalidParameterError

POOLINGS = ("mean", "last")
TSNE_INITS = ("pca", "random")
MIN_SENTENCES = 3  # t-SNE of two points is only their distance
MAX_SENTENCES = 200


@dataclass
class Sentence:
    text: str
    sense: str  # the label that colours the plot, e.g. "fruit"


@dataclass
class Batch:
    """The padded batch and one layer's hidden states."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T), 1 = real token
    hidden: torch.Tensor  # (B, T, d) float32, hidden_states[layer]
    padding_side: str


@dataclass
class EmbeddingsResult:
    model_id: str
    sentences: list[str]
    senses: list[str]
    n_tokens: list[int]  # real tokens per sentence, <bos> included
    layer: int  # index into transformers' hidden_states (0 = embeddings, n_layers = last hidden state)
    layer_label: str
    pooling: str  # mean | last | course (course_variant)
    pooling_label: str
    include_bos: bool
    course_variant: bool
    padding_side: str
    perplexity: float
    seed: int
    init: str  # t-SNE's starting map: pca (scikit-learn's default; the seed then has no effect) or random
    coords: np.ndarray  # (n, 2) t-SNE coordinates
    cosine: np.ndarray  # (n, n) cosine similarity of the pooled embeddings
    kl_divergence: float  # t-SNE's final KL divergence
    # (n, d) pooled embeddings; kept for inspection, not written to JSON (n x d_model numbers)
    embeddings: np.ndarray = field(repr=False)

    @property
    def nearest(self) -> list[int]:
        """For each sentence, the index of the most cosine-similar other sentence."""
        masked = self.cosine.copy()
        np.fill_diagonal(masked, -np.inf)
        return [int(i) for i in masked.argmax(axis=1)]

    def sense_cosines(self) -> dict[str, float | None]:
        """Mean cosine similarity over pairs of sentences with the same sense and with different senses
        (None where there is no such pair): the gap says how much the embedding separates the senses."""
        n = len(self.senses)
        same, other = [], []
        for i in range(n):
            for j in range(i + 1, n):
                (same if self.senses[i] == self.senses[j] else other).append(float(self.cosine[i, j]))
        return {
            "same_sense": float(np.mean(same)) if same else None,
            "different_sense": float(np.mean(other)) if other else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "sentences": [
                {"text": text, "sense": sense, "n_tokens": n, "x": float(x), "y": float(y), "nearest": nearest}
                for text, sense, n, (x, y), nearest in zip(
                    self.sentences, self.senses, self.n_tokens, self.coords.tolist(), self.nearest, strict=True
                )
            ],
            "layer": self.layer,
            "layer_label": self.layer_label,
            "pooling": self.pooling,
            "pooling_label": self.pooling_label,
            "include_bos": self.include_bos,
            "course_variant": self.course_variant,
            "padding_side": self.padding_side,
            "perplexity": self.perplexity,
            "seed": self.seed,
            "init": self.init,
            "kl_divergence": self.kl_divergence,
            "cosine": [[float(v) for v in row] for row in self.cosine],
            "sense_cosine": self.sense_cosines(),
        }


def parse_sentences(sentences: object) -> list[Sentence]:
    """The preset's sentences: a list of `{text: ..., sense: ...}` mappings (a plain string has no sense)."""
    if isinstance(sentences, str) or not isinstance(sentences, list):
        raise InvalidParameterError("sentences", "must be a list of {text, sense} entries", sentences)
    if not MIN_SENTENCES <= len(sentences) <= MAX_SENTENCES:
        raise InvalidParameterError(
            "sentences", f"must hold between {MIN_SENTENCES} and {MAX_SENTENCES} sentences", len(sentences)
        )
    parsed = []
    for i, item in enumerate(sentences):
        if isinstance(item, str):
            item = {"text": item, "sense": ""}
        if not isinstance(item, dict) or set(item) - {"text", "sense"}:
            raise InvalidParameterError(f"sentences[{i}]", "must be a mapping with keys text and sense", item)
        text, sense = item.get("text"), item.get("sense", "")
        if not isinstance(text, str) or not text.strip():
            raise InvalidParameterError(f"sentences[{i}].text", "must be a non-empty string", text)
        if not isinstance(sense, str):
            raise InvalidParameterError(f"sentences[{i}].sense", "must be a string (a label such as fruit)", sense)
        parsed.append(Sentence(text=text, sense=sense.strip() or "unlabelled"))
    return parsed


def resolve_layer(lm: LoadedModel, layer: object) -> int:
    """`layer` as an index into transformers' hidden_states (n_layers + 1 entries; negative from the end)."""
    n = lm.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not -(n + 1) <= layer <= n:
        raise InvalidParameterError(
            "layer",
            f"must be an integer in [{-(n + 1)}, {n}]: an index into hidden_states (0 = embeddings, "
            f"L = output of block L-1, {n} or -1 = last hidden state after the final norm) of this "
            f"{n}-layer model",
            layer,
        )
    return layer % (n + 1)


def layer_label(lm: LoadedModel, layer: int) -> str:
    if layer == 0:
        return "hidden_states[0]: token embeddings"
    if layer == lm.n_layers:
        return f"hidden_states[{layer}]: last hidden state (after the final norm)"
    return f"hidden_states[{layer}]: output of block {layer - 1}"


def check_perplexity(perplexity: object, n_points: int) -> float:
    """scikit-learn's t-SNE needs 0 < perplexity < number of points."""
    if (
        isinstance(perplexity, bool)
        or not isinstance(perplexity, (int, float))
        or not math.isfinite(perplexity)
        or not 0 < perplexity < n_points
    ):
        raise InvalidParameterError(
            "perplexity",
            f"must be a number greater than 0 and less than the number of sentences ({n_points}): t-SNE needs "
            f"perplexity < n_samples, so the largest allowed is just under {n_points} (the course used 2)",
            perplexity,
        )
    return float(perplexity)


def encode_batch(lm: LoadedModel, texts: list[str], layer: int, padding_side: str) -> Batch:
    """One forward pass over the padded batch (`<bos>` + each text), keeping hidden_states[layer]."""
    tokens = lm.tokenizer(texts, padding=True, padding_side=padding_side, return_tensors="pt", add_special_tokens=True)
    input_ids = tokens["input_ids"].to(lm.device)
    attention_mask = tokens["attention_mask"].to(lm.device)
    with lm.lock, torch.inference_mode():
        # logits_to_keep=1: the unembedding of every position (T x vocab) would cost more than the model itself.
        out = lm.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            use_cache=False,
            logits_to_keep=1,
        )
    hidden = out.hidden_states[layer].float()  # (B, T, d)
    return Batch(input_ids.cpu(), attention_mask.cpu(), hidden.cpu(), padding_side)


def pool(batch: Batch, pooling: str, include_bos: bool = True, bos_id: int | None = None) -> np.ndarray:
    """(B, d) one vector per sentence from a right-padded batch: `mean` over real tokens or the `last` one."""
    mask = batch.attention_mask.bool()  # (B, T)
    if not include_bos and bos_id is not None:
        mask = mask & (batch.input_ids != bos_id)
    if pooling == "mean":
        weights = mask.unsqueeze(-1).float()  # (B, T, 1)
        pooled = (batch.hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    elif pooling == "last":
        if batch.padding_side != "right":
            raise ValueError("last-token pooling indexes a right-padded batch")
        last = batch.attention_mask.sum(dim=1) - 1  # (B,)
        pooled = batch.hidden[torch.arange(batch.hidden.shape[0]), last]
    else:
        raise InvalidParameterError("pooling", f"must be one of {list(POOLINGS)}", pooling)
    return pooled.numpy()


def course_pool(batch: Batch) -> np.ndarray:
    """(B, d) the course's pooling: mean over every position of the padded batch, pads included."""
    return batch.hidden.mean(dim=1).numpy()


def tsne(embeddings: np.ndarray, perplexity: float, seed: int, init: str = "pca") -> tuple[np.ndarray, float]:
    """(n, 2) t-SNE coordinates with scikit-learn's defaults otherwise (as the course), and the final KL.

    With init="pca" (scikit-learn's default since 1.2) the map starts from the PCA projection and, for a
    handful of points, nothing random is left: the seed changes nothing. init="random" starts from
    random points drawn from `seed`."""
    model = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init=init)
    # One OpenMP thread (this thread only): for a few hundred points it takes well under a second, while
    # the default thread team stalled for tens of seconds on a busy 2-core machine; and the result no
    # longer depends on how many cores the machine has.
    with threadpool_limits(limits=1, user_api="openmp"):
        coords = model.fit_transform(embeddings.astype(np.float64))
    return coords, float(model.kl_divergence_)


def run(
    lm: LoadedModel,
    *,
    progress: ProgressFn | None = None,
    sentences: list[dict[str, str]],
    layer: int = -1,
    pooling: str = "mean",
    include_bos: bool = True,
    course_variant: bool = False,
    perplexity: float = 2.0,
    seed: int = 42,
    init: str = "pca",
) -> EmbeddingsResult:
    """Embed `sentences` at `layer`, pool, t-SNE to 2-D and compare them by cosine similarity."""
    parsed = parse_sentences(sentences)
    resolved = resolve_layer(lm, layer)
    if pooling not in POOLINGS:
        raise InvalidParameterError("pooling", f"must be one of {list(POOLINGS)}", pooling)
    for name, value in (("include_bos", include_bos), ("course_variant", course_variant)):
        if not isinstance(value, bool):
            raise InvalidParameterError(name, "must be true or false", value)
    if course_variant and (pooling != "mean" or not include_bos):
        raise InvalidParameterError(
            "course_variant",
            "reproduces the course's mean over every position (<bos> and pads included); set pooling: mean and "
            "include_bos: true with it, or set course_variant: false",
            course_variant,
        )
    perplexity = check_perplexity(perplexity, len(parsed))
    if init not in TSNE_INITS:
        raise InvalidParameterError("init", f"must be one of {list(TSNE_INITS)} (t-SNE's starting map)", init)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidParameterError("seed", f"must be an integer in [0, {MAX_SEED}]", seed)

    if progress:
        progress(0.0, f"Embedding {len(parsed)} sentences")
    padding_side = lm.tokenizer.padding_side if course_variant else "right"
    batch = encode_batch(lm, [s.text for s in parsed], resolved, padding_side)
    if course_variant:
        embeddings, pooling_name, pooling_label = course_pool(batch), "course", _COURSE_LABEL.format(padding_side)
    else:
        embeddings = pool(batch, pooling, include_bos, lm.tokenizer.bos_token_id)
        pooling_name, pooling_label = pooling, _POOLING_LABELS[pooling] + ("" if include_bos else ", <bos> excluded")
    if progress:
        progress(0.5, "t-SNE")
    coords, kl = tsne(embeddings, perplexity, seed, init)
    if progress:
        progress(1.0, "Embeddings done")
    return EmbeddingsResult(
        model_id=lm.model_id,
        sentences=[s.text for s in parsed],
        senses=[s.sense for s in parsed],
        n_tokens=[int(n) for n in batch.attention_mask.sum(dim=1).tolist()],
        layer=resolved,
        layer_label=layer_label(lm, resolved),
        pooling=pooling_name,
        pooling_label=pooling_label,
        include_bos=include_bos,
        course_variant=course_variant,
        padding_side=padding_side,
        perplexity=perplexity,
        seed=seed,
        init=init,
        coords=coords,
        cosine=cosine_similarity(embeddings),
        kl_divergence=kl,
        embeddings=embeddings,
    )


_POOLING_LABELS = {"mean": "mean over real tokens (padding masked)", "last": "last real token"}
_COURSE_LABEL = "course variant: mean over every position, pads included ({}-padded batch)"
