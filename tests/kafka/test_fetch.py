"""Fetch's byte limits and offsets as a broker answers them: ``max_bytes`` bounds the whole
response (the first batch always comes), the high watermark is the partition's even when
the fetch stopped short, and a read_committed fetch stops at the last stable offset. And
poisoned batches through Produce: refused, nothing written, the partition still readable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from streamlet.engine import Engine
from streamlet.kafka import KafkaGateway
from streamlet.local import LocalPlatform
from tests.batches import make_batch
from tests.engine.test_transactions import TxnProducer
from tests.functions.test_poisoned_batches import attacks
from tests.kafka.raw import Connection

BATCHES = 5
CORRUPT_MESSAGE, INVALID_TIMESTAMP = 2, 32


def _batch(n: int) -> bytes:
    return make_batch([os.urandom(4000)], ts=1_000 + n)


BATCH = len(_batch(0))


@pytest.fixture
def conn(gateway: KafkaGateway, live_platform: LocalPlatform) -> Iterator[Connection]:
    conn = Connection(gateway)
    yield conn
    conn.close()


@pytest.fixture
def topic(platform: LocalPlatform, live_platform: LocalPlatform) -> str:
    """Three partitions of five ~4 KB batches each."""
    name = f"fetch-{uuid.uuid4().hex[:8]}"
    engine = platform.engine()
    engine.create_topic(name, 3)
    for partition in range(3):
        for n in range(BATCHES):
            engine.append(name, partition, _batch(n))
    return name


def test_max_bytes_bounds_the_whole_response(topic: str, conn: Connection) -> None:
    answers = conn.fetch(topic, [0, 1, 2], max_bytes=2 * BATCH + BATCH // 2)
    sizes = [len(a.records) for a in answers]
    assert sizes == [2 * BATCH, 0, 0]  # whole batches, in the order asked
    assert [a.high_watermark for a in answers] == [BATCHES] * 3
    assert [a.error_code for a in answers] == [0, 0, 0]
    answers = conn.fetch(topic, [2, 0, 1], max_bytes=4 * BATCH)
    assert [len(a.records) for a in answers] == [4 * BATCH, 0, 0]


def test_the_first_batch_comes_even_past_max_bytes(topic: str, conn: Connection) -> None:
    """KIP-74: a consumer always progresses, whatever its limits."""
    answers = conn.fetch(topic, [1, 2], max_bytes=100, partition_max_bytes=100)
    assert [len(a.records) for a in answers] == [BATCH, 0]


def test_a_fetch_cut_short_answers_the_partitions_high_watermark(
        topic: str, conn: Connection) -> None:
    (answer,) = conn.fetch(topic, [0], max_bytes=1 << 20, partition_max_bytes=BATCH)
    assert len(answer.records) == BATCH
    assert (answer.high_watermark, answer.last_stable_offset) == (BATCHES, BATCHES)
    assert answer.log_start_offset == 0


def test_read_committed_stops_at_the_last_stable_offset(
        platform: LocalPlatform, conn: Connection, live_platform: LocalPlatform) -> None:
    engine: Engine = platform.engine()
    name = f"lso-{uuid.uuid4().hex[:8]}"
    engine.create_topic(name, 1)
    engine.append(name, 0, _batch(0))
    producer = TxnProducer(engine, tid=f"lso-{name}")
    producer.begin()
    assert producer.send(name, 0, [b"open"]) == 1
    engine.append(name, 0, _batch(1))
    try:
        (committed,) = conn.fetch(name, [0], max_bytes=1 << 20, isolation_level=1)
        assert len(committed.records) == BATCH  # stops before the open transaction
        assert (committed.high_watermark, committed.last_stable_offset) == (3, 1)
        assert committed.aborted_transactions == []  # aborted batches are never sent
        (everything,) = conn.fetch(name, [0], max_bytes=1 << 20, isolation_level=0)
        assert len(everything.records) > 2 * BATCH
        assert everything.high_watermark == 3
    finally:
        producer.abort()
    (after,) = conn.fetch(name, [0], max_bytes=1 << 20, isolation_level=1)
    assert (after.high_watermark, after.last_stable_offset) == (3, 3)
    assert len(after.records) == 2 * BATCH  # the aborted batch skipped


@pytest.mark.parametrize("name", list(attacks()))
def test_a_poisoned_produce_is_refused_and_the_partition_stays_readable(
        platform: LocalPlatform, conn: Connection, name: str) -> None:
    """The hardening's attack batches through the gateway's Produce (acks=all): each gets
    the matching Kafka error code, nothing is written, the partition reads as before."""
    engine = platform.engine()
    topic = f"poison-{uuid.uuid4().hex[:8]}"
    engine.create_topic(topic, 1)
    assert conn.produce(topic, _batch(0)) == (0, 0)
    expected = INVALID_TIMESTAMP if name.startswith("timestamp") else CORRUPT_MESSAGE
    assert conn.produce(topic, attacks()[name]) == (expected, -1)
    assert engine.watermarks(topic, 0) == (0, 1)
    (answer,) = conn.fetch(topic, [0], max_bytes=1 << 20)
    assert len(answer.records) == BATCH and answer.high_watermark == 1
