"""AIOProducer: the producer for asyncio, in aiokafka's shape."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from .._values import HeadersIn
from ..errors import StreamletError
from ..futures import RecordFuture
from ..producer import Producer
from ..records import RecordMetadata
from ._bridge import Lane, Mailbox, Settles, bridge

_Send = tuple["asyncio.Future[Settles[RecordMetadata]]", Callable[[Producer], Any]]


class AIOProducer:
    """Sends records without blocking the event loop.

    Takes the :class:`~streamlet.Producer` options (``linger_ms``, ``batch_size``,
    ``compression_type``, ...). ``await send(...)`` hands the record to the sync producer
    on a worker thread (in call order: sends waiting meanwhile go over together) and
    returns an asyncio future that resolves to its :class:`~streamlet.RecordMetadata`
    once the record is durable; acknowledgements reach the loop a batch at a time.

    Example:
        >>> async with AIOProducer("memory://") as producer:                # doctest: +SKIP
        ...     delivery = await producer.send("orders", b"hello", key=b"k")
        ...     metadata = await delivery
        ...     await producer.send_and_wait("orders", b"again")
    """

    def __init__(self, endpoint: str | None = None, **options: Any) -> None:
        self._endpoint = endpoint
        self._options = options
        self._producer: Producer | None = None
        self._sends = Lane("producer")
        self._waits = Lane("producer-flush")
        self._mailbox: Mailbox | None = None
        self._pending: list[_Send] = []
        self._pending_lock = threading.Lock()
        self._stopped = False

    async def start(self) -> None:
        """Connect (off the loop). Idempotent."""
        if self._stopped:
            raise StreamletError("The producer is stopped; create a new one.")
        if self._producer is None:
            self._mailbox = Mailbox(asyncio.get_running_loop())
            self._producer = await self._sends.run(Producer, self._endpoint, **self._options)

    async def send(self, topic: str, value: object = None, key: object = None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: HeadersIn = None) -> asyncio.Future[RecordMetadata]:
        """Queue one record; await the returned future for its metadata.

        Bad input (types, unknown topic or partition, oversized record) raises here, as
        the sync ``send`` does; delivery failures are raised by the future.
        """
        self._require()
        mailbox = self._box()
        queued: asyncio.Future[Settles[RecordMetadata]] = mailbox.loop.create_future()
        call = functools.partial(_send, topic=topic, value=value, key=key, headers=headers,
                                 partition=partition, timestamp_ms=timestamp_ms)
        with self._pending_lock:
            self._pending.append((queued, call))
            first = len(self._pending) == 1
        if first:
            self._sends.post(self._drain)
        return bridge(await queued, mailbox)

    def _drain(self) -> None:
        """Worker thread: hand every waiting send to the sync producer, in order."""
        with self._pending_lock:
            waiting, self._pending = self._pending, []
        producer, mailbox = self._producer, self._box()
        for queued, call in waiting:
            try:
                if producer is None:
                    raise StreamletError("The producer is stopped.")
                outcome: Settles[RecordMetadata] | BaseException = call(producer)
            except Exception as error:
                outcome = error
            mailbox.post(functools.partial(_settle, queued, outcome))

    async def send_and_wait(self, topic: str, value: object = None, key: object = None,
                            partition: int | None = None, timestamp_ms: int | None = None,
                            headers: HeadersIn = None) -> RecordMetadata:
        """Send one record and wait until it is durable."""
        delivery = await self.send(topic, value, key=key, partition=partition,
                                   timestamp_ms=timestamp_ms, headers=headers)
        return await delivery

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record sent so far is acknowledged or failed (sends made
        meanwhile go on: the wait runs in a thread of its own)."""
        producer = self._require()
        await self._sends.run(_nothing)  # every send() made before this call is queued
        await self._waits.run(producer.flush, timeout)

    async def stop(self) -> None:
        """Flush, then close the sync producer (off the loop). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        producer = self._producer
        try:
            if producer is not None:
                await self._sends.run(producer.close)  # after every send queued before
        finally:
            self._producer = None
            self._sends.close()
            self._waits.close()

    def _require(self) -> Producer:
        if self._producer is None or self._stopped:
            state = "stopped" if self._stopped else "not started: await start() first"
            raise StreamletError(f"The producer is {state}.")
        return self._producer

    def _box(self) -> Mailbox:
        if self._mailbox is None:
            raise StreamletError("The producer is not started: await start() first.")
        return self._mailbox

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def _send(producer: Producer, **record: Any) -> RecordFuture:
    return producer.send(**record)


def _settle(queued: asyncio.Future[Settles[RecordMetadata]],
            outcome: Settles[RecordMetadata] | BaseException) -> None:
    if queued.done():  # the caller was cancelled: the record is queued all the same
        return
    if isinstance(outcome, BaseException):
        queued.set_exception(outcome)
    else:
        queued.set_result(outcome)


def _nothing() -> None:
    """A no-op: awaiting it on a lane waits for everything queued before it."""
