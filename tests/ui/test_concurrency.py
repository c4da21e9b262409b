"""Four sessions at once against the launched app: each sees only its own conversation, and a search or a
lab that holds its slot never holds up another session's chat (they run in other concurrency groups)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from inspectors.session import Session
from tests.ui.conftest import launch

CHAT = {"system_prompt": "", "temperature": 0, "top_k": 0, "top_p": 1, "max_new_tokens": 4, "seed": None}
GUARD_S = 120  # how long a blocked operation waits before the test declares the chat stuck behind it


@pytest.fixture(scope="module")
def app_url(tiny_settings):
    demo, url = launch(tiny_settings)
    yield url
    demo.close()


def test_four_sessions_see_only_their_own_conversations(app_url):
    names = ["alice", "bob", "carol", "dave"]
    clients = {name: Client(app_url, verbose=False) for name in names}

    def talk(name: str) -> list[str]:
        for i in range(2):
            clients[name].predict(f"{name} says {i}", **CHAT, api_name="/chat")
        messages = clients[name].predict(api_name="/turns")
        prompt = clients[name].predict(turn=1, api_name="/inspect_prompt")["prompt"]
        assert f"{name} says 0" in prompt and f"{name} says 1" in prompt
        return [label for label, _ in messages]

    with ThreadPoolExecutor(len(names)) as pool:
        labels = dict(zip(names, pool.map(talk, names), strict=True))
    for name, turns in labels.items():
        assert [label.split(": ", 1)[1] for label in turns] == [f"{name} says 0", f"{name} says 1"]
        others = [n for n in names if n != name]
        assert not any(other in label for label in turns for other in others)


@pytest.mark.parametrize("blocker", ["search", "lab"])
def test_a_long_search_or_lab_does_not_hold_up_another_sessions_chat(app_url, monkeypatch, blocker):
    """The blocked operation finishes only after the other session's chat has come back: were they in the
    same queue slot, the chat could not start and the blocked operation would time out."""
    started, chat_done = threading.Event(), threading.Event()
    method = "search_panel" if blocker == "search" else "lab_panel"
    original = getattr(Session, method)

    def blocked(self, *args, **kwargs):
        started.set()
        if not chat_done.wait(GUARD_S):
            raise TimeoutError(f"the {blocker} waited {GUARD_S} s for a chat that never came back")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Session, method, blocked)
    searcher, chatter = Client(app_url, verbose=False), Client(app_url, verbose=False)
    if blocker == "search":
        job = searcher.submit(query="time travel", api_name="/search_features")
    else:
        job = searcher.submit(sentence="A long lab", api_name="/lab_tokenization")
    assert started.wait(GUARD_S)
    reply = chatter.predict("Meanwhile, hello", **CHAT, api_name="/chat")
    chat_done.set()
    assert reply["status"].startswith("Turn 1:")
    job.result()  # raises if the blocked operation timed out waiting for the chat
