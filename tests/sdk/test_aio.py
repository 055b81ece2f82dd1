"""The asyncio clients, on both transports: aiokafka's shape, and a loop that never waits.

A ticker task ticks every 10 ms throughout each scenario; a blocking call on the loop (a
fetch, a long poll, an append, a connection) would show as a gap as long as that call.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import botocore.endpoint
import pytest
import pytest_asyncio

from streamlet import RecordMetadata, StreamletError, TopicNotFound, TopicPartition
from streamlet.aio import AIOAdmin, AIOConsumer, AIOProducer

pytestmark = pytest.mark.asyncio

TICK_S = 0.010
MAX_GAP_S = 0.8
"""The longest pause the ticker may see. A blocked loop pauses for the whole long poll
(1 s and more, and any sleep, socket or botocore call on the loop fails the test at
once); what remains here is the OS sharing 2 cores among many processes (0.33 s seen
under load)."""


class Ticker:
    """Ticks every 10 ms on the loop and remembers when."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    async def run(self) -> None:
        while True:
            self.ticks.append(time.monotonic())
            await asyncio.sleep(TICK_S)

    def max_gap(self) -> float:
        return max((b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False)),
                   default=0.0)


@pytest_asyncio.fixture
async def ticker() -> AsyncIterator[Ticker]:
    """The ticker, with the cyclic garbage collector off: a full collection of this
    process (moto, boto3 and the session's data) stops every thread, loop included, for
    0.2-1 s here, which says nothing about the clients."""
    gc.collect()
    gc.disable()
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)
    try:
        yield ticker
    finally:
        task.cancel()
        gc.enable()
    assert ticker.max_gap() < MAX_GAP_S, f"the loop stalled for {ticker.max_gap():.3f} s"


@pytest.fixture(autouse=True)
def no_io_on_the_loop(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fails the test if the loop's thread sleeps, opens or uses a socket, or makes an
    AWS request: the deterministic half of "never blocks the loop" (the ticker is the
    timing half). Everything in these tests runs on the loop, setup included."""
    loop_thread = threading.get_ident()
    seen: list[str] = []

    def watch(owner: object, name: str) -> None:
        original = getattr(owner, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                seen.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, watched)

    watch(time, "sleep")
    for name in ("connect", "sendall", "recv_into"):
        watch(socket.socket, name)
    watch(botocore.endpoint.Endpoint, "make_request")
    yield seen
    assert seen == [], f"blocking calls on the event loop: {sorted(set(seen))}"


async def _topic(endpoint: str, topic: str, partitions: int = 1) -> str:
    async with AIOAdmin(endpoint) as admin:
        await admin.create_topic(topic, partitions)
    return topic


async def test_getmany_long_polls_while_the_loop_keeps_ticking(
        endpoint: str, topic: str, ticker: Ticker) -> None:
    await _topic(endpoint, topic)
    async with AIOConsumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        started = time.monotonic()
        ticks_before = len(ticker.ticks)
        assert await consumer.getmany(timeout_ms=1000) == {}
        waited = time.monotonic() - started
        ticks = len(ticker.ticks) - ticks_before

        async def produce_later() -> RecordMetadata:
            await asyncio.sleep(0.3)
            async with AIOProducer(endpoint) as producer:
                return await producer.send_and_wait(topic, b"late", key=b"k")

        sending = asyncio.create_task(produce_later())
        batch = await consumer.getmany(timeout_ms=10_000)
        sent = await sending
    assert waited >= 0.95
    assert ticks >= 0.5 * waited / TICK_S, (ticks, waited)
    assert [(tp, [r.value for r in rs]) for tp, rs in batch.items()] == \
        [(TopicPartition(topic, 0), [b"late"])]
    assert (sent.topic, sent.partition, sent.offset) == (topic, 0, 0)


async def test_send_returns_a_future_and_records_come_back_in_order(
        endpoint: str, topic: str, ticker: Ticker) -> None:
    await _topic(endpoint, topic, partitions=2)
    async with AIOProducer(endpoint, linger_ms=20) as producer:
        deliveries = [await producer.send(topic, f"v{i}".encode(), key=b"same-key")
                      for i in range(20)]
        await producer.flush()
        assert all(d.done() for d in deliveries)
        metadata = [await d for d in deliveries]
        last = await producer.send_and_wait(topic, b"v20", key=b"same-key",
                                            headers=[("trace", b"1")])
        # concurrent senders (tasks started in this order) keep their order too
        together = await asyncio.gather(*(producer.send(topic, f"v{i}".encode(),
                                                        key=b"same-key")
                                          for i in range(21, 60)))
        metadata += [last, *[await d for d in together]]
    partition = metadata[0].partition
    assert [m.offset for m in metadata] == list(range(60))
    assert {m.partition for m in metadata} == {partition}
    seen = []
    async with AIOConsumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        async for record in consumer:
            seen.append(record)
            if len(seen) == 60:
                break
    assert [r.value for r in seen] == [f"v{i}".encode() for i in range(60)]
    assert seen[20].header("trace") == b"1"
    assert len(ticker.ticks) > 1


async def test_commit_counts_only_records_returned(endpoint: str, topic: str) -> None:
    """getmany(max_records=3) buffers the rest of the fetch: neither commit() nor stop()
    (with auto-commit) may count those, or a restart would skip them."""
    await _topic(endpoint, topic)
    tp = TopicPartition(topic, 0)
    async with AIOProducer(endpoint) as producer:
        for i in range(10):
            await producer.send(topic, f"r{i}".encode())
    group = f"{topic}-g"
    async with AIOConsumer(topic, endpoint=endpoint, group_id=group,
                           auto_offset_reset="earliest") as consumer:
        first = await _first_records(consumer)
        assert [r.offset for r in first[tp]] == [0, 1, 2]
        assert await consumer.position(tp) == 3
        await consumer.commit()
        assert await consumer.committed(tp) == 3
        assert (await consumer.getone()).offset == 3
    async with AIOConsumer(topic, endpoint=endpoint, group_id=group,
                           auto_offset_reset="earliest") as consumer:
        rest = await _until(consumer, 6)
    assert [r.offset for r in rest] == [4, 5, 6, 7, 8, 9]


async def _first_records(consumer: AIOConsumer) -> dict[TopicPartition, list]:
    """The first non-empty getmany of 3 records (the group hands partitions out first)."""
    for _ in range(100):
        batch = await consumer.getmany(timeout_ms=200, max_records=3)
        if batch:
            return batch
    raise AssertionError("no records")


async def _until(consumer: AIOConsumer, count: int) -> list:
    records: list = []
    deadline = time.monotonic() + 30
    while len(records) < count and time.monotonic() < deadline:
        for batch in (await consumer.getmany(timeout_ms=200)).values():
            records += batch
    return records


async def test_seek_and_assign_act_without_await(endpoint: str, topic: str) -> None:
    await _topic(endpoint, topic)
    tp = TopicPartition(topic, 0)
    async with AIOProducer(endpoint) as producer:
        for i in range(5):
            await producer.send(topic, f"s{i}".encode())
    consumer = AIOConsumer(endpoint=endpoint, auto_offset_reset="earliest")
    consumer.assign([tp])  # before start, as aiokafka allows
    await consumer.start()
    try:
        assert consumer.assignment() == {tp}
        assert (await consumer.getone()).offset == 0
        consumer.seek(tp, 3)  # aiokafka's seek is a plain method
        assert [r.offset for r in (await consumer.getmany(timeout_ms=2000))[tp]] == [3, 4]
        await consumer.seek_to_beginning(tp)
        assert (await consumer.getone(tp)).offset == 0
        other = TopicPartition(topic, 7)
        consumer.seek(other, 0)  # not assigned: the next awaited call raises
        with pytest.raises(StreamletError, match="not assigned"):
            await consumer.position(tp)
        with pytest.raises(StreamletError, match="not assigned"):
            await consumer.seek(other, 0)
        assert await consumer.position(tp) == 1
    finally:
        await consumer.stop()
    with pytest.raises(StreamletError, match="stopped"):
        await consumer.getone()


async def test_a_cancelled_getmany_loses_no_record(endpoint: str, topic: str) -> None:
    """A getmany cancelled while its poll runs (asyncio.wait_for) leaves what that poll
    fetched buffered: the next calls return every record once, in order."""
    await _topic(endpoint, topic)
    async with AIOProducer(endpoint) as producer:
        for i in range(5):
            await producer.send(topic, f"c{i}".encode())
    seen: list[int] = []
    cancelled = 0
    async with AIOConsumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        for delay in (0.001, 0.001, 0.005, 0.02):
            try:
                batch = await asyncio.wait_for(
                    consumer.getmany(timeout_ms=60_000, max_records=1), delay)
            except TimeoutError:
                cancelled += 1
                continue
            seen += [r.offset for records in batch.values() for r in records]
        seen += [r.offset for r in await _until(consumer, 5 - len(seen))]
    assert cancelled >= 1
    assert seen == [0, 1, 2, 3, 4]


async def test_admin_coroutines_and_errors(endpoint: str, topic: str, ticker: Ticker) -> None:
    async with AIOAdmin(endpoint) as admin:
        created = await admin.create_topic(topic, partitions=2, config={"retention.ms": 60_000})
        assert created.partitions == 2
        assert topic in await admin.list_topics()
        assert (await admin.describe_topic(topic)).config["retention.ms"] == "60000"
        assert await admin.watermarks(topic, 1) == (0, 0)
        async with AIOProducer(endpoint) as producer:
            with pytest.raises(TopicNotFound):
                await producer.send(f"{topic}-missing", b"x")
            await producer.send_and_wait(topic, b"x", partition=1)
        assert await admin.watermarks(topic, 1) == (0, 1)
        await admin.delete_topic(topic)
        with pytest.raises(TopicNotFound):
            await admin.describe_topic(topic)
    with pytest.raises(StreamletError, match="closed"):
        await admin.list_topics()


async def test_clients_refuse_calls_before_start(endpoint: str) -> None:
    producer = AIOProducer(endpoint)
    with pytest.raises(StreamletError, match="start"):
        await producer.send("t", b"x")
    await producer.stop()
    consumer = AIOConsumer(endpoint=endpoint)
    with pytest.raises(StreamletError, match="start"):
        await consumer.getmany()
    await consumer.stop()
