"""Every endpoint with bad values, through gradio_client against the launched app: each gets a message that
names what was wrong, the conversation is kept, the server keeps serving, and no traceback is printed."""

from __future__ import annotations

import json
import threading
import time

import pytest
from gradio_client import Client

from inspectors.settings import Settings
from tests.helpers import hold_generation_until_stopped, save_tiny_sae
from tests.ui.conftest import launch

CHAT = {"system_prompt": "", "temperature": 0, "top_k": 0, "top_p": 1, "max_new_tokens": 6, "seed": None}
HUGE = "x" * 30_000


@pytest.fixture(scope="module")
def app_url(tiny_dirs, tmp_path_factory):
    sae_dir = save_tiny_sae(tmp_path_factory.mktemp("sae") / "sae", d_in=64, layer=2)
    settings = Settings(
        model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256, max_new_tokens_limit=64, sae=str(sae_dir)
    )
    demo, url = launch(settings)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(app_url):
    client = Client(app_url, verbose=False)
    assert client.predict("A first message.", **CHAT, api_name="/chat")["status"].startswith("Turn 1:")
    return client


def answer(client: Client, endpoint: str, kwargs: dict) -> str:
    """What the caller sees: the raised error's message, or the returned JSON."""
    try:
        return json.dumps(client.predict(**kwargs, api_name=endpoint), ensure_ascii=False)
    except Exception as err:
        return str(err)


def chat(**changes):
    return {"message": "hi", **CHAT, **changes}


CASES = [
    ("/chat", chat(message=""), "The message is empty"),
    ("/chat", chat(message="   "), "The message is empty"),
    ("/chat", chat(message=HUGE), "`message` must be at most 20,000 characters long"),
    ("/chat", chat(system_prompt=HUGE), "`system_prompt` must be at most 20,000 characters long"),
    ("/chat", chat(temperature="abc"), "`temperature` must be a number in [0, 5], but is 'abc'"),
    ("/chat", chat(temperature="nan"), "`temperature` must be a number in [0, 5], but is 'nan'"),
    ("/chat", chat(temperature=-1), "`temperature` must be a number in [0, 5], but is -1"),
    ("/chat", chat(temperature=99), "`temperature` must be a number in [0, 5], but is 99"),
    ("/chat", chat(top_k=-1), "`top_k` must be a whole number >= 0, but is -1"),
    ("/chat", chat(top_k="2.5"), "`top_k` must be a whole number >= 0, but is '2.5'"),
    ("/chat", chat(top_k="abc"), "`top_k` must be a whole number >= 0, but is 'abc'"),
    ("/chat", chat(top_p=1.5), "`top_p` must be a number in [0, 1], but is 1.5"),
    ("/chat", chat(top_p="x"), "`top_p` must be a number in [0, 1], but is 'x'"),
    ("/chat", chat(max_new_tokens=0), "`max_new_tokens` must be a whole number >= 1, but is 0"),
    ("/chat", chat(max_new_tokens=10_000), "`max_new_tokens` must be at most 64"),
    ("/chat", chat(max_new_tokens="ten"), "`max_new_tokens` must be a whole number >= 1, but is 'ten'"),
    ("/chat", chat(seed=-1), "`seed` must be a whole number in [0, 4294967295], but is -1"),
    ("/chat", chat(seed="abc"), "`seed` must be a whole number in [0, 4294967295], but is 'abc'"),
    ("/chat", chat(seed=2**40), "`seed` must be a whole number in [0, 4294967295]"),
    ("/inspect_prompt", {"turn": 99}, "`turn` must be a whole number in [0, 0], but is 99"),
    ("/inspect_prompt", {"turn": "abc"}, "`turn` must be a whole number in [0, 0], but is 'abc'"),
    ("/inspect_tokens", {"turn": "1.5"}, "`turn` must be a whole number in [0, 0], but is '1.5'"),
    ("/inspect_tokens", {"turn": -1}, "`turn` must be a whole number in [0, 0], but is -1"),
    ("/next_token", {"turn": 0, "step": 99}, "`step` must be a whole number in [0, 5], but is 99"),
    ("/next_token", {"turn": 0, "step": "x"}, "`step` must be a whole number in [0, 5], but is 'x'"),
    ("/next_token", {"turn": 0, "step": -3}, "`step` must be a whole number in [0, 5], but is -3"),
    ("/next_token", {"turn": 3, "step": 0}, "`turn` must be a whole number in [0, 0], but is 3"),
    ("/attention", {"turn": 0, "layer": 99}, "`layer` must be a whole number in [0, 3], but is 99"),
    ("/attention", {"turn": 0, "layer": "x"}, "`layer` must be a whole number in [0, 3], but is 'x'"),
    ("/attention", {"turn": 0, "layer": 1, "head": "7"}, "`head` must be a whole number in [0, 3], but is '7'"),
    ("/attention", {"turn": 0, "layer": 1, "head": "foo"}, "`head` must be a whole number in [0, 3], but is 'foo'"),
    ("/attention", {"turn": 0, "layer": 1, "query_start": -1}, "`query_start` must be a whole number in [0, "),
    ("/attention", {"turn": 0, "layer": 1, "query_start": 10**6}, "`query_start` must be a whole number in [0, "),
    ("/sae", {"turn": 0, "layer": 99}, "`layer` must be a whole number in [0, 3], but is 99"),
    ("/sae", {"turn": 0, "feature": "ten"}, "`feature` must be a whole number in [0, 127], but is 'ten'"),
    ("/sae", {"turn": 0, "feature": 10**6}, "`feature` must be a whole number in [0, 127], but is 1000000"),
    ("/sae", {"turn": 0, "feature": 3, "position": 10**6}, "`position` must be a whole number in [0, "),
    ("/sae", {"turn": 0, "feature": 3, "position": "p"}, "`position` must be a whole number in [0, "),
    ("/search_features", {"query": "travel " * 50}, "`query` must be at most 200 characters long"),
    ("/search_features", {"query": "travel", "layer": "abc"}, "`layer` must be a whole number in [0, 3]"),
    ("/tokenize", {"text": HUGE}, "`text` must be at most 20,000 characters long"),
    ("/load_model", {"model_id": ""}, "`model_id` must name a model"),
    ("/load_model", {"model_id": "/etc"}, "holds no model (missing: config.json, weights, tokenizer)"),
    ("/load_model", {"model_id": "not a model id"}, "was not found"),
    ("/load_model", {"model_id": "nobody/no-such-model-xyz"}, "nobody/no-such-model-xyz"),
    ("/lab_tokenization", {"sentence": ""}, "`sentence` must be non-empty text"),
    ("/lab_sampling", {"n_samples": "many"}, "`n_samples` must be a whole number, but is 'many'"),
    ("/lab_multiturn", {"max_new_tokens": -5}, "`max_new_tokens`"),
    ("/lab_embeddings", {"sentences": "not a table"}, "`sentences` must be a table with the columns"),
    ("/lab_sae", {"across_layers": "1, two"}, "`across_layers` must be whole numbers separated by commas"),
]


@pytest.mark.parametrize(("endpoint", "kwargs", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_bad_value_is_named_and_nothing_is_lost(client, endpoint, kwargs, expected):
    turns = client.predict(api_name="/turns")
    seen = answer(client, endpoint, kwargs)
    assert expected in seen, seen
    assert "upstream Gradio app has raised an exception" not in seen  # Gradio's generic message
    assert client.predict(api_name="/turns") == turns  # the conversation is as it was
    assert "still using" in seen.lower() or endpoint != "/load_model"  # a failed load keeps the model


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


def test_undo_retry_clear_stop_on_an_empty_chat(app_url):
    fresh = Client(app_url, verbose=False)
    assert fresh.predict(api_name="/undo")["status"] == "Nothing to undo."
    assert fresh.predict(api_name="/retry")["status"] == "Nothing to retry yet."
    assert fresh.predict(api_name="/clear")["messages"] == []
    assert fresh.predict(api_name="/stop") == "Stopped."
    assert fresh.predict(api_name="/turns") == []
    assert fresh.predict(turn=None, api_name="/inspect_prompt")["prompt"] == ""


def test_undo_retry_clear_on_a_full_chat(app_url):
    fresh = Client(app_url, verbose=False)
    for text in ("one", "two"):
        fresh.predict(text, **CHAT, api_name="/chat")
    retried = fresh.predict(**CHAT, api_name="/retry")
    assert retried["status"].startswith("Turn 2:") and len(retried["messages"]) == 4
    undone = fresh.predict(api_name="/undo")
    assert undone["message_box"] == "two" and len(undone["messages"]) == 2
    assert fresh.predict(api_name="/clear")["messages"] == [] and fresh.predict(api_name="/turns") == []


def test_stop_while_streaming(app_url, monkeypatch):
    hold_generation_until_stopped(monkeypatch)
    fresh = Client(app_url, verbose=False)
    job = fresh.submit("Tell me everything", **{**CHAT, "max_new_tokens": 64}, api_name="/chat")
    while not job.outputs():
        time.sleep(0.01)  # the reply has started streaming
    assert fresh.predict(api_name="/stop") == "Stopping…"
    final = job.result()
    assert "stopped by stopped" in final["status"] and final["done"]
    assert len(fresh.predict(api_name="/turns")) == 1  # the partial reply is kept as a turn


def test_stop_while_queued_behind_another_users_reply(app_url, monkeypatch):
    from gradio_client.utils import Status

    from inspectors.engine import calls

    holding, release = threading.Event(), threading.Event()
    real = calls.stream_reply

    def held(model, messages, *args, **kwargs):  # the other user's reply holds the chat slot until released
        if messages[-1]["content"] == "Talk for a while":
            holding.set()
            release.wait(60)
        yield from real(model, messages, *args, **kwargs)

    monkeypatch.setattr(calls, "stream_reply", held)
    busy, mine = Client(app_url, verbose=False), Client(app_url, verbose=False)
    long_reply = busy.submit("Talk for a while", **CHAT, api_name="/chat")
    assert holding.wait(60)
    queued = mine.submit("Are you there?", **CHAT, api_name="/chat")
    while queued.status().code != Status.IN_QUEUE:
        time.sleep(0.05)  # the request has reached the server and waits behind the other reply
    assert mine.predict(api_name="/stop") == "Stopped."  # nothing of mine is running yet
    release.set()
    final = queued.result()
    assert "Stopped before the reply started" in final["status"] and final["message_box"] == "Are you there?"
    assert mine.predict(api_name="/turns") == []
    assert long_reply.result()["status"].startswith("Turn 1:")  # the other user's reply is untouched


def test_expected_errors_log_one_line_and_no_traceback(client, capfd, caplog):
    caplog.set_level("INFO")
    for endpoint, kwargs, _ in CASES[19:26]:
        answer(client, endpoint, kwargs)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused and all(r.exc_info is None for r in refused)
