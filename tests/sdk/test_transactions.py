"""The transactional producer on both transports (direct and the HTTP API): Kafka's calls
and states, atomic visibility for read_committed consumers, offsets committed with the
output, zombie fencing, timeouts and limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from streamlet import Admin, Consumer, Producer
from streamlet.codec import decode_batch
from streamlet.engine import Engine
from streamlet.errors import (
    CommitFailed,
    InvalidRequest,
    InvalidTxnState,
    ProducerFenced,
    RequestTimedOut,
    TransactionAborted,
    TransactionTooLarge,
)
from streamlet.records import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition


def _topics(endpoint: str, topic: str, partitions: int = 2) -> tuple[str, str]:
    with Admin(endpoint) as admin:
        admin.create_topic(f"{topic}-a", partitions)
        admin.create_topic(f"{topic}-b", 1)
    return f"{topic}-a", f"{topic}-b"


def _read(endpoint: str, *topics: str, isolation: str = "read_committed",
          expect: int | None = None, timeout: float = 3.0) -> list[bytes]:
    """Every value readable now (waiting up to ``timeout`` for ``expect`` of them)."""
    with Consumer(*topics, endpoint=endpoint, auto_offset_reset="earliest",
                  isolation_level=isolation, fetch_max_wait_ms=50) as consumer:
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got += [r.value or b"" for r in consumer.poll(timeout=0.2)]
            if expect is not None and len(got) >= expect:
                break
        return sorted(got)


def _producer(endpoint: str, tid: str, **options: Any) -> Producer:
    producer = Producer(endpoint, transactional_id=tid, linger_ms=1, **options)
    producer.init_transactions()
    return producer


def test_a_transaction_is_visible_at_once_in_every_topic(endpoint: str, topic: str) -> None:
    a, b = _topics(endpoint, topic)
    with _producer(endpoint, f"{topic}-tx") as producer:
        producer.begin_transaction()
        for i in range(6):
            producer.send(a, f"a{i}".encode(), partition=i % 2)
        producer.send(b, b"b0")
        producer.flush()
        assert _read(endpoint, a, b, timeout=0.5) == []
        uncommitted = _read(endpoint, a, b, isolation="read_uncommitted", expect=7)
        assert len(uncommitted) == 7
        info = producer.commit_transaction()
        assert (info.status, info.partitions) == ("committed", 3)
    assert _read(endpoint, a, b, expect=7) == sorted([f"a{i}".encode() for i in range(6)]
                                                     + [b"b0"])


def test_a_failing_block_aborts_and_readers_move_past_it(endpoint: str, topic: str) -> None:
    a, _ = _topics(endpoint, topic, partitions=1)
    with _producer(endpoint, f"{topic}-tx") as producer:
        with pytest.raises(RuntimeError, match="boom"), producer.transaction():
            producer.send(a, b"never-1")
            producer.send(a, b"never-2")
            producer.flush()
            raise RuntimeError("boom")
        with producer.transaction():
            producer.send(a, b"kept")
    with Consumer(a, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        values = [r.value for r in consumer.poll(timeout=2)]
        tp = TopicPartition(a, 0)
        assert values == [b"kept"]
        assert consumer.position(tp) == 3  # the aborted batch's offsets are spent
        consumer.poll(timeout=0.2)
        assert consumer.position(tp) == 3


def test_misuse_is_refused_with_the_state_named(endpoint: str, topic: str) -> None:
    a, _ = _topics(endpoint, topic, partitions=1)
    with pytest.raises(InvalidRequest, match="enable_idempotence"):
        Producer(endpoint, transactional_id="x", enable_idempotence=False)
    with pytest.raises(InvalidRequest, match="Transactional id"):
        Producer(endpoint, transactional_id="no spaces")
    with pytest.raises(InvalidRequest, match="transaction_timeout_ms"):
        Producer(endpoint, transactional_id="x", transaction_timeout_ms=10_000_000)
    with Producer(endpoint, transactional_id=f"{topic}-tx") as producer:
        with pytest.raises(InvalidTxnState, match="init_transactions"):
            producer.begin_transaction()
        producer.init_transactions()
        with pytest.raises(InvalidTxnState, match="begin_transaction"):
            producer.send(a, b"outside")
        with pytest.raises(InvalidTxnState, match="state ready"):
            producer.commit_transaction()
        producer.begin_transaction()
        with pytest.raises(InvalidTxnState, match="in_transaction"):
            producer.begin_transaction()
        producer.abort_transaction()
    with Producer(endpoint) as plain, pytest.raises(InvalidTxnState, match="transactional_id"):
        plain.begin_transaction()


def test_a_zombie_is_fenced_and_nothing_it_sent_is_visible(endpoint: str, topic: str) -> None:
    a, _ = _topics(endpoint, topic, partitions=1)
    zombie = _producer(endpoint, f"{topic}-tx")
    zombie.begin_transaction()
    zombie.send(a, b"zombie")
    zombie.flush()
    with _producer(endpoint, f"{topic}-tx") as successor:  # fences the zombie
        with pytest.raises(ProducerFenced, match="fenced"):
            zombie.commit_transaction()
        with pytest.raises(ProducerFenced):
            zombie.begin_transaction()
        with successor.transaction():
            successor.send(a, b"successor")
    zombie.close()
    assert _read(endpoint, a, expect=1) == [b"successor"]


def test_offsets_go_with_the_output(endpoint: str, topic: str) -> None:
    source, sink = _topics(endpoint, topic, partitions=1)
    with Producer(endpoint) as plain:
        for i in range(5):
            plain.send(source, f"in-{i}".encode())
    group = f"{topic}-g"
    with Consumer(source, endpoint=endpoint, group_id=group, auto_offset_reset="earliest",
                  enable_auto_commit=False) as consumer, \
            _producer(endpoint, f"{topic}-tx") as producer:
        records: list[Any] = []
        deadline = time.monotonic() + 10
        while len(records) < 5 and time.monotonic() < deadline:
            records += consumer.poll(timeout=0.5)
        tp = TopicPartition(source, 0)
        with producer.transaction():
            for record in records:
                producer.send(sink, record.value.upper())
            producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(records[-1].offset + 1, "txn")},
                consumer.group_metadata())
        assert consumer.committed(tp, metadata=True) == OffsetAndMetadata(5, "txn")
    assert _read(endpoint, sink, expect=5) == [f"IN-{i}".encode() for i in range(5)]


def test_a_member_that_lost_its_partition_cannot_commit_it_in_a_transaction(
        endpoint: str, topic: str) -> None:
    source, sink = _topics(endpoint, topic, partitions=1)
    tp = TopicPartition(source, 0)
    stale = ConsumerGroupMetadata(f"{topic}-g", "m-gone", {tp: 7})
    with _producer(endpoint, f"{topic}-tx") as producer:
        producer.begin_transaction()
        producer.send(sink, b"must-not-show")
        producer.send_offsets_to_transaction({tp: 3}, stale)
        with pytest.raises(CommitFailed, match="aborted"):
            producer.commit_transaction()
        with pytest.raises(CommitFailed, match="does not own"):
            producer.begin_transaction()
            producer.send_offsets_to_transaction({TopicPartition(source, 9): 1}, stale)
        producer.abort_transaction()
    assert _read(endpoint, sink, timeout=0.5) == []


def test_an_auto_committing_consumer_cannot_send_offsets(endpoint: str, topic: str) -> None:
    source, _ = _topics(endpoint, topic, partitions=1)
    with Consumer(source, endpoint=endpoint, group_id=f"{topic}-g") as consumer, \
            pytest.raises(InvalidTxnState, match="enable_auto_commit=False"):
        consumer.group_metadata()


def test_a_transaction_open_past_its_timeout_is_aborted(endpoint: str, topic: str) -> None:
    a, _ = _topics(endpoint, topic, partitions=1)
    with _producer(endpoint, f"{topic}-tx", transaction_timeout_ms=1000) as producer:
        producer.begin_transaction()
        producer.send(a, b"late")
        producer.flush()
        time.sleep(1.2)
        with pytest.raises(TransactionAborted, match="timed out"):
            producer.commit_transaction()
        with producer.transaction():
            producer.send(a, b"in-time")
    assert _read(endpoint, a, expect=1) == [b"in-time"]


def test_offsets_past_one_dynamodb_transaction_are_refused_when_added(
        endpoint: str, topic: str) -> None:
    with Admin(endpoint) as admin:
        admin.create_topic(f"{topic}-wide", 99)
    tps = {TopicPartition(f"{topic}-wide", p): 1 for p in range(99)}
    group = ConsumerGroupMetadata(f"{topic}-g", "m", {tp: 1 for tp in tps})
    with _producer(endpoint, f"{topic}-tx") as producer:
        producer.begin_transaction()
        first = dict(list(tps.items())[:98])
        producer.send_offsets_to_transaction(first, group)  # 100 items: fits
        with pytest.raises(TransactionTooLarge, match="101"):
            producer.send_offsets_to_transaction(tps, group)
        producer.abort_transaction()


def test_close_aborts_a_transaction_left_open(endpoint: str, topic: str) -> None:
    a, _ = _topics(endpoint, topic, partitions=1)
    producer = _producer(endpoint, f"{topic}-tx")
    producer.begin_transaction()
    producer.send(a, b"unfinished")
    producer.close()
    with Admin(endpoint) as admin:
        ended = [t for t in admin.list_transactions(include_ended=True)
                 if t.transactional_id == f"{topic}-tx"]
    assert [(t.status, t.reason) for t in ended] == [("aborted", "aborted by the producer")]
    assert _read(endpoint, a, timeout=0.5) == []


def test_a_commit_whose_outcome_is_unknown_can_be_committed_again(engine: Engine) -> None:
    """The commit landed, but every read of its record failed until the producer's
    delivery timeout: commit_transaction raises a retriable error, the outcome unknown.
    The producer must not be left stuck (abort cannot undo a commit, and begin needs the
    transaction ended): commit_transaction again answers how it ended, as in Kafka."""
    engine.create_topic("out", 1)
    producer = Producer(transport=engine, transactional_id="unknown", linger_ms=0,
                        delivery_timeout_ms=300, retry_backoff_ms=10)
    producer.init_transactions()
    real = engine.transactions.record
    outage = [False]

    def record(tid: str, number: int) -> Any:
        if outage[0]:
            raise RequestTimedOut("reading the transaction record timed out")
        return real(tid, number)

    engine.transactions.record = record  # type: ignore[method-assign]
    producer.begin_transaction()
    producer.send("out", b"once")
    producer.flush()
    outage[0] = True
    with pytest.raises(RequestTimedOut):
        producer.commit_transaction()
    outage[0] = False
    with pytest.raises(InvalidTxnState, match="already committed"):
        producer.abort_transaction()  # it cannot be undone...
    assert producer.commit_transaction().status == "committed"  # ... it can be confirmed
    with producer.transaction():
        producer.send("out", b"next")
    producer.close()
    assert _read_engine(engine, "out") == [b"once", b"next"]


def test_the_transaction_helper_asks_again_when_a_commit_outcome_is_unknown(
        engine: Engine) -> None:
    """``with producer.transaction()`` whose commit's outcome was unknown once: it asks
    again (a commit is idempotent) instead of aborting what may have committed."""
    engine.create_topic("out", 1)
    producer = Producer(transport=engine, transactional_id="helper", linger_ms=0,
                        delivery_timeout_ms=300, retry_backoff_ms=10)
    producer.init_transactions()
    real = engine.transactions.record
    lost = [1]

    def record(tid: str, number: int) -> Any:
        found = real(tid, number)
        if lost[0] and found is not None and found.status == "committed":
            raise RequestTimedOut("reading the transaction record timed out")
        return found

    engine.transactions.record = record  # type: ignore[method-assign]
    deadline_passes = engine.transactions.commit

    def slow_commit(*args: Any, **kwargs: Any) -> Any:
        try:
            return deadline_passes(*args, **kwargs)
        finally:
            time.sleep(0.35)  # past the delivery timeout: the producer gives up
            lost[0] = 0

    engine.transactions.commit = slow_commit  # type: ignore[method-assign]
    with producer.transaction():
        producer.send("out", b"once")
    assert producer.transactional_state() == "ready"
    producer.close()
    assert _read_engine(engine, "out") == [b"once"]


def _read_engine(engine: Engine, topic: str) -> list[bytes]:
    values: list[bytes] = []
    offset = 0
    while True:
        result = engine.fetch(topic, 0, offset)
        values += [r.value or b"" for b in result.batches
                   for r in decode_batch(topic, 0, b) if r.offset >= offset]
        if result.high_watermark == offset:
            return values
        offset = result.high_watermark
