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


def test_the_why_endpoints(client):
    """/logit_lens, /attribution and /turn_attention on a two-turn chat, as a script reads them."""
    client.predict(api_name="/clear")
    client.predict("Name a colour.", **CHAT, api_name="/chat")
    client.predict("Another one?", **CHAT, api_name="/chat")
    n_layers = 4  # the tiny model's
    for precision in ("float32", "auto"):
        lens = client.predict(turn=1, with_prompt=False, start=0, precision=precision, api_name="/logit_lens")
        assert lens["headers"][0] == "layer" and len(lens["rows"]) == n_layers * CHAT["max_new_tokens"]
        assert {row[0] for row in lens["rows"]} == set(range(n_layers))
        assert all(0 <= row[4] <= 1 and 0 <= row[5] <= 1 for row in lens["rows"])
    with pytest.raises(Exception, match="`precision` must be one of"):
        client.predict(turn=1, precision="int4", api_name="/logit_lens")

    why = client.predict(turn=1, step=2, method="gradient", steps=8, api_name="/attribution")
    assert why["headers"] == ["position", "token", "segment", "score"] and why["step"] == 2
    scores = {}
    for _, _, segment, score in why["rows"]:
        scores[segment] = scores.get(segment, 0.0) + score
    assert scores == pytest.approx(why["segments"], abs=1e-4)  # the segment totals are the token scores' sums

    shares = client.predict(turn=1, layer="mean", head="mean", api_name="/turn_attention")
    per_position = {}
    for position, _, share in shares["rows"]:
        per_position[position] = per_position.get(position, 0.0) + share
    assert len(per_position) == CHAT["max_new_tokens"]
    assert list(per_position.values()) == pytest.approx([1.0] * len(per_position), abs=1e-3)


def test_errors_come_back_as_messages(client):
    empty = client.predict("   ", **CHAT, api_name="/chat")
    assert "empty" in empty["status"] and empty["message_box"] == "   "
    with pytest.raises(Exception, match=r"`turn` must be a whole number in \[0, "):
        client.predict(turn=7, api_name="/inspect_prompt")


def test_branch_steer_and_switch_through_the_api(client):
    client.predict(api_name="/clear")
    first = client.predict("Name a colour.", **CHAT, api_name="/chat")
    step = client.predict(turn=0, step=2, api_name="/next_token")
    runner_up = int(step["rows"][1][2])  # [rank, token, id, ...]: the second candidate

    branched = client.predict(turn=0, step=2, token_id=runner_up, text="", api_name="/branch")
    assert branched["done"] and "Branch 2" in branched["status"], branched["status"]
    tokens = client.predict(turn=0, api_name="/inspect_tokens")["rows"]
    reply = [row[1] for row in tokens if row[3] == "reply"]
    assert reply[2] == runner_up
    listed = client.predict(api_name="/branches")
    assert [index for _, index in listed["branches"]] == [0, 1] and listed["active"] == 1

    steered = client.predict(
        message="", turn=0, mode="activation addition", layer=1, features="", strength=8, scale="residual norm",
        prompts_a="I love it.", prompts_b="I hate it.", api_name="/steer",
    )  # fmt: skip
    assert steered["done"] and "activation addition at layer 1" in steered["summary"], steered["status"]
    assert steered["headers"] == ["step", "default token", "steered token", "KL (nats)"] and steered["rows"]
    assert len(client.predict(api_name="/branches")["branches"]) == 3

    back = client.predict(branch=0, api_name="/switch_branch")
    assert back["messages"] == first["messages"] and "Now on branch 1" in back["status"]
    refused = client.predict(branch=9, api_name="/switch_branch")
    assert "`branch` must be a whole number in [0, 2]" in refused["status"]
    compared = client.predict(turn_a=0, turn_b=None, against="no template", api_name="/compare")
    assert compared["ok"] and "<start_of_turn>" not in compared["b"]["tokens"], compared["status"]
    assert "<start_of_turn>" in compared["a"]["tokens"] and 0 <= compared["top10_overlap"] <= 10
    assert len(compared["cosine_per_layer"]) == 4  # the tiny model's layers
    itself = client.predict(turn_a=0, turn_b=0, against="turn", api_name="/compare")
    assert itself["kl_a_b"] == pytest.approx(0, abs=1e-5) and itself["top10_overlap"] == 10
    assert not client.predict(turn_a=5, against="turn", api_name="/compare")["ok"]
    bad = client.predict(message="", turn=0, mode="activation addition", layer=99, api_name="/steer")
    assert "`layer` must be a whole number in [0, 3]" in bad["status"] and bad["steered_reply"] == ""


def test_save_open_and_rerun_through_the_api(client):
    client.predict(api_name="/clear")
    client.predict("Name a colour.", **{**CHAT, "temperature": 0.8, "seed": 5}, api_name="/chat")
    before = client.predict(turn=0, api_name="/inspect_tokens")
    saved = client.predict(turn=0, what="turn", kind="json", api_name="/save")
    assert saved["ok"] and saved["filename"] == "gemma-inspector-turn-1.json", saved["status"]

    client.predict(api_name="/clear")
    opened = client.predict(content=saved["content"], api_name="/open_saved")
    assert "Opened" in opened["status"] and len(opened["messages"]) == 2, opened["status"]
    assert client.predict(turn=0, api_name="/inspect_tokens") == before
    rerun = client.predict(turn=0, api_name="/rerun")
    assert "**identical**" in rerun["status"], rerun["status"]

    foreign = client.predict(content='{"format": "someone-else"}', api_name="/open_saved")
    assert "not a Gemma Inspector file" in foreign["status"] and foreign["messages"] == rerun["messages"]
    html = client.predict(turn=None, what="conversation", kind="html", api_name="/save")
    assert html["ok"] and html["filename"].endswith(".html") and html["content"] is None
