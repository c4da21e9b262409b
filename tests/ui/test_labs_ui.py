"""The Labs tabs, built into a Blocks the way the app wires them, driven through gradio_client like a script."""

from __future__ import annotations

import base64
import warnings

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client
from nltk.translate.bleu_score import sentence_bleu
from transformers import AutoModelForCausalLM

from inspectors.labs.presets import load_preset
from inspectors.labs.registry import LABS, figure_slots
from inspectors.session import Session, SessionStore, Shared
from inspectors.settings import Settings
from inspectors.ui.api import Api
from inspectors.ui.labs import build_labs_tab
from tests.ui.conftest import free_port


def decode_array(value) -> np.ndarray:
    """Plotly 6 sends numeric arrays as {'dtype', 'bdata' (base64), 'shape'}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])
    return np.asarray(value)


def traces(out: dict, index: int = 0) -> list[dict]:
    """The traces of the lab's figure `index`, as the API returns it (plotly JSON)."""
    return out["figures"][index]["plotly"]["data"]


@pytest.fixture(scope="module")
def settings(tiny_dirs):
    return Settings(model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256, max_new_tokens_limit=64)


@pytest.fixture(scope="module")
def app(settings):
    store = SessionStore(Shared(settings))
    with gr.Blocks() as demo:
        Api(store).register()
        tabs = build_labs_tab(store)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield demo, tabs, f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app[2], verbose=False)


@pytest.fixture(scope="module")
def lm(settings):
    return Shared(settings).model(settings.model_id)


@pytest.fixture(scope="module")
def eager_copy(tiny_dirs):
    """The same weights loaded separately with eager attention: an independent reference."""
    return AutoModelForCausalLM.from_pretrained(tiny_dirs["gemma3"], attn_implementation="eager").eval()


def test_one_tab_and_endpoint_per_lab_with_preset_inputs(app, client):
    _, tabs, _ = app
    assert list(tabs) == list(LABS)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for lab in LABS:
        params = [p["parameter_name"] for p in api[f"/lab_{lab}"]["parameters"]]
        assert params == list(load_preset(lab)), lab
        assert len(tabs[lab].plots) == figure_slots(lab)
    # prefilled from the preset, with a component that suits each value
    fields = {f.name: f.component for f in tabs["sampling"].fields}
    assert isinstance(fields["n_samples"], gr.Number) and fields["n_samples"].value == 20
    assert isinstance(fields["course_variant"], gr.Checkbox) and fields["course_variant"].value is False
    assert fields["settings"].value.splitlines() == load_preset("sampling")["settings"]
    sentences = {f.name: f.component for f in tabs["embeddings"].fields}["sentences"]
    assert isinstance(sentences, gr.Dataframe)
    feature = {f.name: f.component for f in tabs["sae"].fields}["feature"]
    assert isinstance(feature, gr.Textbox) and feature.value == ""  # empty: the SAE's default feature


def test_tokenization_table_is_the_tokenizers(client, lm):
    sentence = "Professor Hung-yi Lee's  course,\ttokenized!"
    out = client.predict(sentence=sentence, api_name="/lab_tokenization")
    data = out["result"]
    ids = lm.tokenizer.encode(sentence, add_special_tokens=False)
    assert data["ids"] == ids
    assert data["tokens"] == lm.tokenizer.convert_ids_to_tokens(ids)
    table = traces(out)[0]
    assert table["type"] == "table"
    assert [int(x) for x in decode_array(table["cells"]["values"][1])] == ids
    for token_id in ids:
        assert f"| {token_id} |" in out["summary"]


def test_sampling_matches_greedy_and_nltk(client, lm):
    prompt = "The weather today is"
    inputs = {
        "prompt": prompt,
        "settings": "top_k=1\ntop_k=50",
        "n_samples": 3,
        "max_new_tokens": 5,
        "temperature": 1.0,
        "seed": 11,
        "smoothing": "method1",
        "course_variant": False,
    }
    out = client.predict(**inputs, api_name="/lab_sampling")
    data = out["result"]
    assert data["seed"] == 11 and list(data["settings"]) == ["top_k=1", "top_k=50"]
    # top_k=1 is greedy: an independent greedy generate from <bos> + the prompt
    ids = torch.tensor([[lm.tokenizer.bos_token_id, *lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        greedy = lm.model.generate(ids, do_sample=False, max_new_tokens=5, top_k=None, top_p=None)
    expected = lm.tokenizer.decode(greedy[0, ids.shape[1] :], skip_special_tokens=True).strip()
    assert data["settings"]["top_k=1"]["samples"] == [expected] * 3
    # self-BLEU as the course: each sample against each other one with nltk, averaged
    samples = data["settings"]["top_k=50"]["samples"]
    from nltk.translate.bleu_score import SmoothingFunction

    per_sample = [
        np.mean(
            [
                sentence_bleu([o.split()], s.split(), smoothing_function=SmoothingFunction().method1)
                for j, o in enumerate(samples)
                if j != i
            ]
        )
        for i, s in enumerate(samples)
    ]
    assert data["settings"]["top_k=50"]["self_bleu"] == pytest.approx(float(np.mean(per_sample)), abs=1e-9)
    again = client.predict(**inputs, api_name="/lab_sampling")["result"]
    assert again["settings"]["top_k=50"]["samples"] == samples  # same seed, same samples
    assert traces(out) and "top_k=50" in out["summary"]


def test_attention_generation_matches_an_eager_forward(client, lm, eager_copy):
    out = client.predict(
        prompt="Google", max_new_tokens=4, layer=1, head=2, course_variant=False, api_name="/lab_attention_generation"
    )
    data = out["result"]
    ids = torch.tensor([lm.tokenizer("Google")["input_ids"]])
    with torch.no_grad():
        greedy = eager_copy.generate(ids, do_sample=False, max_new_tokens=4, top_k=None, top_p=None)
        attentions = eager_copy(greedy, output_attentions=True).attentions
    assert data["token_ids"] == greedy[0].tolist()
    expected = attentions[1][0, 2].numpy()
    np.testing.assert_allclose(np.asarray(data["attention"]), expected, atol=5e-4)  # kept as float16
    heatmap = traces(out)[0]
    np.testing.assert_allclose(decode_array(heatmap["z"]).astype(float), expected, atol=5e-4)
    assert data["layer"] == 1 and data["head"] == 2


def test_bad_inputs_come_back_as_a_message_in_the_tab(client):
    out = client.predict(sentence="   ", api_name="/lab_tokenization")
    assert out["summary"].startswith("⚠️") and "sentence" in out["summary"] and out["result"] is None
    out = client.predict(
        prompt="x", settings="top_k=abc", n_samples=2, max_new_tokens=2, temperature=1, seed=0,
        smoothing="", course_variant=False, api_name="/lab_sampling",
    )  # fmt: skip
    assert out["summary"].startswith("⚠️") and "top_k must be a whole number" in out["summary"]
    assert out["result"] is None
    out = client.predict(
        prompt_a="a", prompt_b="b", sentence="Time travel.", token_index=1, feature=None, layer=None,
        across_layers="1, two", skip_bos=True, course_variant=False, api_name="/lab_sae",
    )  # fmt: skip
    assert "`across_layers` must be whole numbers separated by commas" in out["summary"]
    out = client.predict(
        prompt_a="a", prompt_b="b", sentence="Time travel.", token_index=1, feature="ten", layer="",
        across_layers="", skip_bos=True, course_variant=False, api_name="/lab_sae",
    )  # fmt: skip
    assert "`feature` must be a whole number, but is 'ten'" in out["summary"]
    out = client.predict(
        prompt_a="a", prompt_b="b", sentence="Time travel.", token_index=1, feature="", layer="",
        across_layers="", skip_bos=True, course_variant=False, api_name="/lab_sae",
    )  # fmt: skip
    data = out["result"]
    assert out["summary"].startswith("**No SAE for this model.**") and data["unavailable"] in out["summary"]
    assert data["settings"]["feature"] is None and out["figures"] == []
    # the app still serves the next request
    assert client.predict(sentence="ok", api_name="/lab_tokenization")["result"]["ids"]


def test_a_lab_runs_on_the_sessions_current_model(settings, tiny_dirs):
    calls = []

    def progress(fraction, message):
        calls.append((fraction, message))

    session = Session(Shared(settings))
    inputs = {"prompt": "Google", "max_new_tokens": 2, "layer": 1, "head": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = session.lab_panel("attention_generation", inputs, progress)
        assert session.load_model(str(tiny_dirs["gemma2"])).ok
        other = session.lab_panel("attention_generation", inputs)
    assert default.result["model_id"] == str(tiny_dirs["gemma3"])
    assert other.result["model_id"] == str(tiny_dirs["gemma2"])
    assert calls and calls[-1][0] == 1.0  # the lab's progress reached the caller


def test_embeddings_sentences_come_from_the_editable_table(client, lm):
    rows = [["I ate a fresh apple.", "fruit"], ["Apple released the new iPhone.", "company"], ["", ""]]
    rows += [["Banana is my favorite fruit.", "fruit"], ["Microsoft announced a new update.", "company"]]
    data = client.predict(
        sentences={"headers": ["text", "sense"], "data": rows}, layer=-1, pooling="mean", include_bos=True,
        course_variant=False, perplexity=2, seed=42, api_name="/lab_embeddings",
    )["result"]  # fmt: skip
    kept = [row for row in rows if row[0]]  # an emptied row is a removed row
    assert [(s["text"], s["sense"]) for s in data["sentences"]] == [tuple(row) for row in kept]
    assert [s["n_tokens"] for s in data["sentences"]] == [len(lm.tokenizer(text)["input_ids"]) for text, _ in kept]
