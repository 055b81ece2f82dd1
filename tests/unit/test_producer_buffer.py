"""The producer's queue is bounded: buffer_memory and max_block_ms, with a fake transport.

The transport here answers appends from memory, optionally stalling until released, so
these tests time the producer alone (no storage).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from streamlet import BufferExhausted, InvalidRecord, InvalidRequest, Producer, Throttled
from streamlet.codec import estimate_record_size, parse_header
from streamlet.errors import TopicNotFound
from streamlet.records import AppendResult, TopicDescription

RECORD = b"x" * 100


class FakeTransport:
    """Appends land in memory; ``stall`` holds every append until ``release()``."""

    def __init__(self, partitions: int = 1, *, stall: bool = False,
                 failures: list[Exception] | None = None) -> None:
        self.partitions = partitions
        self.next: dict[int, int] = {}
        self.batches: list[bytes] = []
        self.failures = list(failures or [])
        self._open = threading.Event()
        if not stall:
            self._open.set()

    def release(self) -> None:
        self._open.set()

    def topic_metadata(self, name: str) -> TopicDescription:
        return TopicDescription(name, "id-1", self.partitions, {})

    def init_producer_id(self) -> int:
        return 7

    def append(self, topic: str, partition: int, batch: bytes, expected_offset: int | None = None,
               since_ms: int | None = None, transaction: tuple[str, int] | None = None
               ) -> AppendResult:
        self._open.wait(30)
        if self.failures:
            raise self.failures.pop(0)
        count = parse_header(batch).record_count
        base = self.next.get(partition, 0)
        self.next[partition] = base + count
        self.batches.append(batch)
        return AppendResult(base, base + count - 1, -1, 0)

    def close(self) -> None:
        self._open.set()


def producer(transport: Any, **options: Any) -> Producer:
    return Producer(transport=transport, retry_backoff_ms=1, **options)


def test_send_blocks_for_max_block_ms_then_raises_naming_the_limits() -> None:
    stalled = FakeTransport(stall=True)
    p = producer(stalled, buffer_memory=64 * 1024, max_block_ms=200, linger_ms=60_000)
    queued = []
    with pytest.raises(BufferExhausted) as raised:
        for _ in range(10_000):
            started = time.monotonic()
            queued.append(p.send("t", RECORD))
    blocked = time.monotonic() - started
    assert 0.2 <= blocked < 5
    assert "buffer_memory=65536" in raised.value.message
    assert "max_block_ms=200" in raised.value.message
    assert raised.value.retriable
    assert 64 * 1024 // 300 < len(queued) < 64 * 1024 // 100  # each record's estimated size
    metrics = p.metrics()["producer-metrics"]
    assert metrics["buffer-exhausted-total"] == 1
    assert 0 <= metrics["buffer-available-bytes"] < 200
    stalled.release()
    p.close()
    assert [f.get(timeout=10).offset for f in queued] == list(range(len(queued)))


def test_twenty_thousand_sends_against_a_stalled_deployment_no_longer_queue_them_all() -> None:
    """The issue's measurement: 20,000 sends with linger_ms=60000 used to return in 1 s,
    queued without bound. With a deployment that does not answer, the buffer fills,
    send blocks max_block_ms, then raises; memory stays within buffer_memory."""
    stalled = FakeTransport(stall=True)
    p = producer(stalled, buffer_memory=1024 * 1024, max_block_ms=300, linger_ms=60_000)
    sent = 0
    started = time.monotonic()
    with pytest.raises(BufferExhausted):
        for _ in range(20_000):
            p.send("t", RECORD)
            sent += 1
    assert time.monotonic() - started >= 0.3
    assert sent < 20_000
    assert p.metrics()["producer-metrics"]["buffer-available-bytes"] >= 0
    stalled.release()
    p.close()
    assert sum(parse_header(b).record_count for b in stalled.batches) == sent


def test_a_full_buffer_sends_lingering_batches_rather_than_wait_out_the_linger() -> None:
    """As Kafka's accumulator: a send waiting for memory makes every batch sendable."""
    fast = FakeTransport(partitions=2)
    p = producer(fast, buffer_memory=32 * 1024, max_block_ms=10_000, linger_ms=60_000)
    started = time.monotonic()
    futures = [p.send("t", RECORD, key=str(i).encode()) for i in range(3_000)]
    assert time.monotonic() - started < 10  # never waited out a 60 s linger
    assert sum(f.done() for f in futures) > 2_000  # sent while sending went on
    p.flush(timeout=10)
    assert all(f.get(timeout=0).offset >= 0 for f in futures)
    assert p.metrics()["producer-metrics"]["buffer-exhausted-total"] == 0
    p.close()


def test_a_record_larger_than_the_whole_buffer_is_refused_at_once() -> None:
    p = producer(FakeTransport(), buffer_memory=1024)
    with pytest.raises(InvalidRequest, match="cannot fit in buffer_memory=1024"):
        p.send("t", b"y" * 2000)
    p.close()


def test_a_blocked_send_gives_up_when_the_producer_dies() -> None:
    stalled = FakeTransport(stall=True)
    p = producer(stalled, buffer_memory=4 * 1024, max_block_ms=30_000, linger_ms=60_000)
    size = estimate_record_size(None, RECORD, [])
    while p.metrics()["producer-metrics"]["buffer-available-bytes"] >= size:
        p.send("t", RECORD)  # fill the buffer without blocking
    errors: list[BaseException] = []

    def blocked_send() -> None:
        try:
            p.send("t", RECORD)
        except Exception as error:
            errors.append(error)

    worker = threading.Thread(target=blocked_send)
    worker.start()
    time.sleep(0.1)
    p._die(RuntimeError("crash"))
    worker.join(timeout=5)
    assert not worker.is_alive() and "closed" in str(errors[0])
    stalled.release()


def test_retries_and_errors_are_counted_per_record() -> None:
    flaky = FakeTransport(failures=[Throttled("slow down")])
    p = producer(flaky, linger_ms=0)
    futures = [p.send("t", RECORD) for _ in range(3)]
    p.flush()
    assert all(f.succeeded() for f in futures)
    metrics = p.metrics()["producer-metrics"]
    assert metrics["record-retry-total"] >= 1 and metrics["record-error-total"] == 0
    assert metrics["record-send-total"] == 3

    flaky.failures = [TopicNotFound("t")]
    failed = p.send("t", RECORD)
    assert isinstance(failed.exception(timeout=10), TopicNotFound)
    assert p.metrics()["producer-metrics"]["record-error-total"] == 1
    p.close()


def test_metrics_have_kafka_pythons_names_and_sensible_values() -> None:
    fake = FakeTransport(partitions=2)
    p = producer(fake, linger_ms=0)
    for i in range(200):
        p.send("t", RECORD, key=str(i).encode())
    p.flush()
    m = p.metrics()["producer-metrics"]
    assert m["record-send-total"] == 200 and m["record-send-rate"] > 0
    assert m["byte-total"] == sum(map(len, fake.batches)) and m["byte-rate"] > 0
    assert 0 < m["batch-size-avg"] <= m["batch-size-max"]
    assert m["records-per-request-avg"] * m["batch-total"] == pytest.approx(200)
    assert m["request-latency-max"] >= m["request-latency-avg"] >= 0
    assert m["buffer-available-bytes"] == m["buffer-total-bytes"] == 32 * 1024 * 1024
    assert m["requests-in-flight"] == 0
    p.close()


def test_serializers_must_be_callables_that_return_bytes() -> None:
    with pytest.raises(InvalidRequest, match="value_serializer must be a callable"):
        Producer(transport=FakeTransport(), value_serializer="json")  # type: ignore[arg-type]
    p = producer(FakeTransport(), value_serializer=lambda v: 42)
    with pytest.raises(InvalidRecord, match="must be bytes, str or None"):
        p.send("t", {"a": 1})
    p.close()


def test_serializers_see_every_key_and_value_none_included() -> None:
    """As kafka-python: ``f(None)`` is called; the serializer decides what None means."""
    seen: list[object] = []

    def key_serializer(key: object) -> bytes | None:
        seen.append(key)
        return None if key is None else str(key).encode()

    fake = FakeTransport()
    p = producer(fake, key_serializer=key_serializer, value_serializer=lambda v: b"v")
    p.send("t", None, key=None).get(timeout=10)
    p.send("t", 1, key=5).get(timeout=10)
    p.close()
    assert seen == [None, 5]
