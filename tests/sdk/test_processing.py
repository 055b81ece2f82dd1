"""streamlet.processing.run: consume-transform-produce exactly once, on both transports."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from streamlet import Admin, Consumer, Producer, processing
from streamlet.errors import InvalidTxnState
from streamlet.processing import Output
from streamlet.records import Record, TopicPartition


def _setup(endpoint: str, topic: str, inputs: int, partitions: int = 2) -> tuple[str, str]:
    source, sink = f"{topic}-in", f"{topic}-out"
    with Admin(endpoint) as admin:
        admin.create_topic(source, partitions)
        admin.create_topic(sink, partitions)
    with Producer(endpoint, linger_ms=1) as producer:
        for i in range(inputs):
            producer.send(source, f"v{i}".encode(), key=f"k{i % 5}".encode())
    return source, sink


def _consumer(endpoint: str, source: str, group: str, **options: Any) -> Consumer:
    return Consumer(source, endpoint=endpoint, group_id=group, auto_offset_reset="earliest",
                    enable_auto_commit=False, fetch_max_wait_ms=50, **options)


def _outputs(endpoint: str, sink: str, expect: int, timeout: float = 10.0) -> list[Record]:
    with Consumer(sink, endpoint=endpoint, auto_offset_reset="earliest",
                  fetch_max_wait_ms=50) as reader:
        got: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            got += reader.poll(timeout=0.2)
        got += reader.poll(timeout=0.3)  # and nothing more
        return got


def _upper(record: Record) -> list[Output]:
    return [Output(f"{record.topic[:-3]}-out", (record.value or b"").upper(), record.key)]


def test_every_input_has_exactly_one_output_and_its_offset_committed(
        endpoint: str, topic: str) -> None:
    source, sink = _setup(endpoint, topic, 30)
    with _consumer(endpoint, source, f"{topic}-g", max_poll_records=7) as consumer, \
            Producer(endpoint, transactional_id=f"{topic}-p", linger_ms=1) as producer:
        stats = processing.run(consumer, producer, _upper, poll_timeout=0.3, max_polls=20)
        assert (stats.records, stats.outputs, stats.retried) == (30, 30, 0)
        assert stats.committed >= 5  # one transaction per poll that had records
        committed = sum(consumer.committed(TopicPartition(source, p)) or 0 for p in range(2))
        assert committed == 30
    out = _outputs(endpoint, sink, 30)
    assert sorted(r.value for r in out) == sorted(f"V{i}".encode() for i in range(30))
    by_key: dict[bytes | None, list[int]] = {}
    for record in sorted(out, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(int((record.value or b"")[1:]))
    assert all(values == sorted(values) for values in by_key.values())  # input order per key


def test_a_failing_function_leaves_nothing_and_the_next_run_starts_over(
        endpoint: str, topic: str) -> None:
    source, sink = _setup(endpoint, topic, 10, partitions=1)
    calls = Counter[bytes]()

    def flaky(record: Record) -> list[Output]:
        calls[record.value or b""] += 1
        if record.value == b"v6" and calls[b"v6"] == 1:
            raise ValueError("bad record")
        return _upper(record)

    with _consumer(endpoint, source, f"{topic}-g") as consumer, \
            Producer(endpoint, transactional_id=f"{topic}-p", linger_ms=1) as producer:
        with pytest.raises(ValueError, match="bad record"):
            processing.run(consumer, producer, flaky, poll_timeout=0.3, max_polls=10)
        processing.run(consumer, producer, flaky, poll_timeout=0.3, max_polls=5)
    out = _outputs(endpoint, sink, 10)
    assert sorted(r.value for r in out) == sorted(f"V{i}".encode() for i in range(10))
    assert calls[b"v6"] == 2 and calls[b"v0"] == 2  # the failed poll was read again


def test_run_refuses_an_auto_committing_consumer(endpoint: str, topic: str) -> None:
    source, _ = _setup(endpoint, topic, 0, partitions=1)
    with Consumer(source, endpoint=endpoint, group_id=f"{topic}-g") as consumer, \
            Producer(endpoint, transactional_id=f"{topic}-p") as producer, \
            pytest.raises(InvalidTxnState, match="enable_auto_commit=False"):
        processing.run(consumer, producer, _upper, max_polls=1)


def test_a_rebalance_mid_stream_keeps_every_output_exactly_once(
        endpoint: str, topic: str) -> None:
    """A second processor joins while the first works: partitions move between them,
    transactions of the member that lost a partition abort, and nothing is duplicated."""
    source, sink = _setup(endpoint, topic, 60, partitions=4)
    group, stop = f"{topic}-g", threading.Event()
    errors: list[BaseException] = []

    def processor(name: str, delay: float) -> None:
        time.sleep(delay)
        try:
            with _consumer(endpoint, source, group, max_poll_records=3,
                           session_timeout_ms=3000) as consumer, \
                    Producer(endpoint, transactional_id=f"{topic}-{name}",
                             linger_ms=1) as producer:
                def slow(record: Record) -> list[Output]:
                    time.sleep(0.02)
                    return _upper(record)
                processing.run(consumer, producer, slow, poll_timeout=0.2, stop=stop)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=processor, args=(n, d))
               for n, d in (("a", 0.0), ("b", 0.5))]
    for thread in threads:
        thread.start()
    out = _outputs(endpoint, sink, 60, timeout=60)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not errors
    values = Counter(r.value for r in out)
    assert sorted(values) == sorted(f"V{i}".encode() for i in range(60))
    assert set(values.values()) == {1}
