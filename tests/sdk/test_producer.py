"""kafka-python's producer surface on both transports: futures with callbacks,
serializers, partitions_for, metrics, and batches within the topic's max.message.bytes."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from streamlet import Admin, Producer, Record, RecordMetadata
from streamlet.codec import decode_batch, parse_header
from streamlet.partitioner import murmur2_partition
from streamlet.serializers import (
    AvroDeserializer,
    AvroSerializer,
    json_deserializer,
    json_serializer,
    string_serializer,
)
from streamlet.transport import connect

ORDER = {"type": "record", "name": "Order", "namespace": "shop",
         "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}]}


def stored(endpoint: str, topic: str, partition: int = 0) -> tuple[list[bytes], list[Record]]:
    """The raw batches of one partition and their decoded records."""
    transport = connect(endpoint)
    try:
        batches = transport.fetch(topic, partition, 0, max_bytes=16 * 1024 * 1024).batches
    finally:
        transport.close()
    return batches, [r for b in batches for r in decode_batch(topic, partition, b)]


def test_futures_chain_callbacks_and_get(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic)
    seen: list[object] = []
    with Producer(endpoint) as producer:
        future = (producer.send(topic, b"a")
                  .add_callback(lambda label, meta: seen.append((label, meta.offset)), "ok")
                  .add_errback(seen.append))
        meta = future.get(timeout=30)
        late = producer.send(topic, b"b")
        late.add_done_callback(seen.append)
    assert isinstance(meta, RecordMetadata) and meta.offset == 0
    assert future.is_done and future.succeeded() and not future.failed()
    assert future.value == meta == future.result()
    assert seen == [("ok", 0), late]


def test_json_and_string_serializers_round_trip(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 3)
    when = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    with Producer(endpoint, key_serializer=string_serializer,
                  value_serializer=json_serializer) as producer:
        metas = [producer.send(topic, {"id": i, "at": when}, key=f"customer-{i}")
                 for i in range(6)]
        tombstone = producer.send(topic, None, key="customer-0")
    records = [r for p in range(3) for r in stored(endpoint, topic, p)[1]]
    assert len(records) == 7
    for i, future in enumerate(metas):
        # the partition comes from the serialized key, as a Java client would choose it
        assert future.get().partition == murmur2_partition(f"customer-{i}".encode(), 3)
    by_key = {(r.key, r.offset): json_deserializer(r.value) for r in records}
    assert by_key[(b"customer-4", metas[4].get().offset)] == {
        "id": 4, "at": "2026-11-25T10:00:00+00:00"}
    assert by_key[(b"customer-0", tombstone.get().offset)] is None


def test_avro_round_trips_and_refuses_an_unknown_writer(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic)
    with Producer(endpoint, value_serializer=AvroSerializer(ORDER)) as producer:
        producer.send(topic, {"id": 1, "item": "lamp"})
    (record,) = stored(endpoint, topic)[1]
    assert AvroDeserializer(ORDER)(record.value) == {"id": 1, "item": "lamp"}

    evolved = {**ORDER, "fields": [*ORDER["fields"],  # type: ignore[list-item]
                                   {"name": "qty", "type": "int", "default": 1}]}
    assert AvroDeserializer(evolved, writer_schemas=[ORDER])(record.value) == {
        "id": 1, "item": "lamp", "qty": 1}
    with pytest.raises(Exception, match="unknown Avro schema"):
        AvroDeserializer(evolved)(record.value)


def test_partitions_for_lists_the_partition_ids(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 5)
    with Producer(endpoint) as producer:
        assert producer.partitions_for(topic) == {0, 1, 2, 3, 4}


def test_metrics_count_what_was_sent(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 2)
    with Producer(endpoint) as producer:
        for i in range(50):
            producer.send(topic, b"x" * 100, key=str(i).encode())
        producer.flush()
        metrics = producer.metrics()["producer-metrics"]
    assert metrics["record-send-total"] == 50 and metrics["record-error-total"] == 0
    assert metrics["byte-total"] > 0 and metrics["record-send-rate"] > 0
    assert 0 < metrics["batch-size-avg"] <= metrics["batch-size-max"]
    assert metrics["buffer-available-bytes"] == metrics["buffer-total-bytes"]


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_batches_stay_within_the_topics_max_message_bytes(endpoint: str, topic: str,
                                                          codec: str) -> None:
    """A producer configured for 1 MiB batches still sends batches the topic accepts,
    random (incompressible) values included."""
    Admin(endpoint).create_topic(topic, config={"max.message.bytes": 2048})
    with Producer(endpoint, batch_size=1024 * 1024, linger_ms=200,
                  compression_type=codec) as producer:
        futures = [producer.send(topic, os.urandom(100)) for _ in range(100)]
    assert all(f.exception() is None for f in futures)
    batches, records = stored(endpoint, topic)
    assert len(records) == 100 and len(batches) > 5
    assert all(parse_header(b).size <= 2048 for b in batches)
