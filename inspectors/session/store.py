"""The sessions of a running app, keyed by Gradio's session hash (one per browser tab or API client).

When a browser tab closes (Gradio's unload event) its session is released: kept for `grace_s` more, as
Gradio keeps a closed tab's state for an hour in case it reconnects with the same hash, then ended. An
API client sends no such event, so a session idle for longer than `idle_s` is ended too, and at most
`capacity` are kept (the least recently used goes first). Ending a session frees what it holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from inspectors.session.session import Session
from inspectors.session.shared import Shared

log = logging.getLogger(__name__)


class SessionStore:
    def __init__(self, shared: Shared, capacity: int = 512, idle_s: float = 6 * 3600, grace_s: float = 3600):
        self.shared = shared
        self.capacity = capacity
        self.idle_s = idle_s
        self.grace_s = grace_s
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._released: dict[str, float] = {}  # session id -> when its tab closed (time.monotonic)
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> Session:
        """The session for `session_id`, made on first use."""
        key = session_id or "local"
        ended = []
        with self._lock:
            self._released.pop(key, None)  # a tab that reconnects keeps its session
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = Session(self.shared, key)
            self._sessions.move_to_end(key)
            session.last_used = time.monotonic()
            ended = self._evict()
        for old in ended:
            old.close()
        return session

    def release(self, session_id: str | None) -> None:
        """Its tab closed: end the session after the grace period, unless it comes back."""
        with self._lock:
            if (session_id or "local") in self._sessions:
                self._released[session_id or "local"] = time.monotonic()
            ended = self._evict()
        for old in ended:
            old.close()

    def end(self, session_id: str | None) -> bool:
        """End a session now. Returns whether there was one."""
        with self._lock:
            session = self._sessions.pop(session_id or "local", None)
            self._released.pop(session_id or "local", None)
        if session is not None:
            session.close()
            log.info("session %s ended", session.id)
        return session is not None

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def _evict(self) -> list[Session]:
        """Sessions idle too long, and the oldest beyond capacity (called with the lock held)."""
        now = time.monotonic()
        expired = {key for key, at in self._released.items() if now - at > self.grace_s}
        expired |= {key for key, s in self._sessions.items() if now - s.last_used > self.idle_s}
        ended = [self._sessions.pop(key) for key in expired if key in self._sessions]
        while len(self._sessions) > self.capacity:
            ended.append(self._sessions.popitem(last=False)[1])
        for session in ended:
            self._released.pop(session.id, None)
        return ended
