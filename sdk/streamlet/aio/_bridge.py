"""Running blocking client calls off the event loop, and bringing their results back.

Every async client owns :class:`Lane` s: a worker thread each, which runs the sync
client's calls in the order they were made (the sync clients are not thread-safe, and a
producer's sends must keep their order). Results come back to the loop with
``loop.call_soon_threadsafe`` (``run_in_executor`` does that for lane calls, a
:class:`Mailbox` batches them for the producer's sends and deliveries), so nothing on
the loop ever waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Lane:
    """One worker thread that runs calls in submission order.

    Example:
        >>> async def main() -> int:
        ...     lane = Lane("example")
        ...     try:
        ...         return await lane.run(sum, [1, 2, 3])
        ...     finally:
        ...         lane.close()
        >>> asyncio.run(main())
        6
    """

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"streamlet-aio-{name}")

    def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Queue ``call(*args, **kwargs)`` now (not when awaited); await the result.

        Cancelling the future drops a call that has not started; one that has started
        runs to its end (a thread cannot be interrupted).
        """
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def post(self, call: Callable[[], object]) -> None:
        """Queue ``call()`` without a future (it reports through a :class:`Mailbox`)."""
        self._executor.submit(call)

    def close(self) -> None:
        """Let the thread end once its queue is empty (never blocks the loop)."""
        self._executor.shutdown(wait=False)


class Mailbox:
    """Carries work from any thread to the loop, many items per wake-up.

    The first item posted since the loop last emptied the box schedules one
    ``loop.call_soon_threadsafe``; items posted meanwhile ride along. A producer whose
    batch of 500 records is acknowledged wakes the loop once, not 500 times.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._items: list[Callable[[], None]] = []

    def post(self, action: Callable[[], None]) -> None:
        """Run ``action()`` on the loop soon (callable from any thread)."""
        with self._lock:
            self._items.append(action)
            if len(self._items) > 1:
                return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for action in items:
            action()


class Settles(Protocol[T_co]):
    """The part of ``concurrent.futures.Future`` that :func:`bridge` needs."""

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...

    def result(self, timeout: float | None = None) -> T_co: ...

    def exception(self, timeout: float | None = None) -> BaseException | None: ...

    def cancelled(self) -> bool: ...


def bridge(source: Settles[T], mailbox: Mailbox) -> asyncio.Future[T]:
    """An asyncio future on the mailbox's loop that settles as ``source`` does (``source``
    may settle in any thread)."""
    target: asyncio.Future[T] = mailbox.loop.create_future()
    source.add_done_callback(lambda _: mailbox.post(functools.partial(_copy, source, target)))
    return target


def _copy(source: Settles[T], target: asyncio.Future[T]) -> None:
    if target.done():  # the awaiting side cancelled it
        return
    if source.cancelled():
        target.cancel()
        return
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


class ErrorSlot:
    """Holds the error of a call nobody awaited, for the client's next awaited call."""

    def __init__(self) -> None:
        self._error: BaseException | None = None

    def put(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error

    def discard(self, error: BaseException) -> None:
        if self._error is error:
            self._error = None

    def raise_pending(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error


class Scheduled:
    """A call queued at once, as aiokafka's non-coroutine methods act at once.

    ``consumer.seek(tp, 5)`` works without ``await``; a failure is then raised by the
    client's next awaited call. ``await consumer.seek(tp, 5)`` waits for it and raises
    its failure right there.
    """

    def __init__(self, future: asyncio.Future[Any] | None, errors: ErrorSlot) -> None:
        self._future = future
        self._errors = errors
        self._awaited = False
        if future is not None:
            future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None and not self._awaited:
            self._errors.put(error)

    def __await__(self) -> Generator[Any, None, None]:
        self._awaited = True
        if self._future is None:
            return
        if self._future.done() and not self._future.cancelled():
            error = self._future.exception()
            if error is not None:
                self._errors.discard(error)
        yield from self._future.__await__()
