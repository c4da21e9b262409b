"""What every part of the UI shares: the session of a request, how errors reach the user, progress bars,
and the launch options (the arrival stamp that lets Stop reach a reply still waiting in the queue)."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from inspectors.errors import InspectorError
from inspectors.session import Session, SessionStore

log = logging.getLogger(__name__)

ARRIVED = "gemma_inspector_arrived"  # request scope key: when the request reached the server (time.monotonic)

CSS = """
.gi-prompt {white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; line-height: 1.5;}
.gi-special {background: #c7d2fe; color: #312e81; border-radius: 4px; padding: 0 3px; font-weight: 600;}
.gi-tokens {display: flex; flex-wrap: wrap; gap: 3px; font-family: ui-monospace, monospace; font-size: 13px;}
.gi-tok {border-radius: 4px; padding: 1px 4px;}
.gi-hidden {display: none !important;}
"""

# Gradio's Plot reports no clicks. This page script listens to Plotly's own click event on the logit-lens
# plot and writes "layer,column" into a hidden textbox, whose input event asks for that cell's top-10.
LENS_CLICKS_JS = """
() => {
  const wire = () => {
    const plot = document.querySelector('#gi-lens .js-plotly-plot');
    if (plot && !plot.__giWired && plot.on) {
      plot.__giWired = true;
      plot.on('plotly_click', (event) => {
        const point = event.points && event.points[0];
        const box = document.querySelector('#gi-lens-cell textarea, #gi-lens-cell input');
        if (!point || !box) return;
        const [row, column] = point.pointIndex;
        box.value = `${row},${column}`;
        box.dispatchEvent(new Event('input', {bubbles: true}));
      });
    }
  };
  new MutationObserver(wire).observe(document.body, {childList: true, subtree: true});
}
"""


class StampArrival:
    """ASGI middleware: note when each request arrived. A queued event keeps the request that submitted it,
    so a reply that starts later can tell whether Stop was pressed after it was asked for."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            scope.setdefault("state", {})[ARRIVED] = time.monotonic()
        await self.app(scope, receive, send)


def arrived_at(request: gr.Request | None) -> float | None:
    """When the request behind this event reached the server, or None (launched without StampArrival)."""
    starlette_request = getattr(request, "request", None) if request is not None else None
    scope = getattr(starlette_request, "scope", None) or {}
    return (scope.get("state") or {}).get(ARRIVED)


def launch(demo: gr.Blocks, **kwargs: Any) -> Any:
    """`demo.launch` with the app's CSS and the arrival stamp."""
    from starlette.middleware import Middleware

    return demo.launch(css=CSS, app_kwargs={"middleware": [Middleware(StampArrival)]}, **kwargs)


def session_of(store: SessionStore, request: gr.Request | None) -> Session:
    return store.get(getattr(request, "session_hash", None))


def shown_errors(fn: Callable) -> Callable:
    """A user's mistake becomes a message in the UI or the API response, with one log line and no
    traceback; an unexpected failure is logged with its traceback and still answered with a message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InspectorError as err:
            log.info("%s refused: %s", fn.__name__, err)
            raise gr.Error(str(err), print_exception=False) from err
        except gr.Error:
            raise
        except Exception as err:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(
                f"Unexpected error ({type(err).__name__}: {err}). Your conversation is kept.", print_exception=False
            ) from err

    return wrapper


class GradioProgress:
    """A lab's or a load's `progress(fraction, message)` shown as Gradio's progress bar. Picklable (it
    holds only a gr.Progress), so it can travel to a GPU worker; a bar that cannot be drawn is skipped."""

    def __init__(self, progress: gr.Progress | None):
        self.progress = progress

    def __call__(self, fraction: float, message: str) -> None:
        if self.progress is None:
            return
        try:
            self.progress(fraction, desc=message)
        except Exception:  # no event to report to (an API call without progress, a forked worker)
            log.debug("progress not shown: %s", message)


def with_request(fn: Callable, n_inputs: int) -> Callable:
    """`fn(*values, request=...)` as Gradio calls a handler: inputs by position, with the request inserted
    at the positional parameter annotated gr.Request. Spells out `n_inputs` positions, then the request."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(f"value_{i}", positional) for i in range(n_inputs)]
    parameters.append(inspect.Parameter("request", positional, annotation=gr.Request))

    if inspect.isgeneratorfunction(fn):  # Gradio streams only from generator functions

        def call(*args: Any) -> Iterator[Any]:
            *values, request = args
            yield from fn(*values, request=request)

    else:

        def call(*args: Any) -> Any:
            *values, request = args
            return fn(*values, request=request)

    call.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    call.__annotations__ = {"request": gr.Request}
    call.__name__ = fn.__name__
    return call
