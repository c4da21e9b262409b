"""The app's API, driven with gradio_client as a script would: a two-turn chat and every tab."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from gradio_client import Client

CHAT = {"system_prompt": "", "temperature": 0, "top_k": 0, "top_p": 1, "max_new_tokens": 6, "seed": ""}


def decode_array(value) -> np.ndarray:
    """Plotly 6 sends numeric arrays as {'dtype', 'bdata' (base64), 'shape'}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])
    return np.asarray(value)


@pytest.fixture(scope="module")
def client(tiny_app):
    return Client(tiny_app, verbose=False)


def test_named_endpoints(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {"/chat", "/inspect_prompt", "/inspect_tokens", "/next_token", "/attention", "/sae", "/tokenize"}
    assert expected <= endpoints
    assert {"/retry", "/undo", "/clear", "/stop", "/load_model", "/search_features"} <= endpoints


def test_two_turn_chat_and_every_inspection_endpoint(client):
    messages, status, box = client.predict("Name a colour.", **CHAT, api_name="/chat")
    assert status.startswith("Turn 1:") and box == ""
    messages, status, _ = client.predict("Another one?", **CHAT, api_name="/chat")
    assert status.startswith("Turn 2:")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]

    prompt, marked, _ = client.predict(turn=1, api_name="/inspect_prompt")
    assert prompt.startswith("<bos><start_of_turn>user\nName a colour.<end_of_turn>")
    assert prompt.endswith("Another one?<end_of_turn>\n<start_of_turn>model\n") and "gi-special" in marked
    first_prompt, _, _ = client.predict(turn=0, api_name="/inspect_prompt")
    assert "Another one?" not in first_prompt

    chips, table = client.predict(turn=1, api_name="/inspect_tokens")
    assert table["headers"] == ["position", "id", "token", "part"]
    assert table["data"][0][1] == 2 and table["data"][0][3] == "template"
    assert {row[3] for row in table["data"]} == {"template", "prompt", "reply"}

    plot, steps, summary, reply, _ = client.predict(turn=1, step=0, api_name="/next_token")
    assert summary.startswith("Step 0: generated")
    assert sum(1 for row in steps["data"] if row[5] == "✔") == 1
    assert plot["type"] == "plotly" and len(json.loads(plot["plot"])["data"]) == 2

    heatmap, overview = client.predict(turn=1, layer=1, head="mean", query_start=0, api_name="/attention")
    trace = json.loads(heatmap["plot"])["data"][0]
    assert trace["type"] == "heatmap"
    weights = decode_array(trace["z"])
    assert weights.shape == (len(table["data"]),) * 2
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-2)

    summary, *_ = client.predict(turn=1, layer="", feature=0, position=0, api_name="/sae")
    assert "No sparse autoencoder is known for" in summary
    free = client.predict(text="Hello world", api_name="/tokenize")
    assert [row[2] for row in free["data"]] == ["Hello", "␣world"]


def test_errors_come_back_as_messages(client):
    messages, status, box = client.predict("   ", **CHAT, api_name="/chat")
    assert "empty" in status and box == "   "
    with pytest.raises(Exception, match="`turn` must be in"):
        client.predict(turn=7, api_name="/inspect_prompt")
