"""Steering the embedded Gemma 3 270M with a feature of its shipped SAE raises that feature on the steered
reply, as the model computed it (the vector added at the layer), over the default reply, seed after seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.sae import sources as sae_sources
from inspectors.session import Session, Shared
from inspectors.settings import EMBEDDED_MODEL_ID, Settings

pytestmark = pytest.mark.integration

SEEDS = (1, 2, 3)
DEPTHS = sorted(sae_sources.shipped_saes(EMBEDDED_MODEL_ID))
STRENGTH = 0.1  # x the layer's typical residual norm: stronger and the 270M model only babbles


@pytest.fixture(scope="module")
def session():
    folder = sae_sources.shipped_saes(EMBEDDED_MODEL_ID)[DEPTHS[len(DEPTHS) // 2]]  # the middle of the model
    settings = Settings.load(env={"GEMMA_INSPECTOR_SAE": str(folder)})
    return Session(Shared(settings))


def feature_on_reply(lm, lsae, record, feature: int, added: np.ndarray | None = None) -> float:
    """Mean activation over the reply's tokens, from a hand-hooked pass (with `added` put on the layer's output,
    as steering did while the reply was generated) and the SAE's own encode."""
    seen = {}
    layer = lm.model.model.language_model.layers[lsae.layer] if hasattr(lm.model.model, "language_model") else None
    layer = layer or lm.model.model.layers[lsae.layer]
    handle = layer.register_forward_hook(lambda m, i, o: seen.setdefault("x", o[0] if isinstance(o, tuple) else o))
    try:
        with torch.no_grad():
            lm.model(torch.tensor(record.token_ids[None], dtype=torch.long))
    finally:
        handle.remove()
    residual = seen["x"][0].float()
    if added is not None:
        residual = residual + torch.from_numpy(added)
    codes = lsae.sae.encode(residual)[:, feature].numpy()
    return float(np.mean(codes[record.n_prompt :]))


def test_steering_with_a_feature_raises_it_on_the_reply_seed_after_seed(session):
    lsae, reason = session.shared.sae(session.model_id, None, wait=True)
    assert lsae is not None, reason
    feature = lsae.features.search("travel")[0].feature
    lm = session.model()
    for seed in SEEDS:
        updates = list(session.steer("Tell me about your weekend.", None, "SAE features", None, str(feature), STRENGTH,
                                     "residual norm", "", "", "", 0.7, 0, 1, 24, seed))  # fmt: skip
        assert updates[-1].chat.ok, updates[-1].chat.status
        default, steered = session.conversation.branches[-2].records[-1], session.records[-1]
        assert steered.params["seed"] == default.params["seed"] == seed
        before = feature_on_reply(lm, lsae, default, feature)
        after = feature_on_reply(lm, lsae, steered, feature, steered.steering["vector"])
        assert after > before, (seed, before, after, default.reply_text, steered.reply_text)
        assert "mean activation over the reply" in updates[-1].summary
        session.clear()
