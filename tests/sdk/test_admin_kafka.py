"""kafka-python's KafkaAdminClient names on both transports: create_topics and
delete_topics with lists, describe_configs with sources, alter_configs (replace) and
incremental_alter_configs (SET, DELETE), and the group offset calls."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from streamlet import (
    Admin,
    Consumer,
    GroupActive,
    InvalidConfig,
    InvalidRequest,
    NewTopic,
    Producer,
    RecordTooLarge,
    TopicExists,
    TopicNotFound,
    TopicPartition,
)


@dataclass
class ConfigResource:
    """The shape of kafka-python's ConfigResource (resource_type, name, configs)."""

    resource_type: str
    name: str
    configs: list[str] | None = None


def test_create_topics_checks_all_first_then_creates_each(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    created = admin.create_topics([NewTopic(f"{topic}-a", 3, topic_configs={"retention.ms": 1000}),
                                   f"{topic}-b"])
    assert {n: d.partitions for n, d in created.items()} == {f"{topic}-a": 3, f"{topic}-b": 1}
    assert admin.describe_topic(f"{topic}-a").config["retention.ms"] == "1000"

    with pytest.raises(InvalidConfig):  # one bad config: nothing at all is created
        admin.create_topics([NewTopic(f"{topic}-c", 1),
                             NewTopic(f"{topic}-d", 1, topic_configs={"nope": 1})])
    with pytest.raises(InvalidRequest, match="replica_assignments"):
        admin.create_topics([NewTopic(f"{topic}-c", replica_assignments={0: [1, 2]})])
    assert f"{topic}-c" not in admin.list_topics()

    with pytest.raises(TopicExists):  # the others are still created, as Kafka does
        admin.create_topics([NewTopic(f"{topic}-a", 1), NewTopic(f"{topic}-e", 2)])
    assert f"{topic}-e" in admin.list_topics()
    outcome = admin.create_topics([f"{topic}-a", f"{topic}-f"], raise_errors=False)
    assert isinstance(outcome[f"{topic}-a"], TopicExists)
    assert outcome[f"{topic}-f"].partitions == 1  # type: ignore[union-attr]


def test_create_topics_validate_only_creates_nothing(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic)
    dry = admin.create_topics([NewTopic(f"{topic}-new", 4, replication_factor=3)],
                              validate_only=True)
    assert dry[f"{topic}-new"].partitions == 4  # type: ignore[union-attr]
    assert f"{topic}-new" not in admin.list_topics()
    with pytest.raises(TopicExists):
        admin.create_topics([topic], validate_only=True)


def test_delete_topics_deletes_each_and_reports_the_missing(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topics([f"{topic}-a", f"{topic}-b"])
    with pytest.raises(TopicNotFound):
        admin.delete_topics([f"{topic}-a", f"{topic}-missing", f"{topic}-b"])
    assert not {f"{topic}-a", f"{topic}-b"} & set(admin.list_topics())
    assert admin.delete_topics([f"{topic}-missing"], raise_errors=False)[
        f"{topic}-missing"].__class__ is TopicNotFound
    with pytest.raises(InvalidRequest, match="list of topic names"):
        admin.delete_topics(topic)


def test_describe_configs_reports_each_values_source(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, config={"retention.ms": 604800000, "segment.ms": 60000})
    described = admin.describe_configs([topic])[topic]
    assert {k for k, e in described.items() if not e.is_default} == {"retention.ms",
                                                                     "segment.ms"}
    retention = described["retention.ms"]
    assert (retention.value, retention.source) == ("604800000", "DYNAMIC_TOPIC_CONFIG")
    assert described["inline.max.bytes"].source == "DEFAULT_CONFIG"
    only = admin.describe_configs([ConfigResource("TOPIC", topic, ["segment.ms"])])
    assert list(only[topic]) == ["segment.ms"]
    with pytest.raises(InvalidRequest, match="no brokers"):
        admin.describe_configs([ConfigResource("BROKER", "1")])


def test_alter_configs_replaces_every_override(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, config={"retention.ms": 60000, "segment.ms": 60000})
    result = admin.alter_configs({topic: {"compression.type": "gzip"}})
    assert result[topic].overrides == {"compression.type"}
    config = admin.describe_topic(topic).config
    assert (config["compression.type"], config["retention.ms"], config["segment.ms"]) == (
        "gzip", "604800000", "3600000")


def test_incremental_alter_configs_sets_and_deletes(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, config={"retention.ms": 60000, "segment.ms": 60000})
    admin.incremental_alter_configs({topic: {"retention.ms": ("SET", 3_600_000),
                                             "segment.ms": ("DELETE", None)}})
    described = admin.describe_configs([topic])[topic]
    assert (described["retention.ms"].value, described["retention.ms"].source) == (
        "3600000", "DYNAMIC_TOPIC_CONFIG")
    assert described["segment.ms"].is_default
    dry = admin.incremental_alter_configs({topic: {"retention.ms": ("DELETE", None)}},
                                          validate_only=True)
    assert dry[topic].overrides == frozenset() and dry[topic].config["retention.ms"] == (
        "604800000")
    assert admin.describe_topic(topic).overrides == {"retention.ms"}  # nothing written
    with pytest.raises(InvalidConfig, match="APPEND"):
        admin.incremental_alter_configs({topic: {"retention.ms": ("APPEND", 1)}})


def test_every_topic_is_validated_before_any_is_altered(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topics([f"{topic}-a", f"{topic}-b"])
    with pytest.raises(InvalidConfig):
        admin.incremental_alter_configs({f"{topic}-a": {"retention.ms": ("SET", 1000)},
                                         f"{topic}-b": {"retention.ms": ("SET", -7)}})
    assert admin.describe_topic(f"{topic}-a").overrides == frozenset()


def test_a_lower_max_message_bytes_applies_to_the_next_producer(endpoint: str,
                                                                topic: str) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic)
    admin.incremental_alter_configs({topic: {"max.message.bytes": ("SET", 1024)}})
    with Producer(endpoint) as producer, pytest.raises(RecordTooLarge):
        producer.send(topic, b"x" * 2000)


def test_group_offsets_are_listed_and_altered_while_the_group_is_idle(endpoint: str,
                                                                      topic: str) -> None:
    admin, group = Admin(endpoint), f"g-{topic}"
    admin.create_topic(topic, 2)
    with Producer(endpoint) as producer:
        for i in range(10):
            producer.send(topic, b"v", partition=i % 2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    assert admin.alter_consumer_group_offsets(group, {tp0: 3, tp1: 5}) == {tp0: 3, tp1: 5}
    assert admin.list_consumer_group_offsets(group) == {tp0: 3, tp1: 5}
    admin.alter_consumer_group_offsets(group, {tp0: 1})  # backwards, as Kafka allows
    assert admin.list_consumer_group_offsets(group, partitions=[tp0]) == {tp0: 1}

    member = Consumer(topic, endpoint=endpoint, group_id=group, session_timeout_ms=1500,
                      enable_auto_commit=False)
    deadline = time.monotonic() + 15
    while len(member.assignment()) < 2 and time.monotonic() < deadline:
        member.poll(timeout=0.05)
    with pytest.raises(GroupActive):
        admin.alter_consumer_group_offsets(group, {tp0: 0})
    member.close()
    assert admin.list_consumer_group_offsets(group)[tp0] == 1
    with pytest.raises(InvalidRequest, match="non-negative"):
        admin.alter_consumer_group_offsets(group, {tp0: -1})
