from __future__ import annotations

import socket

import pytest

from inspectors.settings import Settings
from inspectors.ui.app import build_app
from inspectors.ui.common import launch as launch_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(settings: Settings):
    """Launch the real app in this process; returns (demo, url)."""
    demo = build_app(settings)
    port = free_port()
    launch_app(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def tiny_settings(tiny_dirs) -> Settings:
    return Settings(model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256, max_new_tokens_limit=64)


@pytest.fixture(scope="module")
def tiny_app(tiny_settings):
    demo, url = launch(tiny_settings)
    yield url
    demo.close()
