"""Consumers and admins cross the tier boundary without noticing (both transports)."""

from __future__ import annotations

import time

import pytest

from streamlet import Admin, Consumer, OffsetOutOfRange, Producer, TopicPartition


def produce(endpoint: str, topic: str, first: int, count: int) -> None:
    """One record per batch, so segments and fetches split between any two records."""
    with Producer(endpoint, linger_ms=0) as producer:
        for i in range(first, first + count):
            producer.send(topic, f"v{i}".encode(), partition=0, timestamp_ms=1_000_000 + i)
            producer.flush()


def drain(consumer: Consumer, count: int, timeout: float = 30.0
          ) -> list[tuple[int, bytes | None]]:
    """Poll until ``count`` records came or ``timeout`` seconds passed."""
    got: list[tuple[int, bytes | None]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += [(r.offset, r.value) for r in consumer.poll(timeout=0.2)]
    return got


def test_a_consumer_reads_across_the_archive_boundary(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, 1, {"segment.bytes": 200})
    produce(endpoint, topic, 0, 30)
    reports = admin.archive(topic, force=True)
    assert reports[0].archived_offset == 30 and len(reports[0].segments) > 1
    produce(endpoint, topic, 30, 30)
    with Consumer(endpoint=endpoint, auto_offset_reset="earliest",
                  max_poll_records=7) as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        got = drain(consumer, 60)
    assert got == [(i, f"v{i}".encode()) for i in range(60)]
    times = admin.offsets_for_times({TopicPartition(topic, 0): 1_000_000 + 12,
                                     TopicPartition(topic, 0): 1_000_000 + 45})
    assert times == {TopicPartition(topic, 0): 45}
    assert admin.offsets_for_times({TopicPartition(topic, 0): 1_000_012}) == {
        TopicPartition(topic, 0): 12}


@pytest.mark.parametrize("reset", ["earliest", "latest", "none"])
def test_a_consumer_below_the_log_start_follows_auto_offset_reset(endpoint: str, topic: str,
                                                                  reset: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, 1)
    produce(endpoint, topic, 0, 20)
    admin.archive(topic, force=True)
    produce(endpoint, topic, 20, 20)
    tp = TopicPartition(topic, 0)
    with Consumer(endpoint=endpoint, auto_offset_reset=reset, max_poll_records=5) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        assert [r.offset for r in consumer.poll(timeout=2)] == [0, 1, 2, 3, 4]
        assert admin.delete_records({tp: 30}) == {tp: 30}
        assert admin.watermarks(topic, 0) == (30, 40)
        if reset == "none":
            with pytest.raises(OffsetOutOfRange, match=rf"'{topic}' partition 0"):
                drain(consumer, 1)
            return
        if reset == "latest":
            assert drain(consumer, 1, timeout=1.0) == [] and consumer.position(tp) == 40
            produce(endpoint, topic, 40, 1)
            assert drain(consumer, 1) == [(40, b"v40")]
            return
        got = drain(consumer, 10)
    assert [o for o, _ in got] == list(range(30, 40))
