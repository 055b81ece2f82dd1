"""Producer, Consumer and Admin against the local platform (direct transport)."""

from __future__ import annotations

import itertools
import json
import statistics
import time

import pytest

from streamlet import (
    Admin,
    Consumer,
    InvalidRecord,
    InvalidRequest,
    PartitionNotFound,
    Producer,
    RecordTooLarge,
    TopicNotFound,
    TopicPartition,
)
from streamlet.partitioner import murmur2_partition
from streamlet.records import TimestampType


def drain(consumer: Consumer, n: int, timeout: float = 10.0) -> list:  # type: ignore[type-arg]
    out: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += consumer.poll(timeout=0.5)
    return out


def test_keyed_records_round_trip_in_order(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 4)
    with Producer(endpoint) as producer:
        futures = [producer.send(topic, json.dumps({"n": i}), key=f"user-{i % 7}",
                                 headers={"seq": str(i)}) for i in range(300)]
    metas = [f.result() for f in futures]
    for i, meta in enumerate(metas):
        assert meta.partition == murmur2_partition(f"user-{i % 7}".encode(), 4)
    with Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        records = drain(consumer, 300)
    assert len(records) == 300
    by_key: dict[bytes, list[int]] = {}
    for r in records:
        assert r.key is not None
        by_key.setdefault(r.key, []).append(json.loads(r.value)["n"])
        assert r.header("seq") == str(json.loads(r.value)["n"]).encode()
    assert all(ns == sorted(ns) for ns in by_key.values())
    for p in range(4):
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == list(range(len(offsets)))


def test_send_returns_metadata_with_offsets_and_timestamps(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    with Producer(endpoint, linger_ms=0) as producer:
        meta = producer.send(topic, b"a", timestamp_ms=1234).result(timeout=10)
        meta2 = producer.send(topic, b"b").result(timeout=10)
    assert (meta.offset, meta.timestamp, meta.timestamp_type) == (0, 1234,
                                                                 TimestampType.CREATE_TIME)
    assert meta2.offset == 1 and meta2.timestamp > 1_600_000_000_000


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_compression_type(endpoint: str, topic: str, codec: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    with Producer(endpoint, compression_type=codec) as producer:
        for i in range(50):
            producer.send(topic, f"value-{i}" * 20)
    with Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        assert [r.value for r in drain(consumer, 50)] == [
            f"value-{i}".encode() * 20 for i in range(50)]


def test_explicit_partition_and_unknowns(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 2)
    with Producer(endpoint) as producer:
        assert producer.send(topic, b"x", key=b"k", partition=1).result(10).partition == 1
        with pytest.raises(PartitionNotFound, match="Partition 2 of topic"):
            producer.send(topic, b"x", partition=2)
        with pytest.raises(TopicNotFound, match="nope"):
            producer.send("nope", b"x")


def test_bad_input_raises_and_writes_nothing(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, 1, {"max.message.bytes": 4096})
    with Producer(endpoint) as producer:
        with pytest.raises(InvalidRecord, match="must be bytes, str or None"):
            producer.send(topic, 42)
        with pytest.raises(InvalidRecord, match="Header key"):
            producer.send(topic, b"x", headers=[(1, b"v")])
        with pytest.raises(RecordTooLarge, match=r"max\.message\.bytes=4096"):
            producer.send(topic, b"x" * 5000)
    assert admin.watermarks(topic, 0) == (0, 0)


def test_large_records_travel_through_s3(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1, {"max.message.bytes": 2 * 1024 * 1024})
    big = bytes(range(256)) * 4096  # 1 MiB, incompressible enough
    with Producer(endpoint, compression_type="none") as producer:
        producer.send(topic, big)
    with Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        assert [r.value for r in drain(consumer, 1)] == [big]


def test_seek_position_and_resets(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    tp = TopicPartition(topic, 0)
    with Producer(endpoint) as producer:
        for i in range(20):
            producer.send(topic, str(i))
    latest = Consumer(topic, endpoint=endpoint)  # Kafka's default: latest
    assert latest.position(tp) == 20 and latest.poll(0.2) == []
    consumer = Consumer(endpoint=endpoint, auto_offset_reset="earliest", max_poll_records=5)
    consumer.assign([tp])
    assert [r.offset for r in consumer.poll(2)] == [0, 1, 2, 3, 4]
    assert consumer.position(tp) == 5
    consumer.seek(tp, 17)
    assert [r.offset for r in consumer.poll(2)] == [17, 18, 19]
    consumer.seek_to_beginning(tp)
    assert consumer.position(tp) == 0
    consumer.seek_to_end()
    assert consumer.position(tp) == 20
    with pytest.raises(InvalidRequest, match="non-negative"):
        consumer.seek(tp, -1)
    consumer.seek(tp, 500)  # beyond the end: reset per auto_offset_reset on the next fetch
    assert consumer.poll(1)[0].offset == 0


def test_reset_none_raises_out_of_range(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    tp = TopicPartition(topic, 0)
    consumer = Consumer(endpoint=endpoint, auto_offset_reset="none")
    consumer.assign([tp])
    with pytest.raises(InvalidRequest, match="auto_offset_reset='none'"):
        consumer.poll(0.1)
    consumer.seek(tp, 5)
    with pytest.raises(Exception, match="out of range"):
        consumer.poll(0.1)


def test_consumer_picks_up_new_partitions(endpoint: str, topic: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import streamlet.consumer as consumer_module

    monkeypatch.setattr(consumer_module, "METADATA_MAX_AGE_S", 0.0)
    admin = Admin(endpoint)
    admin.create_topic(topic, 1)
    consumer = Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest")
    assert consumer.assignment() == {TopicPartition(topic, 0)}
    admin.create_partitions(topic, 3)
    with Producer(endpoint) as producer:
        producer.send(topic, b"late", partition=2)
    assert [(r.partition, r.value) for r in drain(consumer, 1)] == [(2, b"late")]


def test_iteration_stops_after_consumer_timeout(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 2)
    with Producer(endpoint) as producer:
        for i in range(10):
            producer.send(topic, str(i), key=str(i))
    consumer = Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest",
                        consumer_timeout_ms=300)
    assert sorted(int(r.value) for r in consumer) == list(range(10))


def test_admin_offsets_for_times_and_describe(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, 1, {"retention.ms": 3600000})
    with Producer(endpoint, linger_ms=0) as producer:
        for ts in (100, 200, 300):
            producer.send(topic, b"x", timestamp_ms=ts).result(10)
    tp = TopicPartition(topic, 0)
    assert admin.offsets_for_times({tp: 150}) == {tp: 1}
    assert admin.offsets_for_times({tp: 301}) == {tp: None}
    described = admin.describe_topic(topic)
    assert described.config["retention.ms"] == "3600000"
    assert [(p.low, p.high) for p in described.partition_info] == [(0, 3)]
    assert topic in admin.list_topics()
    admin.delete_topic(topic)
    assert topic not in admin.list_topics()


def test_endpoint_from_environment(endpoint: str, topic: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STREAMLET_ENDPOINT", endpoint)
    Admin().create_topic(topic)
    assert topic in Admin().list_topics()


def test_missing_or_unknown_endpoint_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="STREAMLET_ENDPOINT"):
        Admin()
    with pytest.raises(InvalidRequest, match="Unsupported endpoint"):
        Producer("kafka://localhost:9092")


def test_bad_options_are_refused(endpoint: str) -> None:
    with pytest.raises(InvalidRequest, match="compression_type"):
        Producer(endpoint, compression_type="brotli")
    with pytest.raises(InvalidRequest, match="auto_offset_reset"):
        Consumer(endpoint=endpoint, auto_offset_reset="smallest-ish")


@pytest.mark.parametrize("wait", [-1, 300_001, 1.5, "500", True])
def test_fetch_max_wait_ms_is_checked(endpoint: str, wait: object) -> None:
    with pytest.raises(InvalidRequest, match=r"fetch_max_wait_ms must be an integer from 0 "
                                             r"to 300000, got"):
        Consumer(endpoint=endpoint, fetch_max_wait_ms=wait)  # type: ignore[arg-type]


def _fetch_times(consumer: Consumer) -> list[float]:
    """Record when the consumer starts each fetch (one partition: one fetch per round)."""
    times: list[float] = []
    real_fetch = consumer._transport.fetch

    def fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
        times.append(time.monotonic())
        return real_fetch(*args, **kwargs)

    consumer._transport.fetch = fetch  # type: ignore[method-assign]
    return times


def test_fetch_max_wait_ms_caps_the_idle_pause(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    with Consumer(topic, endpoint=endpoint, fetch_max_wait_ms=400) as consumer:
        times = _fetch_times(consumer)
        assert consumer.poll(timeout=3.0) == []  # ~0.6 s of doubling, then 0.4 s pauses
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= min(0.005 * 2**i, 0.4) * 0.99 for i, gap in enumerate(gaps)), gaps
    capped = [gap for gap in gaps if gap >= 0.4 * 0.99]
    # pauses stop growing at 0.4 s (uncapped they would go 0.64, 1.28); the median, since
    # a loaded machine can make a single fetch slow
    assert len(capped) >= 2 and statistics.median(capped) < 0.4 + 0.3, gaps

    with Consumer(topic, endpoint=endpoint, fetch_max_wait_ms=400) as consumer:
        times = _fetch_times(consumer)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # short polls do not fetch more often
            assert consumer.poll(timeout=0.02) == []
    assert 5 <= len(times) <= 14, len(times)  # ~7 while the pause grows, then ~4

    Producer(endpoint).send(topic, b"after a quiet spell").result()
    with Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest",
                  fetch_max_wait_ms=0) as eager:  # 0: fetch again at once
        assert [r.value for r in eager.poll(timeout=5.0)] == [b"after a quiet spell"]


def test_flush_waits_for_every_record(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 3)
    producer = Producer(endpoint, linger_ms=50)
    futures = [producer.send(topic, b"v", key=str(i)) for i in range(1000)]
    producer.flush()
    assert all(f.done() and f.exception() is None for f in futures)
    producer.close()
    with pytest.raises(Exception, match="closed"):
        producer.send(topic, b"v")
