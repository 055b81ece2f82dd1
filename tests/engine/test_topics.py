"""Topic administration in the engine (in-process moto)."""

from __future__ import annotations

import pytest

from streamlet.engine import Engine
from streamlet.errors import (
    InvalidConfig,
    InvalidPartitions,
    InvalidTopicName,
    PartitionNotFound,
    TopicExists,
    TopicNotFound,
)
from tests.batches import make_batch, values


def log_items(engine: Engine) -> int:
    return int(engine._ddb.scan(TableName=engine.names.log_table, Select="COUNT")["Count"])


def test_create_describe_list_delete(engine: Engine) -> None:
    created = engine.create_topic("orders", 3, {"retention.ms": 1000})
    assert (created.name, created.partitions, created.config["retention.ms"]) == ("orders", 3,
                                                                                 "1000")
    engine.create_topic("audit")
    assert engine.list_topics() == ["audit", "orders"]
    described = engine.describe_topic("orders")
    assert [(p.partition, p.low, p.high) for p in described.partition_info] == [
        (0, 0, 0), (1, 0, 0), (2, 0, 0)]
    engine.delete_topic("orders")
    assert engine.list_topics() == ["audit"]
    with pytest.raises(TopicNotFound, match="'orders'"):
        engine.describe_topic("orders")


def test_duplicate_topic_is_refused_and_leaves_the_first_intact(engine: Engine) -> None:
    engine.create_topic("orders", 2)
    engine.append("orders", 1, make_batch(values("v", 3)))
    before = log_items(engine)
    with pytest.raises(TopicExists, match="'orders' already exists"):
        engine.create_topic("orders", 5)
    assert log_items(engine) == before
    assert engine.describe_topic("orders").partitions == 2
    assert engine.watermarks("orders", 1) == (0, 3)


@pytest.mark.parametrize(("name", "partitions", "config", "error"), [
    ("bad name", 1, None, InvalidTopicName),
    ("ok", 0, None, InvalidPartitions),
    ("ok", 1, {"retention.ms": "x"}, InvalidConfig),
    ("ok", 1, {"cleanup.policy": "compact"}, InvalidConfig),
])
def test_invalid_create_writes_nothing(engine: Engine, name: str, partitions: int,
                                       config: dict[str, object] | None,
                                       error: type[Exception]) -> None:
    with pytest.raises(error):
        engine.create_topic(name, partitions, config)
    assert engine.list_topics() == []
    assert log_items(engine) == 0


def test_partitions_grow_and_never_shrink(engine: Engine) -> None:
    engine.create_topic("orders", 2)
    engine.append("orders", 0, make_batch(values("v", 2)))
    assert engine.create_partitions("orders", 4).partitions == 4
    assert engine.watermarks("orders", 0) == (0, 2)  # existing heads untouched
    assert engine.watermarks("orders", 3) == (0, 0)
    with pytest.raises(InvalidPartitions, match="has 4 partitions"):
        engine.create_partitions("orders", 3)
    with pytest.raises(TopicNotFound):
        engine.create_partitions("nope", 3)


def test_delete_seals_then_a_purge_removes_records_and_recreate_starts_empty(
        engine: Engine) -> None:
    engine.create_topic("orders", 1, {"inline.max.bytes": 0})
    engine.append("orders", 0, make_batch(values("v", 5)))
    engine.delete_topic("orders")
    with pytest.raises(TopicNotFound):
        engine.append("orders", 0, make_batch(values("v", 1)))
    assert engine.purge_deleted() == 0  # within the grace: a writer may hold a view
    assert log_items(engine) == 3  # the partition item, the batch and the seal
    assert engine.purge_deleted(force=True) == 1
    assert log_items(engine) == 0
    blobs = engine.blobs._s3.list_objects_v2(Bucket=engine.names.bucket).get("KeyCount")
    assert blobs == 0
    engine.create_topic("orders", 1)
    assert engine.watermarks("orders", 0) == (0, 0)
    assert engine.fetch("orders", 0, 0).batches == []


def test_unknown_topic_and_partition(engine: Engine) -> None:
    engine.create_topic("orders", 2)
    with pytest.raises(TopicNotFound):
        engine.append("nope", 0, make_batch([b"x"]))
    with pytest.raises(PartitionNotFound, match="Partition 2 of topic 'orders'"):
        engine.append("orders", 2, make_batch([b"x"]))
    with pytest.raises(PartitionNotFound):
        engine.fetch("orders", -1, 0)
    with pytest.raises(TopicNotFound):
        engine.delete_topic("nope")


def test_producer_ids_are_unique(engine: Engine) -> None:
    ids = {engine.init_producer_id() for _ in range(5)}
    assert len(ids) == 5


def test_configs_change_after_creation_and_know_their_sources(engine: Engine) -> None:
    engine.create_topic("orders", 2, {"retention.ms": 60_000})
    assert engine.describe_topic("orders").overrides == {"retention.ms"}
    altered = engine.alter_topic_config("orders", {"retention.bytes": 1000,
                                                   "max.message.bytes": "2048"},
                                        ["retention.ms"])
    assert altered.overrides == {"retention.bytes", "max.message.bytes"}
    assert altered.config["retention.ms"] == "604800000"  # back to the default
    with pytest.raises(InvalidConfig, match=r"local\.retention\.ms=600000"):
        engine.alter_topic_config("orders", {"local.retention.ms": 600_000})
    with pytest.raises(InvalidConfig, match="Unknown topic config 'nope'"):
        engine.alter_topic_config("orders", deletes=["nope"])
    dry = engine.alter_topic_config("orders", {"segment.ms": 5000}, validate_only=True)
    assert dry.config["segment.ms"] == "5000"
    assert engine.describe_topic("orders").config["segment.ms"] == "3600000"
    from streamlet.errors import RecordTooLarge

    with pytest.raises(RecordTooLarge, match="2048"):  # the new limit applies at once
        engine.append("orders", 0, make_batch([b"x" * 3000]))


def test_a_lower_local_retention_shortens_how_long_tails_are_vouched_for(
        engine: Engine) -> None:
    engine.create_topic("orders", 1)
    meta = engine.topics.get("orders")
    before = engine.log.state(meta, meta.ref(0)).safe_until
    engine.alter_topic_config("orders", {"local.retention.ms": 4_300_000})
    after = engine.log.state(meta, meta.ref(0)).safe_until
    assert after < before and after - before < -20 * 3600 * 1000
