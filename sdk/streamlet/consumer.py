"""The consumer: reads assigned partitions (or every partition of its topics) in order."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self

from .codec import decode_batch
from .errors import InvalidRequest, OffsetOutOfRange, StreamletError
from .records import Record, TopicPartition
from .topicconfig import validate_topic_name
from .transport import Transport, connect

RESET_POLICIES = ("earliest", "latest", "none")
METADATA_MAX_AGE_S = 30.0
IDLE_BACKOFF_S = (0.005, 0.1)


class Consumer:
    """Polls records from Streamlet topics.

    Without ``assign``, the consumer reads every partition of the topics it was given
    (partitions added later are picked up). Positions start per ``auto_offset_reset``.

    Example:
        >>> with Consumer("orders", auto_offset_reset="earliest") as consumer:  # doctest: +SKIP
        ...     for record in consumer.poll(timeout=1.0):
        ...         print(record.partition, record.offset, record.value)
    """

    def __init__(self, *topics: str, endpoint: str | None = None,
                 auto_offset_reset: str = "latest", max_poll_records: int = 500,
                 fetch_max_bytes: int = 1024 * 1024, consumer_timeout_ms: float | None = None,
                 transport: Transport | None = None) -> None:
        if auto_offset_reset not in RESET_POLICIES:
            raise InvalidRequest(f"auto_offset_reset={auto_offset_reset!r}: expected one of "
                                 f"{', '.join(RESET_POLICIES)}.")
        if max_poll_records < 1:
            raise InvalidRequest(f"max_poll_records must be >= 1, got {max_poll_records}.")
        self._transport = transport or connect(endpoint)
        self._reset = auto_offset_reset
        self._max_records = max_poll_records
        self._max_bytes = fetch_max_bytes
        self._iter_timeout = None if consumer_timeout_ms is None else consumer_timeout_ms / 1000
        self._topics: list[str] = []
        self._assigned: list[TopicPartition] | None = None
        self._partitions: list[TopicPartition] = []
        self._metadata_at = -METADATA_MAX_AGE_S
        self._positions: dict[TopicPartition, int | None] = {}
        self._buffers: dict[TopicPartition, deque[Record]] = {}
        self._next = 0
        self._closed = False
        if topics:
            self.subscribe(topics)

    # ---- assignment -------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        """Read every partition of ``topics`` (replaces any previous assignment)."""
        self._topics = [validate_topic_name(t) for t in topics]
        self._assigned = None
        self._refresh(force=True)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (replaces any subscription)."""
        tps = list(partitions)
        for tp in tps:
            self._check_partition(tp)
        self._topics, self._assigned = [], tps
        self._set_partitions(tps)

    def assignment(self) -> set[TopicPartition]:
        self._refresh()
        return set(self._partitions)

    def _check_partition(self, tp: TopicPartition) -> None:
        if not isinstance(tp, TopicPartition):
            raise InvalidRequest(f"Expected a TopicPartition, got {type(tp).__name__}.")
        self._transport.watermarks(tp.topic, tp.partition)  # raises TopicNotFound / Partition

    def _refresh(self, force: bool = False) -> None:
        if self._assigned is not None:
            return
        if not force and time.monotonic() - self._metadata_at < METADATA_MAX_AGE_S:
            return
        tps = [TopicPartition(t, p) for t in self._topics
               for p in range(self._transport.topic_metadata(t).partitions)]
        self._metadata_at = time.monotonic()
        self._set_partitions(tps)

    def _set_partitions(self, tps: list[TopicPartition]) -> None:
        self._partitions = tps
        self._positions = {tp: self._positions.get(tp) for tp in tps}
        self._buffers = {tp: self._buffers.get(tp, deque()) for tp in tps}

    # ---- positions ----------------------------------------------------------------------------

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp``."""
        self._require(tp)
        position = self._positions[tp]
        if position is None:
            position = self._reset_position(tp)
        return position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Move ``tp``'s position; the next poll returns records from ``offset`` on."""
        self._require(tp)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidRequest(f"Cannot seek {tp.topic} partition {tp.partition} to "
                                 f"{offset!r}: offsets are non-negative integers.")
        self._positions[tp] = offset
        self._buffers[tp].clear()

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self.assignment()):
            self.seek(tp, self._transport.watermarks(tp.topic, tp.partition)[0])

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self.assignment()):
            self.seek(tp, self._transport.watermarks(tp.topic, tp.partition)[1])

    def _require(self, tp: TopicPartition) -> None:
        self._refresh()
        if tp not in self._positions:
            raise InvalidRequest(f"{tp.topic} partition {tp.partition} is not assigned to "
                                 "this consumer.")

    def _reset_position(self, tp: TopicPartition, error: OffsetOutOfRange | None = None) -> int:
        if self._reset == "none":
            raise error or InvalidRequest(
                f"No position for {tp.topic} partition {tp.partition} and "
                "auto_offset_reset='none'; seek first.")
        low, high = self._transport.watermarks(tp.topic, tp.partition)
        position = low if self._reset == "earliest" else high
        self._positions[tp] = position
        self._buffers[tp].clear()
        return position

    # ---- polling ------------------------------------------------------------------------------

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """Up to ``max_poll_records`` records, waiting up to ``timeout`` seconds for some."""
        if self._closed:
            raise StreamletError("The consumer is closed.")
        deadline = time.monotonic() + max(timeout, 0)
        idle = IDLE_BACKOFF_S[0]
        while True:
            self._refresh()
            records = self._poll_once()
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            time.sleep(min(idle, remaining))
            idle = min(idle * 2, IDLE_BACKOFF_S[1])

    def _poll_once(self) -> list[Record]:
        out: list[Record] = []
        count = len(self._partitions)
        for i in range(count):
            tp = self._partitions[(self._next + i) % count]
            out += self._take(tp, self._max_records - len(out))
            if len(out) >= self._max_records:
                break
        self._next = (self._next + 1) % max(count, 1)
        return out

    def _take(self, tp: TopicPartition, limit: int) -> list[Record]:
        buffer = self._buffers[tp]
        if not buffer:
            self._fill(tp, limit)
        taken = [buffer.popleft() for _ in range(min(limit, len(buffer)))]
        if taken:
            self._positions[tp] = taken[-1].offset + 1
        return taken

    def _fill(self, tp: TopicPartition, limit: int) -> None:
        position = self.position(tp)
        try:
            result = self._transport.fetch(tp.topic, tp.partition, position,
                                           self._max_bytes, limit)
        except OffsetOutOfRange as error:
            self._reset_position(tp, error)
            return
        for batch in result.batches:
            self._buffers[tp].extend(r for r in decode_batch(tp.topic, tp.partition, batch)
                                     if r.offset >= position)

    def __iter__(self) -> Iterator[Record]:
        """Yield records forever, or until ``consumer_timeout_ms`` passes without any."""
        idle_since = time.monotonic()
        while not self._closed:
            records = self.poll(timeout=0.5)
            if records:
                idle_since = time.monotonic()
            elif self._iter_timeout is not None \
                    and time.monotonic() - idle_since >= self._iter_timeout:
                return
            yield from records

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
