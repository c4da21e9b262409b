"""The SAE training pipeline (python -m inspectors.sae.train) on a tiny model: packing, residual
collection, sae-lens training and disk format, held-out metrics and top contexts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectors.engine.forward import hidden_states
from inspectors.sae.loading import load_sae_from_disk
from inspectors.sae.train.activations import CONTEXT, collect, pack_windows, residuals
from inspectors.sae.train.contexts import build_contexts
from inspectors.sae.train.corpus import clean_wikitext
from inspectors.sae.train.evaluate import evaluate
from inspectors.sae.train.train import TrainOptions, save, train_topk_sae

TEXTS = [
    "Time travel is a common theme in science fiction. " * 20,
    "The river flows past the old mill, and the farmers bring their grain to it every autumn. " * 15,
    "In 1969 the crew of Apollo 11 landed on the Moon and walked on its surface for hours. " * 15,
]


def test_wiki_markup_is_stripped_to_prose():
    text = clean_wikitext(
        "'''Achilles''' ({{lang|grc|}}) was a [[Greece|Greek]] hero.\n[[File:A.jpg|thumb|A vase]]\n"
        "{{Infobox|x=1}}\n== Life ==\nHe fought at [[Troy]]."
    )
    assert text == "Achilles was a Greek hero.\nLife\nHe fought at Troy."


def test_windows_start_with_bos_and_hold_the_texts_in_order(tokenizer):
    windows = pack_windows(tokenizer, TEXTS)
    assert windows.shape[1] == CONTEXT and (windows[:, 0] == tokenizer.bos_token_id).all()
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    stream = []
    for text in TEXTS:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + separator
    assert windows[:, 1:].ravel().tolist() == stream[: windows[:, 1:].size]


def test_residuals_equal_the_models_hidden_states(tiny_lm, tokenizer):
    ids = pack_windows(tokenizer, TEXTS)[:2]
    got = residuals(tiny_lm, torch.tensor(ids, dtype=torch.long), [0, 2])
    for row in range(2):
        states = hidden_states(tiny_lm, ids[row])  # hidden_states[L + 1] is the output of layer L
        for layer in (0, 2):
            torch.testing.assert_close(got[layer][row], states[layer + 1].reshape(CONTEXT, -1), atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def trained(tiny_dirs, tmp_path_factory, tokenizer):
    from inspectors.engine.loading import load_model
    from inspectors.settings import Settings

    lm = load_model(settings=Settings(model_id=str(tiny_dirs["gemma3"])))
    root = tmp_path_factory.mktemp("train")
    store = collect(lm, TEXTS, [1], root / "acts")
    acts = np.asarray(store.acts(1))
    options = TrainOptions(d_sae=32, k=4, batch_size=64, epochs=4, lr=3e-3, dead_feature_window=5)
    sae = train_topk_sae(acts, "blocks.1.hook_resid_post", "tiny", options, {"context_size": CONTEXT})
    save(sae, root / "sae")
    return lm, store, acts, load_sae_from_disk(root / "sae")


def test_collected_rows_are_the_non_bos_positions(trained, tokenizer):
    lm, store, acts, _ = trained
    windows = store.token_ids
    assert acts.shape == (len(windows) * (CONTEXT - 1), 64) and store.n_rows == len(acts)
    direct = residuals(lm, torch.tensor(windows[:1], dtype=torch.long), [1])[1][0, 1:].numpy()
    np.testing.assert_allclose(acts[: CONTEXT - 1], direct, atol=0.05, rtol=0.01)  # float16 storage
    window, position = store.window_and_position(np.array([0, CONTEXT - 1]))
    assert window.tolist() == [0, 1] and position.tolist() == [1, 1]


def test_a_finished_collection_is_reused_for_any_of_its_layers(trained, tmp_path):
    lm = trained[0]
    both = collect(lm, TEXTS, [0, 1], tmp_path / "acts")
    written = {f.name: f.stat().st_mtime_ns for f in tmp_path.joinpath("acts").iterdir()}
    one = collect(lm, TEXTS, [1], tmp_path / "acts")  # a layer of the cache: read, not rewritten
    assert {f.name: f.stat().st_mtime_ns for f in tmp_path.joinpath("acts").iterdir()} == written
    np.testing.assert_array_equal(np.asarray(one.acts(1)), np.asarray(both.acts(1)))
    collect(lm, TEXTS, [2], tmp_path / "acts")  # not in the cache: collected
    assert (tmp_path / "acts" / "layer_2.npy").stat().st_mtime_ns > max(written.values())


def test_trained_sae_loads_with_sae_lens_reads_raw_residuals_and_metrics_are_right(trained):
    _, _, acts, lsae = trained
    assert lsae.hook_name == "blocks.1.hook_resid_post" and lsae.layer == 1 and lsae.d_sae == 32
    assert lsae.sae.cfg.metadata.model_name == "tiny" and lsae.sae.cfg.normalize_activations == "none"
    x = torch.from_numpy(np.asarray(acts, dtype=np.float32))
    with torch.no_grad():
        features = lsae.sae.encode(x)
        reconstruction = lsae.sae.decode(features)
    explained = 1 - ((x - reconstruction) ** 2).sum() / ((x - x.mean(dim=0)) ** 2).sum()
    metrics = evaluate(lsae.sae, acts)
    assert metrics.explained_variance == pytest.approx(float(explained), abs=1e-4)
    assert metrics.l0 == pytest.approx(float((features > 0).sum(dim=1).float().mean()))
    assert metrics.l0 <= 4 and metrics.explained_variance > 0.3  # it learned something, with TopK's k = 4
    assert metrics.dead_fraction == pytest.approx(float(((features > 0).sum(dim=0) == 0).float().mean()))


def test_top_contexts_are_each_features_strongest_tokens(trained, tokenizer):
    _, store, acts, lsae = trained
    data = build_contexts(lsae.sae, store, 1, tokenizer, per_feature=3)
    with torch.no_grad():
        dense = lsae.sae.encode(torch.from_numpy(np.asarray(acts, dtype=np.float32))).numpy()
    for feature, entry in enumerate(data["features"]):
        assert entry["density"] == pytest.approx(float((dense[:, feature] > 0).mean()), rel=1e-2)
        if not entry["contexts"]:
            assert dense[:, feature].max() <= 0
            continue
        top_row = int(dense[:, feature].argmax())
        window, position = store.window_and_position(np.int64(top_row))
        assert entry["contexts"][0]["token"] == tokenizer.decode([int(store.token_ids[window][position])])
        assert entry["contexts"][0]["act"] == pytest.approx(float(dense[top_row, feature]), rel=1e-3, abs=1e-3)


def hand_written_ce(lm, windows: np.ndarray, layer: int, replace) -> float:
    """Mean next-token CE (nats) from positions 1..T-2, the residual after `layer` at positions 1.. replaced
    through a pre-hook on the module that reads it next (not the code under test's hook on the layer),
    and each prediction's -log p(target) taken one at a time."""
    following = lm.decoder_layers[layer + 1] if layer + 1 < lm.n_layers else lm.parts.final_norm

    def pre(module, args, kwargs):
        if replace is None:
            return None
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        changed = hidden.clone()
        changed[:, 1:, :] = replace(hidden[:, 1:, :])
        if "hidden_states" in kwargs:
            return args, {**kwargs, "hidden_states": changed}
        return (changed, *args[1:]), kwargs

    handle = following.register_forward_pre_hook(pre, with_kwargs=True)
    losses = []
    try:
        with torch.no_grad():
            for window in windows:
                logits = lm.model(torch.tensor(window[None, :], dtype=torch.long)).logits[0].double()
                for position in range(1, len(window) - 1):
                    log_probs = torch.log_softmax(logits[position], dim=-1)
                    losses.append(-float(log_probs[int(window[position + 1])]))
    finally:
        handle.remove()
    return sum(losses) / len(losses)


@pytest.mark.parametrize("layer", [1, 3])  # 3 is the last: the final norm reads its output
def test_ce_loss_recovered_equals_a_hand_written_loop(tiny_dirs, tokenizer, tmp_path, layer):
    from inspectors.engine.loading import load_model
    from inspectors.sae.train.evaluate import loss_metrics
    from inspectors.settings import Settings
    from tests.helpers import save_tiny_sae

    lm = load_model(settings=Settings(model_id=str(tiny_dirs["gemma3"])))
    sae = load_sae_from_disk(save_tiny_sae(tmp_path / "sae", d_in=64, layer=layer, d_sae=32)).sae
    windows = pack_windows(tokenizer, TEXTS)[:2, :40]
    got = loss_metrics(lm, sae, windows, layer)

    def reconstruct(resid):
        return sae.decode(sae.encode(resid))

    clean = hand_written_ce(lm, windows, layer, None)
    with_sae = hand_written_ce(lm, windows, layer, reconstruct)
    zero = hand_written_ce(lm, windows, layer, torch.zeros_like)
    assert got.ce_clean == pytest.approx(clean, rel=1e-4) and got.ce_sae == pytest.approx(with_sae, rel=1e-4)
    assert got.ce_zero == pytest.approx(zero, rel=1e-4) and got.n_predictions == 2 * 38
    assert got.recovered == pytest.approx((zero - with_sae) / (zero - clean), rel=1e-3)
    assert got.increase == pytest.approx(with_sae - clean, abs=1e-3)  # CE near 16 nats, in float32
    assert abs(zero - clean) > 0.1  # a random model: the ratio is well defined, whatever its sign
