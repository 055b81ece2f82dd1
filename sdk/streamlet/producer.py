"""The producer: per-partition batching by linger and size, a background sender, retries.

Idempotence is on by default: every batch carries the producer id, epoch and a
per-partition sequence, so a retried batch is written once however often it is sent.

With a ``transactional_id`` the producer is Kafka's transactional producer
(``init_transactions``, ``begin_transaction``, ``send_offsets_to_transaction``,
``commit_transaction``, ``abort_transaction``, or ``with producer.transaction():``): the
records of a transaction, in every partition and topic, and the consumer offsets sent
with it become visible at once when it commits, and never if it aborts or times out.

``send`` does little per record: serialize, pick a partition, append to the partition's
open batch under one lock, and return a :class:`~streamlet.futures.RecordFuture` (three
slots over the batch's shared result). The sender thread is woken only when a batch is
opened or fills, not per record. Queued records are bounded by ``buffer_memory``: a
``send`` that finds it full makes every lingering batch sendable (as Kafka's accumulator
does) and blocks up to ``max_block_ms`` for room, then raises ``BufferExhausted``.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

from ._metrics import ProducerMetrics
from ._transactional import OffsetLike, Transactions
from ._values import HeadersIn, is_int, to_bytes, to_headers, to_timestamp
from .codec import COMPRESSION_CODES, BatchBuilder, estimate_record_size, increment_sequence
from .errors import (
    BufferExhausted,
    InvalidRequest,
    InvalidTxnState,
    PartitionNotFound,
    RecordTooLarge,
    StreamletError,
)
from .futures import BatchResult, RecordFuture
from .partitioner import DefaultPartitioner, Partitioner
from .records import (
    AppendResult,
    ConsumerGroupMetadata,
    ProducerIdentity,
    TopicDescription,
    TopicPartition,
    TransactionInfo,
)
from .topicconfig import config_int, config_str, validate_topic_name
from .transport import Transport, connect
from .txn import validate_timeout, validate_transactional_id

METADATA_MAX_AGE_S = 30.0
IDLE_WAIT_S = 1.0
"""The sender re-checks at least this often with nothing lingering."""
T = TypeVar("T")
Serializer = Callable[[object], object]


def batch_cap(max_message_bytes: int) -> int:
    """The largest batch (uncompressed) the producer builds for a topic: its
    max.message.bytes less room for the worst compression overhead (zstd, lz4 and gzip
    add at most ~0.4% plus a frame header to incompressible data), since the log
    refuses batches above the limit both as sent and decompressed.

    Example:
        >>> batch_cap(1048576)
        1040256
    """
    return max(1, max_message_bytes - max_message_bytes // 128 - 128)


@dataclass(slots=True)
class _Batch:
    key: tuple[str, int]
    """(topic, partition): the accumulator's key (a tuple hashes in C, faster than a
    TopicPartition on the per-record path)."""
    tp: TopicPartition
    builder: BatchBuilder
    created: float
    result: BatchResult
    reserved: int = 0
    """Bytes of buffer_memory its records hold until the batch is resolved."""
    closed: bool = False
    txn: tuple[ProducerIdentity, int] | None = None
    """The transaction (identity, number) whose records it carries."""


@dataclass(slots=True)
class _Topic:
    description: TopicDescription
    fetched: float
    max_bytes: int
    cap: int
    codec: str


class Producer:
    """Sends records to Streamlet topics.

    Keyword options carry Kafka's names (kafka-python's spelling): ``key_serializer`` and
    ``value_serializer`` (callables from the object to bytes, called for every key and
    value, ``None`` included, as kafka-python does; see :mod:`streamlet.serializers`),
    ``linger_ms``, ``batch_size`` (capped by each topic's max.message.bytes),
    ``buffer_memory`` and ``max_block_ms``, ``compression_type``, ``enable_idempotence``,
    ``delivery_timeout_ms``, ``retry_backoff_ms``, ``transactional_id`` and
    ``transaction_timeout_ms`` (1 s to 15 min, default 60 s).

    Example:
        >>> from streamlet.serializers import json_serializer
        >>> producer = Producer("direct+http://127.0.0.1:4566",            # doctest: +SKIP
        ...                     value_serializer=json_serializer)
        >>> future = producer.send("orders", {"id": 1}, key=b"customer-7")  # doctest: +SKIP
        >>> future.add_callback(print).add_errback(print)                   # doctest: +SKIP
        >>> future.get(timeout=10).offset                                   # doctest: +SKIP
        0
    """

    def __init__(self, endpoint: str | None = None, *, key_serializer: Serializer | None = None,
                 value_serializer: Serializer | None = None, linger_ms: float = 5,
                 batch_size: int = 256 * 1024, buffer_memory: int = 32 * 1024 * 1024,
                 max_block_ms: float = 60_000, compression_type: str | None = None,
                 enable_idempotence: bool = True, partitioner: Partitioner | None = None,
                 delivery_timeout_ms: int = 120_000, retry_backoff_ms: int = 50,
                 max_in_flight: int = 4, transactional_id: str | None = None,
                 transaction_timeout_ms: int = 60_000, transport: Transport | None = None
                 ) -> None:
        _check_options(linger_ms, batch_size, compression_type, max_in_flight)
        _check_buffer(buffer_memory, max_block_ms, key_serializer, value_serializer)
        if transactional_id is not None:
            _check_transactional(transactional_id, transaction_timeout_ms, enable_idempotence)
        self._owns_transport = transport is None
        self._transport = transport or connect(endpoint)
        self._txn = None if transactional_id is None else Transactions(
            self._transport, transactional_id, transaction_timeout_ms)
        self._key_serializer, self._value_serializer = key_serializer, value_serializer
        self._linger = linger_ms / 1000
        self._batch_size = batch_size
        self._buffer_memory = buffer_memory
        self._max_block_ms = max_block_ms
        self._compression = compression_type
        self._idempotent = enable_idempotence
        self._partitioner = partitioner or DefaultPartitioner()
        self._delivery_timeout = delivery_timeout_ms / 1000
        self._backoff = retry_backoff_ms / 1000
        self._topics: dict[str, _Topic] = {}
        self._batches: dict[tuple[str, int], deque[_Batch]] = {}
        self._in_flight: set[tuple[str, int]] = set()
        self._buffered = 0
        self._waiting_for_memory = 0
        self._sequences: dict[tuple[int, TopicPartition], int] = {}
        self._producer_id: int | None = None
        self._pid_lock = threading.Lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._flushing = 0
        self._closed = False
        self._fatal: BaseException | None = None
        self._metrics = ProducerMetrics()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="streamlet-send")
        self._sender = threading.Thread(target=self._run, name="streamlet-sender", daemon=True)
        self._sender.start()

    # ---- public API ----------------------------------------------------------------------

    def send(self, topic: str, value: object = None, key: object = None,
             headers: HeadersIn = None, partition: int | None = None,
             timestamp_ms: int | None = None) -> RecordFuture:
        """Queue one record; the future resolves once it is durably written.

        Bad input (types, unknown topic or partition, oversized record) raises here, and
        so does ``BufferExhausted`` after ``max_block_ms`` with the buffer full.
        """
        if self._value_serializer is not None:
            value = self._value_serializer(value)
        if self._key_serializer is not None:
            key = self._key_serializer(key)
        value_b = value if value is None or type(value) is bytes else to_bytes(
            "value", value, topic)
        key_b = key if key is None or type(key) is bytes else to_bytes("key", key, topic)
        header_list = to_headers(headers, topic) if headers is not None else []
        checked = to_timestamp(timestamp_ms, topic)
        ts = int(time.time() * 1000) if checked is None else checked
        txn = self._txn.current() if self._txn is not None else None
        cached = self._topic(topic)
        chosen = self._choose(cached.description, key_b, partition)
        size = estimate_record_size(key_b, value_b, header_list)
        if size > cached.max_bytes:
            raise RecordTooLarge(topic, size, cached.max_bytes)
        return self._append(cached, (topic, chosen), key_b, value_b, header_list, ts, size,
                            txn)

    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition ids (kafka-python's ``partitions_for``)."""
        return set(range(self._topic(topic).description.partitions))

    def metrics(self) -> dict[str, dict[str, float]]:
        """``{"producer-metrics": {name: value}}`` with kafka-python's metric names:
        record-send-rate, byte-rate, batch-size-avg/max, records-per-request-avg,
        request-latency-avg/max, record-queue-time-avg/max, record-retry-rate,
        record-error-rate, their ``*-total`` counters, requests-in-flight and the
        buffer's total and available bytes. Rates cover the last 30 s."""
        with self._cond:
            available = self._buffer_memory - self._buffered
            in_flight = len(self._in_flight)
        return {"producer-metrics": self._metrics.snapshot(self._buffer_memory, available,
                                                           in_flight)}

    # ---- transactions ------------------------------------------------------------------

    def init_transactions(self) -> None:
        """Register the transactional id (Kafka's initTransactions): every older producer
        with the same id is fenced (ProducerFenced on its next send or commit) and the
        transaction it left open is aborted. Call once, before the first transaction."""
        who = self._transactions("init_transactions").init(self._with_retry)
        with self._pid_lock:
            self._producer_id = who.producer_id
            self._sequences.clear()

    def begin_transaction(self) -> None:
        """Start a transaction: sends go into it until it is committed or aborted."""
        self._transactions("begin_transaction").begin(self._with_retry)

    def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, OffsetLike],
                                    group_metadata: ConsumerGroupMetadata) -> None:
        """Commit these consumer offsets (each the next record to read) with the
        transaction, fenced by ``group_metadata`` (``consumer.group_metadata()``): a
        member that lost a partition meanwhile makes the whole commit fail (CommitFailed,
        nothing visible). TransactionTooLarge past one DynamoDB transaction."""
        self._transactions("send_offsets_to_transaction").add_offsets(offsets, group_metadata)

    def commit_transaction(self) -> TransactionInfo:
        """Flush, then make every record of the transaction and its offsets visible at
        once (one DynamoDB transaction; retried safely). TransactionAborted if a send
        failed (abort it) or it timed out, CommitFailed if a lease moved (aborted),
        ProducerFenced if a newer producer took over the id. A retriable error (storage
        failing past delivery_timeout_ms) leaves the outcome unknown: call it again to
        learn it (or abort_transaction, refused if it had committed)."""
        return self._transactions("commit_transaction").commit(self.flush, self._with_retry)

    def abort_transaction(self) -> TransactionInfo:
        """Abort the transaction: none of its records or offsets become visible."""
        return self._transactions("abort_transaction").abort(self.flush, self._with_retry)

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """``with producer.transaction():`` begins a transaction, commits it when the
        block ends, and aborts it if the block (or the commit) raises.

        Example:
            >>> with producer.transaction():                            # doctest: +SKIP
            ...     producer.send("totals", b"42", key=b"alice")
            ...     producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        """
        self.begin_transaction()
        try:
            yield self
            self._commit_learning_outcome()
        except BaseException as error:
            self._abort_after(error)
            raise

    def _commit_learning_outcome(self) -> None:
        """Commit; if the outcome is unknown (a retriable error: the commit may have
        landed), ask once more, since a commit is idempotent, rather than abort what may
        be visible already."""
        try:
            self.commit_transaction()
        except StreamletError as error:
            if not error.retriable:
                raise
            self.commit_transaction()

    def transactional_state(self) -> str:
        """``uninitialized``, ``ready``, ``in_transaction``, ``abortable`` (a send failed:
        abort) or ``fatal`` (fenced); InvalidTxnState without a transactional_id."""
        return self._transactions("transactional_state").state

    def _abort_after(self, error: BaseException) -> None:
        txn = self._txn
        if txn is None or txn.state not in ("in_transaction", "abortable"):
            return  # ended by the log (aborted, fenced) already
        try:
            self.abort_transaction()
        except StreamletError as failed:
            error.add_note(f"abort_transaction failed too: {type(failed).__name__}: {failed}")

    def _transactions(self, action: str) -> Transactions:
        if self._txn is None:
            raise InvalidTxnState(f"{action} needs a producer created with transactional_id=.")
        return self._txn

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
        """Flush (and abort a transaction left open), then stop the background sender and
        close the transport's connections (unless it was passed in). Idempotent."""
        if self._closed:
            return
        try:
            if self._fatal is None:
                self.flush(timeout)
            if self._txn is not None and self._txn.state in ("in_transaction", "abortable"):
                self.abort_transaction()  # as Kafka's close: an unfinished one is aborted
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

    def _topic(self, topic: str) -> _Topic:
        cached = self._topics.get(topic) if type(topic) is str else None
        if cached is None or time.monotonic() - cached.fetched > METADATA_MAX_AGE_S:
            meta = self._transport.topic_metadata(validate_topic_name(topic))
            limit = config_int(meta.config, "max.message.bytes")
            cached = _Topic(meta, time.monotonic(), limit,
                            min(self._batch_size, batch_cap(limit)), self._codec(meta))
            self._topics[topic] = cached
        return cached

    def _choose(self, meta: TopicDescription, key: bytes | None, partition: int | None) -> int:
        if partition is None:
            return self._partitioner.partition(meta.name, key, meta.partitions)
        if not is_int(partition) \
                or not 0 <= partition < meta.partitions:
            self._topics.pop(meta.name, None)
            meta = self._topic(meta.name).description
            if not is_int(partition) \
                    or not 0 <= partition < meta.partitions:
                raise PartitionNotFound(meta.name, partition, meta.partitions)
        return partition

    def _append(self, topic: _Topic, at: tuple[str, int], key: bytes | None,
                value: bytes | None, headers: list[tuple[str, bytes | None]], ts: int,
                size: int, txn: tuple[ProducerIdentity, int] | None) -> RecordFuture:
        with self._lock:  # the condition's lock: acquired in C, unlike `with self._cond`
            if self._closed or self._fatal is not None:
                raise StreamletError("The producer is closed; create a new one.")
            if self._buffered + size > self._buffer_memory:
                self._wait_for_memory(size)
            queue = self._batches.get(at)
            if queue is None:
                queue = self._batches[at] = deque()
            batch = queue[-1] if queue and not queue[-1].closed else None
            if batch is not None and batch.txn != txn:  # another transaction's records
                self._close_batch(batch, topic.description.partitions)
                batch = None
            if batch is None or not batch.builder.append(key, value, headers, ts):
                # No open batch, or it is full (the builder refuses a record that would
                # take it past the cap): start one and let the sender time its linger
                # and send the full one.
                if txn is not None and self._txn is not None:
                    self._txn.opened_batch()  # TransactionTooLarge past its batch limit
                if batch is not None:
                    self._close_batch(batch, topic.description.partitions)
                tp = TopicPartition(*at)
                batch = _Batch(at, tp, BatchBuilder(topic.codec, topic.cap),
                               time.monotonic(), BatchResult(tp), txn=txn)
                batch.builder.append(key, value, headers, ts)
                queue.append(batch)
                self._cond.notify_all()
            self._buffered += size
            batch.reserved += size
            return RecordFuture(batch.result, batch.builder.count - 1, ts)

    def _wait_for_memory(self, size: int) -> None:
        """With the lock held: block until ``size`` bytes fit in the buffer."""
        if size > self._buffer_memory:
            raise InvalidRequest(f"A record of {size} bytes cannot fit in buffer_memory="
                                 f"{self._buffer_memory}; raise buffer_memory.")
        deadline = time.monotonic() + self._max_block_ms / 1000
        self._waiting_for_memory += 1
        self._cond.notify_all()  # lingering batches become sendable
        try:
            while True:
                if self._closed or self._fatal is not None:
                    raise StreamletError("The producer is closed; create a new one.")
                if self._buffered + size <= self._buffer_memory:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._metrics.exhausted()
                    raise BufferExhausted(size, self._buffer_memory, self._max_block_ms)
                self._cond.wait(remaining)
        finally:
            self._waiting_for_memory -= 1

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
                ready, wait = self._ready()
                if not ready:
                    if self._closed and not self._batches and not self._in_flight:
                        return
                    self._cond.wait(wait)
                    continue
            for batch in ready:
                self._pool.submit(self._deliver, batch)

    def _ready(self) -> tuple[list[_Batch], float]:
        """Pop the first batch of every idle partition that is full or has lingered; and
        how long until the next lingering batch is due."""
        now = time.monotonic()
        urgent = self._flushing > 0 or self._closed or self._waiting_for_memory > 0
        ready, wait = [], IDLE_WAIT_S
        for at, queue in list(self._batches.items()):
            if at in self._in_flight or not queue:
                continue
            batch = queue[0]
            due = batch.created + self._linger - now
            if batch.closed or urgent or due <= 0:
                queue.popleft()
                if not queue:
                    del self._batches[at]
                cached = self._topics.get(batch.tp.topic)
                self._close_batch(batch, cached.description.partitions if cached else 1)
                self._in_flight.add(at)
                ready.append(batch)
            else:
                wait = min(wait, due)
        return ready, wait

    def _deliver(self, batch: _Batch) -> None:
        """Append one batch; free its buffer memory, then resolve its records (so a
        callback that sends finds room), then let its partition send again."""
        result: AppendResult | BaseException
        try:
            result = self._deliver_batch(batch)
        except Exception as error:
            self._metrics.failed(batch.builder.count)
            result = error
        except BaseException as crash:  # a crash stops the producer and fails every future
            self._die(crash)
            result = crash
        with self._cond:
            self._buffered -= batch.reserved
            self._cond.notify_all()
        try:
            if isinstance(result, BaseException):
                batch.result.fail(result)
            else:
                batch.result.succeed(result.base_offset, result.log_append_time)
        finally:
            with self._cond:
                self._in_flight.discard(batch.key)
                self._cond.notify_all()

    def _deliver_batch(self, batch: _Batch) -> AppendResult:
        if batch.txn is not None:
            return self._deliver_transactional(batch, *batch.txn)
        pid, seq = self._producer_state(batch.tp)
        data = batch.builder.build(pid, 0 if pid >= 0 else -1, seq)
        sent = time.monotonic()
        try:
            result = self._append_with_retry(batch, data)
        except StreamletError:
            if self._idempotent:
                # Any attempt may have landed (a lost reply, then throttles until the
                # deadline): reusing its sequence would make the next batch look like a
                # retry of it and vanish. Continue under a fresh producer id instead.
                self._new_producer_id()
            raise
        if pid >= 0:
            self._sequences[(pid, batch.tp)] = increment_sequence(seq, batch.builder.count)
        self._metrics.batch_sent(batch.builder.count, len(data), time.monotonic() - sent,
                                 sent - batch.created)
        return result

    def _deliver_transactional(self, batch: _Batch, who: ProducerIdentity, number: int
                               ) -> AppendResult:
        """A batch of transaction ``number``: its sequence is never reused (a failed
        attempt may have landed), and a failure leaves the transaction abortable."""
        assert self._txn is not None
        key = (who.producer_id, batch.tp)
        with self._pid_lock:
            seq = self._sequences.get(key, 0)
            self._sequences[key] = increment_sequence(seq, batch.builder.count)
        data = batch.builder.build(who.producer_id, who.epoch, seq)
        sent = time.monotonic()
        try:
            result = self._append_with_retry(batch, data, (who.transactional_id, number))
        except StreamletError as error:
            self._txn.failed(number, error)
            raise
        self._txn.sent(number, batch.tp.topic, batch.tp.partition, result.base_offset)
        self._metrics.batch_sent(batch.builder.count, len(data), time.monotonic() - sent,
                                 sent - batch.created)
        return result

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

    def _append_with_retry(self, batch: _Batch, data: bytes,
                           transaction: tuple[str, int] | None = None) -> AppendResult:
        """Append, retrying retriable errors; every retry says when the first attempt was
        sent, so the log finds that attempt if it landed (idempotent batches)."""
        first_ms = int(time.time() * 1000)
        attempts = itertools.count()
        tp = batch.tp

        def attempt() -> AppendResult:
            since = None
            if next(attempts) > 0:
                since = first_ms
                self._metrics.retried(batch.builder.count)
            return self._transport.append(tp.topic, tp.partition, data, since_ms=since,
                                          transaction=transaction)

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
            self._buffered -= sum(b.reserved for b in pending)
            self._cond.notify_all()
        for batch in pending:
            batch.result.fail(crash)


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


def _check_transactional(transactional_id: str, timeout_ms: int, idempotent: bool) -> None:
    validate_transactional_id(transactional_id)
    validate_timeout(timeout_ms)
    if not idempotent:
        raise InvalidRequest(f"transactional_id={transactional_id!r} needs "
                             "enable_idempotence=True (transactions are idempotent).")


def _check_buffer(buffer_memory: int, max_block_ms: float, key_serializer: object,
                  value_serializer: object) -> None:
    if not is_int(buffer_memory) or buffer_memory < 1:
        raise InvalidRequest(f"buffer_memory must be a positive int of bytes, "
                             f"got {buffer_memory!r}.")
    if max_block_ms < 0:
        raise InvalidRequest(f"max_block_ms must be >= 0, got {max_block_ms}.")
    for name, given in (("key_serializer", key_serializer),
                        ("value_serializer", value_serializer)):
        if given is not None and not callable(given):
            raise InvalidRequest(f"{name} must be a callable (object -> bytes), got "
                                 f"{type(given).__name__}.")
