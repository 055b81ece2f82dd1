"""confluent-kafka (librdkafka 2.x) against the gateway: every codec in a group with commits
and seeks, an idempotent producer under injected faults, partitioning that agrees with
kafka-python and the SDK, the admin APIs, and read_committed over the SDK's transactions
(transactional Kafka producers: test_transactions.py)."""

from __future__ import annotations

import random
import time

import pytest
from confluent_kafka import (
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)
from kafka.partitioner.default import murmur2

from streamlet.kafka import KafkaGateway
from streamlet.local import LocalPlatform
from streamlet.partitioner import murmur2_partition
from streamlet.validation import decode_records
from tests.chaos.scenario import SERVER_FAULTS, faulty_engine
from tests.harness.faults import FaultPlan

from .conftest import eventually

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
QUIET = {"log_level": 3}


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **QUIET})


def _create(admin: AdminClient, topic: str, partitions: int) -> None:
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(10)


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
             **config: object) -> list:
    delivered: list = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "partitioner": "murmur2_random", **QUIET, **config})
    for key, value in records:
        producer.produce(topic, value, key, headers=[("k", key)],
                         on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(30) == 0
    assert all(err is None for err, _ in delivered)
    return [msg for _, msg in delivered]


def _consume(consumer: Consumer, count: int, timeout: float = 20.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg)
    return got


def test_every_codec_round_trips_in_a_group_with_commits_seeks_and_a_restart(
        bootstrap: str, admin: AdminClient, topic: str) -> None:
    _create(admin, topic, 3)
    sent = {}
    for codec in CODECS:
        records = [(f"key-{i}".encode(), f"{codec}-{i}".encode()) for i in range(10)]
        for msg in _produce(bootstrap, topic, records, **{"compression.type": codec}):
            sent[(msg.partition(), msg.offset())] = (msg.key(), msg.value())
        time.sleep(0.02)
    group = {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
             "auto.offset.reset": "earliest", "enable.auto.commit": False, **QUIET}
    consumer = Consumer(group)
    consumer.subscribe([topic])
    got = _consume(consumer, 50)
    assert {(m.partition(), m.offset()): (m.key(), m.value()) for m in got} == sent
    assert all(m.headers() == [("k", m.key())] for m in got)
    consumer.commit(asynchronous=False)

    tp = max(range(3), key=lambda p: sum(1 for m in got if m.partition() == p))
    mine = sorted((m for m in got if m.partition() == tp), key=lambda m: m.offset())
    consumer.seek(TopicPartition(topic, tp, mine[1].offset()))  # by offset
    again = _consume(consumer, 1)
    assert again[0].offset() == mine[1].offset()
    middle = mine[len(mine) // 2]
    (found,) = consumer.offsets_for_times(
        [TopicPartition(topic, tp, middle.timestamp()[1])], 10)  # by timestamp
    assert found.offset <= middle.offset()
    assert all(m.timestamp()[1] < middle.timestamp()[1] for m in mine
               if m.offset() < found.offset)
    consumer.close()

    restarted = Consumer(group)
    restarted.subscribe([topic])
    _produce(bootstrap, topic, [(b"late", b"after-restart")])
    after = _consume(restarted, 2, timeout=6)
    assert [m.value() for m in after] == [b"after-restart"]
    restarted.close()


def test_keys_land_where_kafka_python_and_the_sdk_put_them(
        bootstrap: str, admin: AdminClient, topic: str) -> None:
    _create(admin, topic, 7)
    keys = [f"user-{i}".encode() for i in range(200)]
    delivered = _produce(bootstrap, topic, [(k, b"x") for k in keys])
    for msg in delivered:
        key = msg.key()
        kafka_python = (murmur2(key) & 0x7FFFFFFF) % 7
        assert msg.partition() == kafka_python == murmur2_partition(key, 7)


def test_an_idempotent_producer_writes_no_duplicates_under_faults(
        live_platform: LocalPlatform, topic: str) -> None:
    """Faults under the gateway (throttles, drops, lost replies, 500s from DynamoDB) and
    replies the gateway loses after appending (the connection dropped, its producer
    memory gone as if another gateway took the retry)."""
    live_platform.engine().create_topic(topic, 2)
    plan = FaultPlan(seed=15, rates=SERVER_FAULTS)
    gateway = KafkaGateway(faulty_engine(live_platform, plan), port=0).start_background()
    answer = gateway._answer
    rng = random.Random(15)

    async def lossy(session, frame):  # type: ignore[no-untyped-def]
        reply = await answer(session, frame)
        if frame[:2] == b"\x00\x00" and rng.random() < 0.1:  # a Produce, appended
            gateway.data.producers = type(gateway.data.producers)()
            session.closing = True  # its reply is lost with the connection
            return None
        return reply

    gateway._answer = lossy  # type: ignore[method-assign]
    try:
        values = [f"v{i}".encode() for i in range(300)]
        producer = Producer({"bootstrap.servers": gateway.bootstrap, "enable.idempotence": True,
                             "linger.ms": 2, "batch.num.messages": 10, **QUIET})
        for i, value in enumerate(values):
            producer.produce(topic, value, f"k{i % 13}".encode())
            producer.poll(0)
        assert producer.flush(60) == 0
    finally:
        gateway.stop()
    assert plan.counts()["ok"] < sum(plan.counts().values())  # faults did happen
    engine = live_platform.engine()
    seen = []
    for partition in range(2):
        offset, high = 0, engine.watermarks(topic, partition)[1]
        while offset < high:
            for batch in engine.fetch(topic, partition, offset).batches:
                records, _ = decode_records(topic, partition, batch, 1 << 30)
                seen += [r.value for r in records if r.offset >= offset]
                offset = records[-1].offset + 1
    assert sorted(seen) == sorted(values)  # every record once: none lost, none twice


def test_admin_apis(bootstrap: str, admin: AdminClient, topic: str) -> None:
    _create(admin, topic, 2)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].is_default
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "86400000",
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(10)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "86400000"
    assert not configs["retention.ms"].is_default

    legacy = ConfigResource(ConfigResource.Type.TOPIC, topic,
                            set_config={"retention.bytes": "1048576"})
    admin.alter_configs([legacy])[legacy].result(10)  # AlterConfigs: the whole set
    configs = admin.describe_configs([legacy])[legacy].result(10)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.ms"].is_default  # not in the new set: back to its default

    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(10)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 4
    with pytest.raises(KafkaException):
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(10)

    _produce(bootstrap, topic, [(b"a", b"1"), (b"a", b"2"), (b"a", b"3")])
    partition = murmur2_partition(b"a", 4)
    done = admin.delete_records([TopicPartition(topic, partition, 2)])
    (result,) = done.values()
    assert result.result(10).low_watermark == 2
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"a-{topic}", **QUIET})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
    assert (low, high) == (2, 3)
    consumer.commit(offsets=[TopicPartition(topic, partition, 3)], asynchronous=False)
    consumer.close()

    groups = admin.list_consumer_groups().result(10)
    assert f"a-{topic}" in {g.group_id for g in groups.valid}
    described = admin.describe_consumer_groups([f"a-{topic}"])[f"a-{topic}"].result(10)
    assert described.group_id == f"a-{topic}" and not described.members
    admin.delete_consumer_groups([f"a-{topic}"])[f"a-{topic}"].result(10)
    admin.delete_topics([topic])[topic].result(10)
    eventually(lambda: topic not in admin.list_topics(timeout=10).topics, what="deletion")


def test_read_committed_sees_only_committed_sdk_transactions(
        bootstrap: str, live_platform: LocalPlatform, topic: str) -> None:
    """Transactions written with the SDK: librdkafka's default read_committed consumer
    gets the committed records (jumping the offsets of aborted ones), never the aborted or
    open ones; read_uncommitted gets every record as appended."""
    from streamlet import Admin
    from streamlet import Producer as SdkProducer

    endpoint = live_platform.endpoint
    Admin(endpoint).create_topic(topic, 1)
    with SdkProducer(endpoint, transactional_id=f"{topic}-tx", linger_ms=1) as sdk:
        sdk.init_transactions()
        with sdk.transaction():
            sdk.send(topic, b"c1")
        sdk.begin_transaction()
        sdk.send(topic, b"a1")
        sdk.send(topic, b"a2")
        sdk.flush()
        sdk.abort_transaction()
        with sdk.transaction():
            sdk.send(topic, b"c2")
        sdk.begin_transaction()
        sdk.send(topic, b"open")
        sdk.flush()

        def values(isolation: str, count: int) -> list[bytes]:
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{isolation}-"
                                 f"{topic}", "auto.offset.reset": "earliest",
                                 "isolation.level": isolation, **QUIET})
            consumer.subscribe([topic])
            try:
                got = _consume(consumer, count, timeout=15)
                got += _consume(consumer, 1, timeout=1)  # and nothing more
                return [m.value() for m in got]
            finally:
                consumer.close()

        assert values("read_committed", 2) == [b"c1", b"c2"]
        assert values("read_uncommitted", 5) == [b"c1", b"a1", b"a2", b"c2", b"open"]
        sdk.abort_transaction()
