"""AIOConsumer: the consumer for asyncio, in aiokafka's shape."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from .._values import is_int
from ..consumer import Consumer
from ..errors import InvalidRequest, StreamletError
from ..records import OffsetAndMetadata, Record, TopicPartition
from ._bridge import ErrorSlot, Lane, Scheduled

POLL_SLICE_S = 0.25
"""A long wait polls in slices of at most this long, so calls queued behind it (commit,
seek, stop) wait no longer than one slice."""

T = TypeVar("T")
Setup = Callable[[Consumer], object]
STOPPED = "The consumer is stopped."


class AIOConsumer:
    """Reads records without blocking the event loop.

    Takes the :class:`~streamlet.Consumer` options (``group_id``, ``auto_offset_reset``,
    ``enable_auto_commit``, ``max_poll_records``, ...). Every call on the sync consumer
    runs on one worker thread of its own, in the order the calls were made; a long wait
    for records polls there in slices, so the loop never waits.

    Records fetched but not yet returned stay buffered here (filled on the worker
    thread, so a cancelled ``getmany`` loses nothing); ``position``, ``commit()`` and
    ``stop`` count only the records returned, so a buffered record is never committed,
    and ``subscribe``/``assign`` rewind partitions to their first buffered record.

    Example:
        >>> async with AIOConsumer("orders", endpoint="memory://", group_id="billing",
        ...                        auto_offset_reset="earliest") as consumer:  # doctest: +SKIP
        ...     async for record in consumer:
        ...         print(record.offset, record.value)
        ...         await consumer.commit()
    """

    def __init__(self, *topics: str, endpoint: str | None = None, **options: Any) -> None:
        self._topics = topics
        self._endpoint = endpoint
        self._options = options
        self._consumer: Consumer | None = None
        self._setup: list[Setup] = []
        self._lane = Lane("consumer")
        self._errors = ErrorSlot()
        self._buffer: deque[Record] = deque()
        self._buffer_lock = threading.Lock()
        self._polling: asyncio.Future[None] | None = None
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._stopped = False

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and apply ``subscribe``/``assign`` calls made before (off the loop)."""
        if self._stopped:
            raise StreamletError(f"{STOPPED} Create a new one.")
        if self._consumer is None:
            setup, self._setup = self._setup, []
            self._consumer = await self._lane.run(self._open, setup)

    def _open(self, setup: list[Setup]) -> Consumer:
        consumer = Consumer(*self._topics, endpoint=self._endpoint, **self._options)
        try:
            for step in setup:
                step(consumer)
            self._note_assignment(consumer)
        except BaseException:
            consumer.close()
            raise
        return consumer

    async def stop(self) -> None:
        """Leave the group (committing what was returned, with auto-commit) and close.

        Records still buffered are not committed: their partitions are rewound to them.
        """
        if self._stopped:
            return
        self._stopped = True
        consumer, self._consumer = self._consumer, None
        try:
            if self._polling is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._polling)
            if consumer is not None:
                await self._lane.run(self._close_sync, consumer)
        finally:
            self._lane.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # ---- assignment (queued at once, like aiokafka's plain methods) ---------------------------

    def subscribe(self, topics: Iterable[str], **listeners: Any) -> Scheduled:
        """Read ``topics`` (see :meth:`streamlet.Consumer.subscribe`; listeners run on the
        consumer's worker thread). Takes effect at once; awaiting it is optional."""
        topics = list(topics) if not isinstance(topics, str) else topics
        return self._schedule(lambda c: c.subscribe(topics, **listeners), rewind=True)

    def assign(self, partitions: Iterable[TopicPartition]) -> Scheduled:
        """Read exactly these partitions (see :meth:`streamlet.Consumer.assign`)."""
        tps = list(partitions)
        return self._schedule(lambda c: c.assign(tps), rewind=True)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads, as of its last call (no I/O)."""
        return set(self._assignment)

    def seek(self, partition: TopicPartition, offset: int) -> Scheduled:
        """Make the next records of ``partition`` start at ``offset``; awaiting is optional."""
        _check_partition(partition)
        if not is_int(offset) or offset < 0:
            raise InvalidRequest(f"Cannot seek {partition.topic} partition "
                                 f"{partition.partition} to {offset!r}: offsets are "
                                 "non-negative integers.")
        if self._consumer is None:
            raise InvalidRequest("No partition is assigned before start().")
        drop = self._dropper(_among((partition,)))

        def seek(consumer: Consumer) -> None:
            drop()  # again: a poll that was in flight may have buffered more
            consumer.seek(partition, offset)

        drop()
        return self._schedule(seek)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Move to each partition's log start (default: every assigned partition)."""
        drop = self._dropper(_among(partitions))

        def seek(consumer: Consumer) -> None:
            drop()
            consumer.seek_to_beginning(*partitions)

        drop()
        await self._call(seek)

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Move to each partition's high watermark (default: every assigned partition)."""
        drop = self._dropper(_among(partitions))

        def seek(consumer: Consumer) -> None:
            drop()
            consumer.seek_to_end(*partitions)

        drop()
        await self._call(seek)

    def _schedule(self, step: Callable[[Consumer], object], rewind: bool = False
                  ) -> Scheduled:
        if self._stopped:
            raise StreamletError(STOPPED)
        if self._consumer is None:
            self._setup.append(step)
            return Scheduled(None, self._errors)
        return Scheduled(self._lane.run(self._apply, self._consumer, step, rewind),
                         self._errors)

    def _apply(self, consumer: Consumer, step: Callable[[Consumer], object], rewind: bool
               ) -> object:
        if rewind:
            _rewind(consumer, self._unbuffer())
        try:
            return step(consumer)
        finally:
            self._note_assignment(consumer)

    # ---- positions and commits ----------------------------------------------------------------

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record this consumer returns from ``partition``."""

        def position(consumer: Consumer) -> int:
            buffered = self._first_buffered().get(partition)
            return consumer.position(partition) if buffered is None else buffered

        return await self._call(position)

    async def committed(self, partition: TopicPartition, metadata: bool = False
                        ) -> int | OffsetAndMetadata | None:
        """The group's committed offset for ``partition`` (None if nothing was committed);
        with ``metadata=True`` an OffsetAndMetadata."""
        return await self._call(lambda c: c.committed(partition, metadata))

    async def commit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        """Commit ``offsets`` (each the next record to read, or ``(offset, metadata)``);
        by default the position after the last record returned, for every partition."""
        if offsets is not None:
            given = dict(offsets)
            await self._call(lambda c: c.commit(given))
            return
        await self._call(lambda c: _commit_returned(c, self._first_buffered()))

    # ---- records ----------------------------------------------------------------------------

    async def getone(self, *partitions: TopicPartition) -> Record:
        """The next record (of ``partitions``, default any), waiting as long as it takes."""
        wanted = _among(partitions)
        while True:
            self._check_open()
            taken = self._take(wanted, 1)
            if taken:
                return next(iter(taken.values()))[0]
            await self._poll(POLL_SLICE_S)

    async def getmany(self, *partitions: TopicPartition, timeout_ms: float = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """Up to ``max_records`` records (default ``max_poll_records``) by partition,
        waiting up to ``timeout_ms`` for the first; ``{}`` if none came."""
        if max_records is not None and (not is_int(max_records) or max_records < 1):
            raise InvalidRequest(f"max_records must be a positive integer, got {max_records!r}.")
        wanted = _among(partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_ms, 0) / 1000
        while True:
            self._check_open()
            if self._has(wanted):
                break
            await self._poll(min(max(deadline - loop.time(), 0.0), POLL_SLICE_S))
            if self._has(wanted) or loop.time() >= deadline:
                break
        return self._take(wanted, max_records)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Record:
        try:
            return await self.getone()
        except StreamletError:
            if self._stopped:
                raise StopAsyncIteration from None
            raise

    async def _poll(self, timeout: float) -> None:
        """One poll of the sync consumer on the worker thread, its records buffered here.

        A poll whose caller was cancelled still lands in the buffer: nothing is lost.
        """
        consumer = self._check_open()
        if self._polling is None:
            self._polling = self._lane.run(self._poll_sync, consumer, timeout)
            self._polling.add_done_callback(self._polled)
        with contextlib.suppress(Exception):  # _polled keeps the error for raise_pending
            await asyncio.shield(self._polling)
        self._errors.raise_pending()

    def _poll_sync(self, consumer: Consumer, timeout: float) -> None:
        """Worker thread: rewind records left buffered (by a partition filter), poll."""
        _rewind(consumer, self._unbuffer())
        try:
            records = list(consumer.poll(timeout))
            with self._buffer_lock:
                self._buffer.extend(records)
        finally:
            self._note_assignment(consumer)

    def _polled(self, polling: asyncio.Future[None]) -> None:
        self._polling = None
        if not polling.cancelled() and (error := polling.exception()) is not None:
            self._errors.put(error)

    def _close_sync(self, consumer: Consumer) -> None:
        """Worker thread: rewind what was never returned (so it is not committed), close."""
        try:
            _rewind(consumer, self._unbuffer())
        finally:
            consumer.close()

    # ---- the buffer (filled on the worker thread, taken from on the loop) -----------------------

    def _has(self, wanted: Callable[[Record], bool]) -> bool:
        with self._buffer_lock:
            return any(wanted(r) for r in self._buffer)

    def _take(self, wanted: Callable[[Record], bool], limit: int | None
              ) -> dict[TopicPartition, list[Record]]:
        taken: dict[TopicPartition, list[Record]] = {}
        kept: deque[Record] = deque()
        count = 0
        with self._buffer_lock:
            for record in self._buffer:
                if wanted(record) and (limit is None or count < limit):
                    taken.setdefault(record.topic_partition, []).append(record)
                    count += 1
                else:
                    kept.append(record)
            self._buffer = kept
        return taken

    def _first_buffered(self) -> dict[TopicPartition, int]:
        """Per partition, the offset of its first record not yet returned."""
        with self._buffer_lock:
            return _firsts(self._buffer)

    def _unbuffer(self) -> dict[TopicPartition, int]:
        """Empty the buffer; returns where each partition must be rewound to."""
        with self._buffer_lock:
            first = _firsts(self._buffer)
            self._buffer.clear()
        return first

    def _dropper(self, which: Callable[[Record], bool]) -> Callable[[], None]:
        """A call that drops the buffered records ``which`` selects (seeks discard them)."""

        def drop() -> None:
            with self._buffer_lock:
                self._buffer = deque(r for r in self._buffer if not which(r))

        return drop

    # ---- plumbing -----------------------------------------------------------------------------

    async def _call(self, step: Callable[[Consumer], T]) -> T:
        consumer = self._check_open()
        self._errors.raise_pending()
        try:
            return await self._lane.run(step, consumer)
        finally:
            self._errors.raise_pending()

    def _check_open(self) -> Consumer:
        if self._stopped:
            raise StreamletError(STOPPED)
        if self._consumer is None:
            raise InvalidRequest("The consumer is not started: await start() first.")
        return self._consumer

    def _note_assignment(self, consumer: Consumer) -> None:
        """Snapshot the assignment for :meth:`assignment` (runs on the worker thread)."""
        with contextlib.suppress(StreamletError):
            self._assignment = frozenset(consumer.assignment())


def _check_partition(tp: object) -> None:
    if not isinstance(tp, TopicPartition):
        raise InvalidRequest(f"Expected a TopicPartition, got {type(tp).__name__}.")


def _among(partitions: tuple[TopicPartition, ...]) -> Callable[[Record], bool]:
    for tp in partitions:
        _check_partition(tp)
    chosen = frozenset(partitions)
    return (lambda r: r.topic_partition in chosen) if chosen else (lambda r: True)


def _firsts(records: Iterable[Record]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for record in records:
        first.setdefault(record.topic_partition, record.offset)
    return first


def _rewind(consumer: Consumer, rewind: dict[TopicPartition, int]) -> None:
    """Move partitions back to records fetched but never returned (worker thread)."""
    for tp, offset in rewind.items():
        with contextlib.suppress(InvalidRequest):  # no longer assigned: nothing to keep
            consumer.seek(tp, offset)


def _commit_returned(consumer: Consumer, undelivered: dict[TopicPartition, int]) -> None:
    """Commit positions, counting only records returned to the application."""
    if not undelivered:
        consumer.commit()
        return
    consumer.commit({tp: undelivered[tp] if tp in undelivered else consumer.position(tp)
                     for tp in consumer.assignment()})
