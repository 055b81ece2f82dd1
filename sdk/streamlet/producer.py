"""The producer: per-partition batching by linger and size, a background sender, retries.

Idempotence is on by default: every batch carries the producer id, epoch and a
per-partition sequence, so a retried batch is written once however often it is sent.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

from ._values import HeadersIn, is_int, to_bytes, to_headers, to_timestamp
from .codec import COMPRESSION_CODES, BatchBuilder, estimate_record_size, increment_sequence
from .errors import InvalidRequest, PartitionNotFound, RecordTooLarge, StreamletError
from .partitioner import DefaultPartitioner, Partitioner
from .records import AppendResult, RecordMetadata, TimestampType, TopicDescription, TopicPartition
from .topicconfig import config_int, config_str, validate_topic_name
from .transport import Transport, connect

METADATA_MAX_AGE_S = 30.0
T = TypeVar("T")


@dataclass
class _Batch:
    tp: TopicPartition
    builder: BatchBuilder
    created: float
    futures: list[Future[RecordMetadata]] = field(default_factory=list)
    closed: bool = False


@dataclass
class _Topic:
    description: TopicDescription
    fetched: float


class Producer:
    """Sends records to Streamlet topics.

    Example:
        >>> with Producer("direct+http://127.0.0.1:4566") as producer:  # doctest: +SKIP
        ...     future = producer.send("orders", b'{"id": 1}', key=b"customer-7")
        ...     producer.flush()
        ...     future.result().offset
        0
    """

    def __init__(self, endpoint: str | None = None, *, linger_ms: float = 5,
                 batch_size: int = 256 * 1024, compression_type: str | None = None,
                 enable_idempotence: bool = True, partitioner: Partitioner | None = None,
                 delivery_timeout_ms: int = 120_000, retry_backoff_ms: int = 50,
                 max_in_flight: int = 4, transport: Transport | None = None) -> None:
        _check_options(linger_ms, batch_size, compression_type, max_in_flight)
        self._owns_transport = transport is None
        self._transport = transport or connect(endpoint)
        self._linger = linger_ms / 1000
        self._batch_size = batch_size
        self._compression = compression_type
        self._idempotent = enable_idempotence
        self._partitioner = partitioner or DefaultPartitioner()
        self._delivery_timeout = delivery_timeout_ms / 1000
        self._backoff = retry_backoff_ms / 1000
        self._topics: dict[str, _Topic] = {}
        self._batches: dict[TopicPartition, deque[_Batch]] = {}
        self._in_flight: set[TopicPartition] = set()
        self._sequences: dict[tuple[int, TopicPartition], int] = {}
        self._producer_id: int | None = None
        self._pid_lock = threading.Lock()
        self._cond = threading.Condition()
        self._flushing = 0
        self._closed = False
        self._fatal: BaseException | None = None
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="streamlet-send")
        self._sender = threading.Thread(target=self._run, name="streamlet-sender", daemon=True)
        self._sender.start()

    # ---- public API ----------------------------------------------------------------------

    def send(self, topic: str, value: object = None, key: object = None,
             headers: HeadersIn = None, partition: int | None = None,
             timestamp_ms: int | None = None) -> Future[RecordMetadata]:
        """Queue one record; the future resolves once it is durably written.

        Bad input (types, unknown topic or partition, oversized record) raises here.
        """
        validate_topic_name(topic)
        value_b, key_b = to_bytes("value", value, topic), to_bytes("key", key, topic)
        header_list = to_headers(headers, topic)
        ts = to_timestamp(timestamp_ms, topic)
        meta = self._metadata(topic)
        tp = TopicPartition(topic, self._choose(meta, key_b, partition))
        size = estimate_record_size(key_b, value_b, header_list)
        limit = config_int(meta.config, "max.message.bytes")
        if size > limit:
            raise RecordTooLarge(topic, size, limit)
        ts = int(time.time() * 1000) if ts is None else ts
        return self._enqueue(meta, tp, key_b, value_b, header_list, ts)

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait until each record is acknowledged or failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._batches or self._in_flight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"flush did not complete within {timeout} s")
                    self._cond.wait(remaining if remaining is not None else 0.5)
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the background sender and close the transport's connections
        (unless it was passed in). Idempotent."""
        if self._closed:
            return
        try:
            if self._fatal is None:
                self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._sender.join(timeout=5)
            self._pool.shutdown(wait=True)
            if self._owns_transport:
                self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- queueing --------------------------------------------------------------------------

    def _metadata(self, topic: str) -> TopicDescription:
        cached = self._topics.get(topic)
        if cached is None or time.monotonic() - cached.fetched > METADATA_MAX_AGE_S:
            cached = _Topic(self._transport.topic_metadata(topic), time.monotonic())
            self._topics[topic] = cached
        return cached.description

    def _choose(self, meta: TopicDescription, key: bytes | None, partition: int | None) -> int:
        if partition is None:
            return self._partitioner.partition(meta.name, key, meta.partitions)
        if not is_int(partition) \
                or not 0 <= partition < meta.partitions:
            meta = self._refresh(meta.name)
            if not is_int(partition) \
                    or not 0 <= partition < meta.partitions:
                raise PartitionNotFound(meta.name, partition, meta.partitions)
        return partition

    def _refresh(self, topic: str) -> TopicDescription:
        self._topics.pop(topic, None)
        return self._metadata(topic)

    def _enqueue(self, meta: TopicDescription, tp: TopicPartition, key: bytes | None,
                 value: bytes | None, headers: list[tuple[str, bytes | None]],
                 ts: int) -> Future[RecordMetadata]:
        future: Future[RecordMetadata] = Future()
        with self._cond:
            if self._closed or self._fatal is not None:
                raise StreamletError("The producer is closed; create a new one.")
            queue = self._batches.setdefault(tp, deque())
            batch = queue[-1] if queue and not queue[-1].closed else None
            if batch is None or not batch.builder.append(key, value, headers, ts):
                if batch is not None:
                    self._close_batch(batch, meta.partitions)
                batch = _Batch(tp, BatchBuilder(self._codec(meta), self._batch_size),
                               time.monotonic())
                batch.builder.append(key, value, headers, ts)
                queue.append(batch)
            batch.futures.append(future)
            if batch.builder.size_in_bytes() >= self._batch_size:
                self._close_batch(batch, meta.partitions)
            self._cond.notify_all()
        return future

    def _close_batch(self, batch: _Batch, partitions: int) -> None:
        if not batch.closed:
            batch.closed = True
            self._partitioner.on_new_batch(batch.tp.topic, partitions, batch.tp.partition)

    def _codec(self, meta: TopicDescription) -> str:
        if self._compression is not None:
            return self._compression
        topic_codec = config_str(meta.config, "compression.type")
        if topic_codec == "uncompressed":
            return "none"
        return topic_codec if topic_codec in COMPRESSION_CODES else "zstd"

    # ---- sending ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                ready = self._ready()
                if not ready:
                    if self._closed and not self._batches and not self._in_flight:
                        return
                    self._cond.wait(self._linger or 0.05)
                    continue
            for batch in ready:
                self._pool.submit(self._deliver, batch)

    def _ready(self) -> list[_Batch]:
        """Pop the first batch of every idle partition that is full or has lingered."""
        now = time.monotonic()
        urgent = self._flushing > 0 or self._closed
        ready = []
        for tp, queue in list(self._batches.items()):
            if tp in self._in_flight or not queue:
                continue
            batch = queue[0]
            if batch.closed or urgent or now - batch.created >= self._linger:
                queue.popleft()
                if not queue:
                    del self._batches[tp]
                meta = self._topics.get(tp.topic)
                self._close_batch(batch, meta.description.partitions if meta else 1)
                self._in_flight.add(tp)
                ready.append(batch)
        return ready

    def _deliver(self, batch: _Batch) -> None:
        try:
            self._deliver_batch(batch)
        except Exception as error:
            _fail(batch, error)
        except BaseException as crash:  # a crash stops the producer and fails every future
            self._die(crash)
            _fail(batch, crash)
        finally:
            with self._cond:
                self._in_flight.discard(batch.tp)
                self._cond.notify_all()

    def _deliver_batch(self, batch: _Batch) -> None:
        pid, seq = self._producer_state(batch.tp)
        data = batch.builder.build(pid, 0 if pid >= 0 else -1, seq)
        try:
            result = self._append_with_retry(batch.tp, data)
        except StreamletError as error:
            if self._idempotent:
                # Any attempt may have landed (a lost reply, then throttles until the
                # deadline): reusing its sequence would make the next batch look like a
                # retry of it and vanish. Continue under a fresh producer id instead.
                self._new_producer_id()
            _fail(batch, error)
            return
        if pid >= 0:
            self._sequences[(pid, batch.tp)] = increment_sequence(seq, batch.builder.count)
        ts_type = TimestampType.LOG_APPEND_TIME if result.log_append_time >= 0 \
            else TimestampType.CREATE_TIME
        for i, future in enumerate(batch.futures):
            ts = result.log_append_time if result.log_append_time >= 0 \
                else batch.builder.timestamps[i]
            future.set_result(RecordMetadata(batch.tp.topic, batch.tp.partition,
                                             result.base_offset + i, ts, ts_type))

    def _producer_state(self, tp: TopicPartition) -> tuple[int, int]:
        """(producer id, next sequence for ``tp``), allocating an id on first use."""
        if not self._idempotent:
            return -1, -1
        with self._pid_lock:
            if self._producer_id is None:
                self._producer_id = self._with_retry(self._transport.init_producer_id)
            pid = self._producer_id
        return pid, self._sequences.get((pid, tp), 0)

    def _new_producer_id(self) -> None:
        with self._pid_lock:
            self._producer_id = None

    def _append_with_retry(self, tp: TopicPartition, data: bytes) -> AppendResult:
        """Append, retrying retriable errors; every retry says when the first attempt was
        sent, so the log finds that attempt if it landed (idempotent batches)."""
        first_ms = int(time.time() * 1000)
        attempts = itertools.count()

        def attempt() -> AppendResult:
            since = None if next(attempts) == 0 else first_ms
            return self._transport.append(tp.topic, tp.partition, data, since_ms=since)

        return self._with_retry(attempt)

    def _with_retry(self, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + self._delivery_timeout
        backoff = self._backoff
        while True:
            try:
                return call()
            except StreamletError as error:
                if not error.retriable or time.monotonic() + backoff > deadline:
                    raise
            time.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 1.0)

    def _die(self, crash: BaseException) -> None:
        with self._cond:
            self._fatal = crash
            self._closed = True
            pending = [b for q in self._batches.values() for b in q]
            self._batches.clear()
            self._cond.notify_all()
        for batch in pending:
            _fail(batch, crash)


def _fail(batch: _Batch, error: BaseException) -> None:
    for future in batch.futures:
        if not future.done():
            future.set_exception(error)


def _check_options(linger_ms: float, batch_size: int, compression_type: str | None,
                   max_in_flight: int) -> None:
    if compression_type is not None and compression_type not in COMPRESSION_CODES:
        raise InvalidRequest(
            f"compression_type={compression_type!r}: expected one of "
            f"{', '.join(COMPRESSION_CODES)} (or None for the topic's setting).")
    if linger_ms < 0:
        raise InvalidRequest(f"linger_ms must be >= 0, got {linger_ms}.")
    if batch_size < 1:
        raise InvalidRequest(f"batch_size must be >= 1, got {batch_size}.")
    if max_in_flight < 1:
        raise InvalidRequest(f"max_in_flight must be >= 1, got {max_in_flight}.")
