"""`python app.py` as a Space starts it: SPACE_ID set (so space.yaml's settings apply: google/gemma-2-2b-it,
hosted), and the gated default unreachable (no token, the Hub offline). The app must start anyway, on the
embedded model, say why and what to do, and chat."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from gradio_client import Client

from inspectors.settings import REPO_ROOT, read_settings_yaml
from tests.ui.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def space_url(tmp_path_factory):
    port = free_port()
    env = {
        **os.environ,
        "SPACE_ID": "test/space",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    env.pop("HF_TOKEN", None)
    log = tmp_path_factory.mktemp("space") / "app.log"
    with open(log, "w") as out:
        app = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            if app.poll() is not None:
                pytest.fail(f"app.py exited with {app.returncode}:\n{log.read_text()[-3000:]}")
            try:
                Client(url, verbose=False)
                break
            except Exception:
                time.sleep(0.5)
        yield url
    finally:
        app.terminate()
        app.wait(30)


def test_the_space_starts_on_the_embedded_model_and_says_why(space_url):
    configured = read_settings_yaml(REPO_ROOT / "space.yaml")["model_id"]
    client = Client(space_url, verbose=False)
    info = client.predict(api_name="/model_info")
    assert info["model_id"] == "embedded/gemma-3-270m"
    notice = info["notice"]
    assert f"{configured} could not be loaded" in notice
    assert f"https://huggingface.co/{configured}" in notice and "HF_TOKEN" in notice and "Retry" in notice
    reply = client.predict("Name a color in a rainbow.", max_new_tokens=8, api_name="/chat")
    assert reply["status"].startswith("Turn 1: ") and "embedded/gemma-3-270m" in reply["status"]


def test_retry_says_it_still_fails_and_keeps_the_chat(space_url):
    client = Client(space_url, verbose=False)
    client.predict("Hello", max_new_tokens=4, api_name="/chat")
    switch = client.predict(model_id="google/gemma-2-2b-it", api_name="/load_model")
    assert not switch["ok"] and "Still using embedded/gemma-3-270m" in switch["status"]
    assert len(client.predict(api_name="/turns")) == 1
