"""The app's API, driven with gradio_client as a script would: a two-turn chat and every tab, as JSON."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client

CHAT = {"system_prompt": "", "temperature": 0, "top_k": 0, "top_p": 1, "max_new_tokens": 6, "seed": None}


@pytest.fixture(scope="module")
def client(tiny_app):
    return Client(tiny_app, verbose=False)


def test_named_endpoints(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {"/chat", "/inspect_prompt", "/inspect_tokens", "/next_token", "/attention", "/sae", "/tokenize"}
    expected |= {"/retry", "/undo", "/clear", "/stop", "/load_model", "/search_features", "/turns"}
    expected |= {f"/lab_{lab}" for lab in ("template_vs_none", "multiturn", "tokenization", "sampling", "sae")}
    assert expected <= endpoints


def test_two_turn_chat_and_every_inspection_endpoint(client):
    first = client.predict("Name a colour.", **CHAT, api_name="/chat")
    assert first["status"].startswith("Turn 1:") and first["message_box"] == "" and first["done"]
    second = client.predict("Another one?", **CHAT, api_name="/chat")
    assert second["status"].startswith("Turn 2:")
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [t[1] for t in client.predict(api_name="/turns")] == [0, 1]

    prompt = client.predict(turn=1, api_name="/inspect_prompt")
    assert prompt["prompt"].startswith("<bos><start_of_turn>user\nName a colour.<end_of_turn>")
    assert prompt["prompt"].endswith("Another one?<end_of_turn>\n<start_of_turn>model\n")
    assert "gi-special" in prompt["html"] and prompt["turn"] == 1
    assert "Another one?" not in client.predict(turn=0, api_name="/inspect_prompt")["prompt"]

    tokens = client.predict(turn=1, api_name="/inspect_tokens")
    assert tokens["headers"] == ["position", "id", "token", "part"]
    assert tokens["rows"][0][1] == 2 and tokens["rows"][0][3] == "template"
    assert {row[3] for row in tokens["rows"]} == {"template", "prompt", "reply"}

    step = client.predict(turn=1, step=3, api_name="/next_token")  # no slider's stale limit in the way
    assert step["summary"].startswith("Step 3: generated") and step["step"] == 3 and step["n_steps"] == 6
    assert sum(1 for row in step["rows"] if row[5] == "✔") == 1

    attention = client.predict(turn=1, layer=1, head="mean", query_start=0, api_name="/attention")
    weights = np.asarray(attention["weights"])
    assert weights.shape == (len(tokens["rows"]),) * 2
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-2)
    assert attention["query_tokens"][0] == "0:<bos>"

    assert "No sparse autoencoder is known for" in client.predict(turn=1, api_name="/sae")["summary"]
    assert [row[2] for row in client.predict(text="Hello world", api_name="/tokenize")] == ["Hello", "␣world"]


def test_errors_come_back_as_messages(client):
    empty = client.predict("   ", **CHAT, api_name="/chat")
    assert "empty" in empty["status"] and empty["message_box"] == "   "
    with pytest.raises(Exception, match=r"`turn` must be a whole number in \[0, "):
        client.predict(turn=7, api_name="/inspect_prompt")
