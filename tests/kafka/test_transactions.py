"""Transactional Kafka producers through the gateway (confluent-kafka / librdkafka and
kafka-python): commits across topics and partitions seen by read_committed consumers
(Kafka's and the SDK's), aborts never seen, consume-transform-produce with
send_offsets_to_transaction, fencing by a second producer with the same id, and a
transaction served by two gateways."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamlet import Admin
from streamlet import Consumer as SdkConsumer
from streamlet.kafka import KafkaGateway
from streamlet.local import LocalPlatform

from .test_confluent import _consume

QUIET = {"log_level": 3}


def _producer(bootstrap: str, tid: str, **config: object) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                         "linger.ms": 5, **QUIET, **config})
    producer.init_transactions(20)
    return producer


def _consumer(bootstrap: str, group: str, isolation: str = "read_committed",
              **config: object) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "isolation.level": isolation,
                     "enable.auto.commit": False, **QUIET, **config})


def _drain(consumer: Consumer, count: int, timeout: float = 20.0, settle: float = 1.5
           ) -> list:
    """At least ``count`` messages (or what came by ``timeout``), then whatever else
    arrives within ``settle`` seconds."""
    got = _consume(consumer, count, timeout)
    return got + _consume(consumer, 1 << 30, settle)


def _values(bootstrap: str, topics: list[str], count: int, isolation: str) -> list[bytes]:
    consumer = _consumer(bootstrap, f"reader-{isolation}-{topics[0]}", isolation)
    consumer.subscribe(topics)
    try:
        return sorted(m.value() for m in _drain(consumer, count))
    finally:
        consumer.close()


@pytest.fixture
def topics(live_platform: LocalPlatform, topic: str) -> Iterator[list[str]]:
    admin = Admin(live_platform.endpoint)
    names = [f"{topic}-a", f"{topic}-b"]
    for name in names:
        admin.create_topic(name, 2)
    yield names


def test_a_commit_spans_two_topics_and_partitions_for_every_reader(
        bootstrap: str, live_platform: LocalPlatform, topics: list[str]) -> None:
    producer = _producer(bootstrap, f"{topics[0]}-tx")
    producer.begin_transaction()
    sent = []
    for name in topics:
        for partition in (0, 1):
            value = f"{name}/{partition}".encode()
            producer.produce(name, value, partition=partition)
            sent.append(value)
    producer.commit_transaction(20)
    assert _values(bootstrap, topics, 4, "read_committed") == sorted(sent)
    with SdkConsumer(*topics, endpoint=live_platform.endpoint, group_id=f"sdk-{topics[0]}",
                     auto_offset_reset="earliest") as sdk:
        seen: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            seen += [r.value for r in sdk.poll(timeout=1.0)]
    assert sorted(seen) == sorted(sent)


def test_an_aborted_transaction_is_never_read_committed(
        bootstrap: str, topics: list[str]) -> None:
    producer = _producer(bootstrap, f"{topics[0]}-tx")
    producer.begin_transaction()
    producer.produce(topics[0], b"kept-1", partition=0)
    producer.commit_transaction(20)
    producer.begin_transaction()
    for partition in (0, 1):
        producer.produce(topics[0], f"dropped-{partition}".encode(), partition=partition)
        producer.produce(topics[1], f"dropped-{partition}".encode(), partition=partition)
    producer.flush(20)
    producer.abort_transaction(20)
    producer.begin_transaction()
    producer.produce(topics[1], b"kept-2", partition=1)
    producer.commit_transaction(20)
    assert _values(bootstrap, topics, 2, "read_committed") == [b"kept-1", b"kept-2"]
    everything = _values(bootstrap, topics, 6, "read_uncommitted")
    assert everything == sorted([b"kept-1", b"kept-2"] + [b"dropped-0", b"dropped-1"] * 2)


def test_consume_transform_produce_commits_the_group_offsets_with_the_output(
        bootstrap: str, live_platform: LocalPlatform, topics: list[str]) -> None:
    source, sink = topics
    seed = _producer(bootstrap, f"{source}-seed")
    seed.begin_transaction()
    for n in range(6):
        seed.produce(source, f"order-{n}".encode(), partition=n % 2)
    seed.commit_transaction(20)

    group = f"enricher-{source}"
    consumer = _consumer(bootstrap, group)
    consumer.subscribe([source])
    producer = _producer(bootstrap, f"{source}-enricher")
    inputs = _drain(consumer, 6, settle=0.5)
    assert len(inputs) == 6
    producer.begin_transaction()
    for msg in inputs:
        producer.produce(sink, msg.value() + b"-enriched", partition=msg.partition())
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 20)
    producer.commit_transaction(20)

    committed = consumer.committed([TopicPartition(source, 0), TopicPartition(source, 1)], 10)
    assert sorted(tp.offset for tp in committed) == [3, 3]
    snapshot = live_platform.engine().groups.snapshot(group)
    assert {tp.partition: lease.committed for tp, lease in snapshot.leases.items()} == \
        {0: 3, 1: 3}
    consumer.close()
    assert _values(bootstrap, [sink], 6, "read_committed") == \
        sorted(f"order-{n}-enriched".encode() for n in range(6))


def _member_and_producer(bootstrap: str, source: str, group: str, sink: str
                         ) -> tuple[Consumer, Producer]:
    """A member of ``group`` that read one record of ``source``, and a transactional
    producer inside a transaction that wrote one record to ``sink``."""
    seed = _producer(bootstrap, f"{group}-seed")
    seed.begin_transaction()
    seed.produce(source, b"in", partition=0)
    seed.commit_transaction(20)
    consumer = _consumer(bootstrap, group)
    consumer.subscribe([source])
    assert len(_drain(consumer, 1, settle=0.2)) == 1
    producer = _producer(bootstrap, f"{group}-producer")
    producer.begin_transaction()
    producer.produce(sink, b"out", partition=0)
    return consumer, producer


def test_offsets_of_an_aborted_transaction_are_not_committed(
        bootstrap: str, topics: list[str]) -> None:
    source = topics[0]
    group = f"aborting-{source}"
    consumer, producer = _member_and_producer(bootstrap, source, group, topics[1])
    producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                         consumer.consumer_group_metadata(), 20)
    producer.abort_transaction(20)
    committed = consumer.committed([TopicPartition(source, 0)], 10)
    assert committed[0].offset < 0  # nothing committed
    consumer.close()


def test_a_rebalance_before_the_commit_aborts_the_whole_transaction(
        bootstrap: str, live_platform: LocalPlatform, topics: list[str]) -> None:
    """Offsets sent at generation g, the group at g+1 by EndTxn: nothing is committed,
    commit_transaction is an abortable error, and the producer goes on after aborting."""
    source, sink = topics
    group = f"rebalanced-{source}"
    consumer, producer = _member_and_producer(bootstrap, source, group, sink)
    producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                         consumer.consumer_group_metadata(), 20)
    store = live_platform.engine().kafka_groups
    moved = store.load(group)
    assert moved is not None
    moved.generation += 1  # what a rebalance completing meanwhile does
    assert store.save(moved)
    with pytest.raises(KafkaException) as raised:
        producer.commit_transaction(20)
    assert raised.value.args[0].txn_requires_abort()
    producer.abort_transaction(20)
    producer.begin_transaction()
    producer.produce(sink, b"after", partition=1)
    producer.commit_transaction(20)
    consumer.close()
    assert _values(bootstrap, [sink], 1, "read_committed") == [b"after"]
    leases = live_platform.engine().groups.snapshot(group).leases
    assert [lease.committed for lease in leases.values() if lease.committed is not None] == []


def test_a_transaction_that_outlived_its_timeout_is_aborted_and_the_producer_goes_on(
        bootstrap: str, topics: list[str]) -> None:
    producer = _producer(bootstrap, f"{topics[0]}-slow", **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce(topics[0], b"too-late", partition=0)
    producer.flush(10)
    time.sleep(1.5)
    with pytest.raises(KafkaException) as raised:
        producer.commit_transaction(10)
    error: KafkaError = raised.value.args[0]
    assert error.code() == KafkaError.TRANSACTION_ABORTABLE and error.txn_requires_abort()
    producer.abort_transaction(10)
    producer.begin_transaction()
    producer.produce(topics[0], b"in-time", partition=1)
    producer.commit_transaction(10)
    assert _values(bootstrap, [topics[0]], 1, "read_committed") == [b"in-time"]


def test_a_second_producer_with_the_same_id_fences_the_first(
        bootstrap: str, topics: list[str]) -> None:
    tid = f"{topics[0]}-fenced"
    first = _producer(bootstrap, tid)
    first.begin_transaction()
    first.produce(topics[0], b"zombie", partition=0)
    first.flush(20)
    second = _producer(bootstrap, tid)  # fences the first, aborts its open transaction
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(20)
    error: KafkaError = raised.value.args[0]
    assert error.fatal() or error.code() in (KafkaError.PRODUCER_FENCED,
                                             KafkaError.INVALID_PRODUCER_EPOCH), error
    second.begin_transaction()
    second.produce(topics[0], b"successor", partition=0)
    second.commit_transaction(20)
    assert _values(bootstrap, [topics[0]], 1, "read_committed") == [b"successor"]


def test_kafka_python_commits_and_aborts(bootstrap: str, topics: list[str]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topics[0]}-kp")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topics[0], b"kp-kept", partition=0)
    producer.send(topics[1], b"kp-kept", partition=1)
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(topics[0], b"kp-dropped", partition=1)
    producer.flush()
    producer.abort_transaction()
    producer.close()
    assert _values(bootstrap, topics, 2, "read_committed") == [b"kp-kept", b"kp-kept"]


def test_a_transaction_sent_through_one_gateway_commits_through_another(
        live_platform: LocalPlatform, topics: list[str]) -> None:
    """No gateway keeps a transaction in memory: the producer's gateway stops after the
    sends, a fresh one on the same address serves EndTxn and commits all of them."""
    first = KafkaGateway(live_platform.engine(), port=0).start_background()
    port = first.port
    try:
        producer = _producer(first.bootstrap, f"{topics[0]}-moved")
        producer.begin_transaction()
        for name in topics:
            producer.produce(name, f"moved-{name}".encode(), partition=1)
        producer.flush(20)
    finally:
        first.stop()
    second = KafkaGateway(live_platform.engine(), port=port).start_background()
    try:
        producer.commit_transaction(30)
        assert _values(second.bootstrap, topics, 2, "read_committed") == \
            sorted(f"moved-{name}".encode() for name in topics)
    finally:
        second.stop()
