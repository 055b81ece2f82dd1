"""docs/kafka-compatibility.md's kafka-python program runs unchanged against the gateway."""

from __future__ import annotations

import pytest

from streamlet import Admin, TopicPartition
from tests.harness import migration


def test_the_kafka_python_program_runs_unchanged(bootstrap: str, endpoint: str, topic: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, partitions=3)
    group = f"{topic}-billing"
    namespace = migration.run(migration.program(migration.BEFORE), monkeypatch,
                              {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC": topic,
                               "GROUP": group})
    migration.check_outcome(namespace)
    ends = {TopicPartition(topic, info.partition): info.high
            for info in admin.describe_topic(topic).partition_info if info.high}
    assert admin.list_consumer_group_offsets(group) == ends
    admin.close()
