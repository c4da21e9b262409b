"""One small builder per inspection tab. Each makes its widgets, names the controls it reads, and turns
the session's panel for a turn into widget updates: no computation here (that is the session's)."""

from __future__ import annotations

from typing import Any, Protocol

from inspectors.session import Session


class TabView(Protocol):
    id: str  # the gr.Tab's id, and the session's name for it
    controls: list[Any]  # widgets whose values `render` takes after the turn
    outputs: list[Any]  # widgets `render` updates

    def render(self, session: Session, turn: Any, *controls: Any, fresh: bool = False) -> dict[Any, Any]:
        """Updates for `outputs`. `fresh`: a new turn was just made, so per-turn positions start at 0."""
        ...
