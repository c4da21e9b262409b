"""A small thread-safe LRU for results computed on demand from a finished turn (attention, SAE columns).

Keys name the model and the turn's token ids, so sessions share an entry only for the very same
tokens, and a bounded size keeps memory flat however many users ask.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np


def turn_key(model_id: str, model: object, token_ids: np.ndarray, *parts: object) -> tuple:
    """A cache key for (this loaded model, these token ids, whatever else selects the result)."""
    digest = hashlib.sha1(np.asarray(token_ids, dtype=np.int64).tobytes()).hexdigest()
    return (model_id, id(model), digest, *parts)


class LRUCache:
    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
