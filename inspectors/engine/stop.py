"""A stop flag that reaches a reply wherever it is generated, in this process or in a forked GPU worker.

On a ZeroGPU Space a reply is generated in a worker process forked from the server, with its arguments
pickled: a `threading.Event` set by the Stop button would never reach it. A file's existence does, on
the same machine, at the cost of one `stat` per generated token (about a microsecond). Off ZeroGPU the
same flag works in-process, so there is one mechanism to test.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

_folder: Path | None = None
_folder_lock = threading.Lock()


def _flags_folder() -> Path:
    global _folder
    with _folder_lock:
        if _folder is None:
            _folder = Path(tempfile.mkdtemp(prefix="gemma-inspector-stop-"))
        return _folder


@dataclass(frozen=True)
class StopSignal:
    """Picklable: only the flag file's path travels. `is_set` has threading.Event's name, so generation's
    stopping criteria take either."""

    path: str

    @classmethod
    def new(cls) -> StopSignal:
        return cls(str(_flags_folder() / uuid.uuid4().hex))

    def set(self) -> None:
        with open(self.path, "a", encoding="utf-8"):
            pass

    def clear(self) -> None:
        Path(self.path).unlink(missing_ok=True)

    def is_set(self) -> bool:
        return os.path.exists(self.path)
