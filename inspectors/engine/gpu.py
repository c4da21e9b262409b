"""Where the model runs a call: inline, or on a ZeroGPU Space in a forked GPU worker.

On ZeroGPU (`spaces.GPU`) a decorated function runs in a worker process forked from the server: its
arguments and every value it returns or yields are pickled, an exception other than `gr.Error` arrives
only as its class name, and nothing it changes in its own memory reaches the server. So every function
decorated here takes and returns plain data (ids, messages, parameters, records), looks the shared
model up inside, and reports an `InspectorError` as a value that the server raises again with its
message intact. Off ZeroGPU the same function runs inline at no cost.

`GEMMA_INSPECTOR_FORK_CALLS=1` runs each call in a freshly forked process with pickled arguments and
results, as ZeroGPU does, so the whole app can be tested in that shape on any machine.
"""

from __future__ import annotations

import functools
import inspect
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from inspectors import errors
from inspectors.errors import InspectorError

log = logging.getLogger(__name__)

FORK_CALLS_ENV = "GEMMA_INSPECTOR_FORK_CALLS"
Duration = int | Callable[..., int]  # seconds, or a function of the call's arguments giving them


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (the `spaces` package present and `SPACES_ZERO_GPU` set)."""
    try:
        from spaces.config import Config
    except ImportError:
        return False
    return bool(Config.zero_gpu)


def forked_calls() -> bool:
    return os.environ.get(FORK_CALLS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class _Failure:
    """An InspectorError raised inside a worker, carried back as a value (its class name and message)."""

    kind: str
    message: str

    def reraise(self) -> None:
        cls = getattr(errors, self.kind, InspectorError)
        err = Exception.__new__(cls)  # InvalidParameterError's __init__ takes other arguments
        Exception.__init__(err, self.message)
        raise err


def _caught(err: InspectorError) -> _Failure:
    return _Failure(type(err).__name__, str(err))


def gpu(duration: Duration) -> Callable[[Callable], Callable]:
    """Decorate an engine call that needs the model (a function, or a generator that streams).

    `duration`: the GPU seconds ZeroGPU should reserve for the call (a visitor's daily quota is a few
    minutes, so size it to the work: a callable gets the call's arguments)."""

    def decorate(fn: Callable) -> Callable:
        streams = inspect.isgeneratorfunction(fn)
        worker = _worker_stream(fn) if streams else _worker_call(fn)
        zero = _zero_gpu_wrapped(worker, duration)

        if streams:

            @functools.wraps(fn)
            def run_stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                if zero is not None:
                    items = _quota_messages(zero, *args, **kwargs)
                elif forked_calls():
                    items = _forked_stream(worker, args, kwargs)
                else:
                    items = worker(*args, **kwargs)
                for item in items:
                    if isinstance(item, _Failure):
                        item.reraise()
                    yield item

            run_stream.inline = fn  # type: ignore[attr-defined]
            return run_stream

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            if zero is not None:
                result = next(_quota_messages(lambda *a, **k: iter([zero(*a, **k)]), *args, **kwargs))
            elif forked_calls():
                result = _forked_call(worker, args, kwargs)
            else:
                result = worker(*args, **kwargs)
            if isinstance(result, _Failure):
                result.reraise()
            return result

        run.inline = fn  # type: ignore[attr-defined]
        return run

    return decorate


def _worker_call(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InspectorError as err:
            return _caught(err)

    return call


def _worker_stream(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from fn(*args, **kwargs)
        except InspectorError as err:
            yield _caught(err)

    return stream


def _zero_gpu_wrapped(worker: Callable, duration: Duration) -> Callable | None:
    if not on_zero_gpu():
        return None
    import spaces

    return spaces.GPU(duration=duration)(worker)


def _quota_messages(call: Callable, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """ZeroGPU refuses a call with a `gr.Error` titled "ZeroGPU quota exceeded" (or "... illegal duration",
    "... pending credits exceeded"): say what it means here and what to do."""
    try:
        yield from call(*args, **kwargs)
    except Exception as err:
        title = str(getattr(err, "title", "") or "")
        if not title.startswith("ZeroGPU"):
            raise
        raise InspectorError(
            f"{title}: {err}. This Space runs on shared ZeroGPU hardware, where each visitor gets a few GPU minutes "
            "a day (more when logged in to Hugging Face). Your conversation is kept: try again later, log in, or "
            "duplicate the Space to run it on your own hardware."
        ) from err


# ---- the ZeroGPU shape, emulated with a fork per call (tests) ------------------------------------------
_END = "__gemma_inspector_end__"


def _forked_call(worker: Callable, args: tuple, kwargs: dict) -> Any:
    return next(iter(_forked_stream(lambda *a, **k: iter([worker(*a, **k)]), args, kwargs)))


def _forked_stream(worker: Callable, args: tuple, kwargs: dict) -> Iterator[Any]:
    """Run `worker` in a forked child; arguments and every yielded value cross as pickles, as on ZeroGPU."""
    context = multiprocessing.get_context("fork")
    inbox, outbox = context.SimpleQueue(), context.SimpleQueue()
    inbox.put((args, kwargs))  # pickled here, exactly as spaces pickles a call's arguments

    def child() -> None:
        # GNU OpenMP's thread pool does not survive a fork: a child that enters a parallel region the parent
        # already used waits forever. One intra-op thread keeps torch out of OpenMP (ZeroGPU runs on CUDA).
        import torch

        torch.set_num_threads(1)
        call_args, call_kwargs = inbox.get()
        try:
            for item in worker(*call_args, **call_kwargs):
                try:
                    outbox.put(item)
                except Exception as err:  # spaces: "PicklingError" for a value that cannot cross
                    outbox.put(RuntimeError(f"GPU worker error: a result that does not pickle ({err})"))
                    break
        except BaseException as err:  # what spaces reports for a non-gr.Error: the class name only
            outbox.put(RuntimeError(f"GPU worker error: {type(err).__name__}"))
        outbox.put(_END)

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        while True:
            item = outbox.get()
            if isinstance(item, str) and item == _END:
                break
            if isinstance(item, RuntimeError):
                raise item
            yield item
    finally:
        if process.is_alive():
            process.terminate()
        process.join()
