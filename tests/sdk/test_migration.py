"""docs/kafka-compatibility.md's kafka-python program, ported in at most four lines, runs
on both transports and leaves the group's commits where Kafka would."""

from __future__ import annotations

import pytest

from streamlet import Admin, TopicPartition
from tests.harness import migration


def test_the_port_changes_at_most_four_lines() -> None:
    before, after = migration.program(migration.BEFORE), migration.program(migration.AFTER)
    assert "kafka" in before and "kafka" not in after.replace("Kafka", "")
    assert 0 < migration.edited_lines(before, after) <= 4


def test_the_ported_program_runs(endpoint: str, topic: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    admin = Admin(endpoint)
    admin.create_topic(topic, partitions=3)
    group = f"{topic}-billing"
    namespace = migration.run(migration.program(migration.AFTER), monkeypatch,
                              {"STREAMLET_ENDPOINT": endpoint, "TOPIC": topic, "GROUP": group})
    migration.check_outcome(namespace)
    # the commits inside the loop reached the group: every partition's end
    ends = {TopicPartition(topic, info.partition): info.high
            for info in admin.describe_topic(topic).partition_info if info.high}
    assert admin.list_consumer_group_offsets(group) == ends
    admin.close()
