"""What ``Producer.send`` returns: one small future per record over its batch's result.

Every record of a batch shares one :class:`BatchResult`, resolved once when the batch is
acknowledged or fails (kafka-python's ``FutureProduceResult``). A :class:`RecordFuture`
holds only that result, its index in the batch and its timestamp (kafka-python's
``FutureRecordMetadata``): its ``RecordMetadata`` is built when someone asks for it, and
an Event to wait on is created only when someone waits. Resolving a batch of 10,000
records is one assignment, not 10,000 ``concurrent.futures.Future`` objects each with its
own ``threading.Condition``.

A record future speaks both dialects users bring:

- kafka-python's: ``get(timeout)``, ``add_callback(fn, *args)``, ``add_errback(fn, *args)``
  and ``add_both`` (each returns the future, so they chain), ``is_done``, ``succeeded()``,
  ``failed()`` and ``value``;
- concurrent.futures': ``result(timeout)``, ``exception(timeout)``, ``done()``,
  ``add_done_callback(fn)``, ``cancel()`` (always False: a queued record is not withdrawn).

Callbacks run on the producer's sender thread (as kafka-python's run on its I/O thread),
or at once on the caller's thread if the record is already resolved; keep them short.
An exception a callback raises is logged, never propagated.

Example:
    >>> from streamlet.records import TopicPartition
    >>> batch = BatchResult(TopicPartition("orders", 0))
    >>> future = RecordFuture(batch, 2, 1700000000000)
    >>> offsets = []
    >>> future.add_callback(lambda meta: offsets.append(meta.offset)).is_done
    False
    >>> batch.succeed(base_offset=40, log_append_time=-1)
    >>> offsets, future.get(timeout=1).offset, future.succeeded()
    ([42], 42, True)
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, Self

from .records import RecordMetadata, TimestampType, TopicPartition

__all__ = ["BatchResult", "RecordFuture"]

log = logging.getLogger("streamlet.producer")


def _run(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:
        log.exception("A producer callback raised; it was ignored.")


class BatchResult:
    """The outcome of one produced batch: its base offset, or the error that failed it."""

    __slots__ = ("_callbacks", "_event", "_lock", "base_offset", "done", "error",
                 "log_append_time", "tp")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.base_offset = -1
        self.log_append_time = -1
        """-1 unless the topic stamps LogAppendTime."""
        self.error: BaseException | None = None
        self.done = False
        self._lock = threading.Lock()
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[], object]] | None = None

    def succeed(self, base_offset: int, log_append_time: int) -> None:
        """Resolve every record of the batch (the first resolution wins)."""
        self._finish(None, base_offset, log_append_time)

    def fail(self, error: BaseException) -> None:
        """Fail every record of the batch with ``error`` (the first resolution wins)."""
        self._finish(error, -1, -1)

    def _finish(self, error: BaseException | None, base_offset: int,
                log_append_time: int) -> None:
        with self._lock:
            if self.done:
                return
            self.error, self.base_offset = error, base_offset
            self.log_append_time = log_append_time
            self.done = True  # last: readers that see done see the fields
            callbacks, self._callbacks = self._callbacks, None
            event = self._event
        if event is not None:
            event.set()
        for callback in callbacks or ():
            _run(callback)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until resolved or ``timeout`` seconds pass; True if resolved."""
        if self.done:
            return True
        with self._lock:
            if self.done:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def on_done(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once resolved (at once, here, if it already is)."""
        with self._lock:
            if not self.done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        _run(callback)


class RecordFuture:
    """The delivery of one record: resolves to its ``RecordMetadata`` or its error."""

    __slots__ = ("_batch", "_index", "_timestamp")

    def __init__(self, batch: BatchResult, index: int, timestamp: int) -> None:
        self._batch = batch
        self._index = index
        self._timestamp = timestamp

    def __repr__(self) -> str:
        state = "failed" if self.failed() else "done" if self.done() else "pending"
        return f"<RecordFuture {self._batch.tp.topic}[{self._batch.tp.partition}] {state}>"

    # ---- state ------------------------------------------------------------------------

    @property
    def is_done(self) -> bool:
        """kafka-python's flag: acknowledged or failed."""
        return self._batch.done

    def done(self) -> bool:
        """concurrent.futures': acknowledged or failed."""
        return self._batch.done

    def succeeded(self) -> bool:
        return self._batch.done and self._batch.error is None

    def failed(self) -> bool:
        return self._batch.done and self._batch.error is not None

    def running(self) -> bool:
        return not self._batch.done

    def cancel(self) -> bool:
        """A queued record cannot be withdrawn: always False (as a running Future)."""
        return False

    def cancelled(self) -> bool:
        return False

    @property
    def value(self) -> RecordMetadata | None:
        """kafka-python's attribute: the metadata once acknowledged, else None."""
        return self._metadata() if self.succeeded() else None

    # ---- waiting ----------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """The record's metadata, waiting up to ``timeout`` seconds (None: for ever).

        Raises the delivery error, or ``TimeoutError`` if still pending after ``timeout``
        (kafka-python raises its KafkaTimeoutError there).
        """
        self._wait(timeout)
        if self._batch.error is not None:
            raise self._batch.error
        return self._metadata()

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """concurrent.futures' name for :meth:`get`."""
        return self.get(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The delivery error, or None once acknowledged; ``TimeoutError`` if pending."""
        self._wait(timeout)
        return self._batch.error

    def _wait(self, timeout: float | None) -> None:
        if not self._batch.wait(timeout):
            raise TimeoutError(f"The record to {self._batch.tp.topic}"
                               f"[{self._batch.tp.partition}] was not acknowledged within "
                               f"{timeout} s; it may still be.")

    def _metadata(self) -> RecordMetadata:
        batch = self._batch
        if batch.log_append_time >= 0:
            timestamp, kind = batch.log_append_time, TimestampType.LOG_APPEND_TIME
        else:
            timestamp, kind = self._timestamp, TimestampType.CREATE_TIME
        return RecordMetadata(batch.tp.topic, batch.tp.partition,
                              batch.base_offset + self._index, timestamp, kind)

    # ---- callbacks --------------------------------------------------------------------

    def add_callback(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> Self:
        """On success call ``fn(*args, metadata, **kwargs)`` (kafka-python); chainable."""
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn

        def on_done() -> None:
            if self._batch.error is None:
                call(self._metadata())

        self._batch.on_done(on_done)
        return self

    def add_errback(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> Self:
        """On failure call ``fn(*args, error, **kwargs)`` (kafka-python); chainable."""
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn

        def on_done() -> None:
            if self._batch.error is not None:
                call(self._batch.error)

        self._batch.on_done(on_done)
        return self

    def add_both(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> Self:
        """``fn`` as both callback and errback (kafka-python); chainable."""
        return self.add_callback(fn, *args, **kwargs).add_errback(fn, *args, **kwargs)

    def add_done_callback(self, fn: Callable[[RecordFuture], object]) -> None:
        """concurrent.futures': ``fn(future)`` once acknowledged or failed."""
        self._batch.on_done(functools.partial(fn, self))
