"""Sessions of a running app: one per session hash, released when a tab closes, ended when idle or over capacity."""

from __future__ import annotations

import time

import pytest

from inspectors.session import SessionStore, Shared
from inspectors.settings import Settings


@pytest.fixture
def store():
    return SessionStore(Shared(Settings()), capacity=3, idle_s=60, grace_s=60)


def test_one_session_per_hash(store):
    a = store.get("a")
    assert store.get("a") is a and store.get("b") is not a
    assert store.get(None) is store.get("local") and len(store) == 3


def test_capacity_ends_the_least_recently_used(store):
    first = store.get("first")
    first.stop()  # its stop flag now exists on disk
    for name in ("b", "c", "d"):
        store.get(name)
    assert "first" not in store and len(store) == 3
    assert not first._stop.is_set()  # ending it removed the flag's file


def test_a_released_session_survives_the_grace_period_only(store, monkeypatch):
    store.get("tab")
    store.release("tab")
    assert "tab" in store  # a tab that reconnects within the grace period keeps its conversation
    assert store.get("tab") is store.get("tab")
    store.release("tab")
    later = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    store.get("other")  # any access sweeps
    assert "tab" not in store


def test_idle_sessions_end(store, monkeypatch):
    store.get("api-client")
    later = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    store.get("someone")
    assert "api-client" not in store and "someone" in store


def test_end(store):
    store.get("x")
    assert store.end("x") and not store.end("x")
