"""kafka-python's KafkaConsumer surface on Streamlet, over both transports.

Deserializers, poll(timeout_ms=, max_records=) and its records-by-partition result,
subscribe's checks and patterns, pause/resume, offset lookups, OffsetAndMetadata and
async commits, close(autocommit=False), max_poll_interval_ms, and assign() with a group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from streamlet import (
    Admin,
    CommitFailed,
    Consumer,
    ConsumerRecords,
    InvalidRequest,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    Producer,
    Record,
    TopicPartition,
)
from streamlet.errors import ConsumerIllegalState

SESSION_MS = 1500


def drain(consumer: Consumer, n: int, timeout: float = 10.0) -> list[Record]:
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += consumer.poll(timeout_ms=200)
    return out


def pump(consumers: list[Consumer], until: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(timeout_ms=50)
        if until():
            return
    raise AssertionError("condition not reached in time")


def produce(endpoint: str, topic: str, values: list[bytes], **kw: object) -> None:
    with Producer(endpoint) as producer:
        for value in values:
            producer.send(topic, value, **kw)  # type: ignore[arg-type]


def test_deserializers_and_records_by_partition(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 2)
    with Producer(endpoint) as producer:
        for i in range(6):
            producer.send(topic, json.dumps({"n": i}), key=f"k{i}", partition=i % 2)
        producer.send(topic, None, partition=0)  # a tombstone: None stays None
    consumer = Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest",
                        key_deserializer=bytes.decode, value_deserializer=json.loads)
    first = consumer.poll(timeout_ms=5000, max_records=2)
    assert isinstance(first, ConsumerRecords) and 1 <= len(first) <= 2
    records = first + drain(consumer, 7 - len(first))
    assert sorted((r.key, r.value["n"]) for r in records if r.value) == [
        (f"k{i}", i) for i in range(6)]
    assert [(r.key, r.value) for r in records if r.offset == 3] == [(None, None)]
    polled = ConsumerRecords(records)
    for tp, rs in polled.items():  # kafka-python's habit
        assert [r.offset for r in rs] == list(range(len(rs)))
        assert all(r.partition == tp.partition for r in rs)
    assert polled.keys() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    consumer.close()


def test_a_failing_deserializer_stops_at_its_record(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    produce(endpoint, topic, [b'{"n": 0}', b"oops", b'{"n": 2}'])
    tp = TopicPartition(topic, 0)
    consumer = Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest",
                        value_deserializer=json.loads)
    assert [r.value for r in drain(consumer, 1)] == [{"n": 0}]  # what came before, first
    for _ in range(2):  # then the error, again until the application seeks past it
        with pytest.raises(json.JSONDecodeError) as raised:
            consumer.poll(timeout_ms=2000)
        assert f"{topic} partition 0 offset 1" in "".join(raised.value.__notes__)
        assert consumer.position(tp) == 1
    consumer.seek(tp, 2)
    assert [r.value for r in drain(consumer, 1)] == [{"n": 2}]
    consumer.close()


def test_subscribe_takes_a_list_and_unsubscribe_stops_reading(endpoint: str, topic: str
                                                             ) -> None:
    Admin(endpoint).create_topic(topic, 3)
    consumer = Consumer(endpoint=endpoint)
    with pytest.raises(TypeError, match=r"subscribe\(\["):
        consumer.subscribe(topic)
    assert consumer.subscription() is None
    with pytest.raises(ConsumerIllegalState, match="not both"):
        consumer.subscribe([topic], pattern=".*")
    consumer.subscribe([topic])
    assert consumer.subscription() == {topic} and len(consumer.assignment()) == 3
    with pytest.raises(ConsumerIllegalState, match="unsubscribe"):
        consumer.assign([TopicPartition(topic, 0)])
    assert topic in consumer.topics()
    assert consumer.partitions_for_topic(topic) == {0, 1, 2}
    assert consumer.partitions_for_topic(f"{topic}-missing") is None
    consumer.unsubscribe()
    assert consumer.subscription() is None and consumer.assignment() == set()
    consumer.assign([TopicPartition(topic, 1)])
    with pytest.raises(ConsumerIllegalState, match="unsubscribe"):
        consumer.subscribe([topic])
    consumer.close()


def test_a_pattern_subscription_reads_topics_created_later(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    consumer = Consumer(endpoint=endpoint, auto_offset_reset="earliest", metadata_max_age_ms=0)
    consumer.subscribe(pattern=f"{topic}-[ab]")
    assert consumer.poll(timeout_ms=100) == [] and consumer.subscription() == set()
    admin.create_topic(f"{topic}-a", 1)
    admin.create_topic(f"{topic}-c", 1)  # does not match
    produce(endpoint, f"{topic}-a", [b"a"])
    produce(endpoint, f"{topic}-c", [b"c"])
    assert [(r.topic, r.value) for r in drain(consumer, 1)] == [(f"{topic}-a", b"a")]
    admin.create_topic(f"{topic}-b", 2)
    produce(endpoint, f"{topic}-b", [b"b"])
    assert [(r.topic, r.value) for r in drain(consumer, 1)] == [(f"{topic}-b", b"b")]
    assert consumer.subscription() == {f"{topic}-a", f"{topic}-b"}
    with pytest.raises(InvalidRequest, match="topic_pattern"):
        consumer.subscribe(pattern="(a)\\1")  # RE2: no backreferences
    consumer.close()


def test_a_group_member_with_a_pattern_joins_when_topics_match(endpoint: str, topic: str
                                                               ) -> None:
    admin, group = Admin(endpoint), f"pattern-{topic}"
    assigned: list[TopicPartition] = []

    class Listener:  # kafka-python's ConsumerRebalanceListener shape
        def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None: ...

        def on_partitions_assigned(self, partitions: list[TopicPartition]) -> None:
            assigned.extend(partitions)

    member = Consumer(endpoint=endpoint, group_id=group, session_timeout_ms=SESSION_MS,
                      auto_offset_reset="earliest", metadata_max_age_ms=0)
    member.subscribe(pattern=f"{topic}-.*", listener=Listener())
    member.poll(timeout_ms=100)
    assert group not in admin.list_groups()  # matches nothing yet: not in the group
    admin.create_topic(f"{topic}-x", 2)
    pump([member], lambda: len(member.assignment()) == 2)
    assert sorted(assigned) == [TopicPartition(f"{topic}-x", p) for p in range(2)]
    member.unsubscribe()  # leaves at once: nothing owned, no member item
    assert member.assignment() == set() and member.subscription() is None
    assert {r.consumer_id for r in admin.describe_group(group)} == {None}
    member.subscribe([f"{topic}-x"])  # and joins again
    pump([member], lambda: len(member.assignment()) == 2)
    member.close()


def test_pause_and_resume(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 2)
    with Producer(endpoint) as producer:
        for p in (0, 1):
            producer.send(topic, f"p{p}", partition=p)
    consumer = Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest")
    tp0 = TopicPartition(topic, 0)
    consumer.pause(tp0)
    assert consumer.paused() == {tp0}
    assert [r.partition for r in drain(consumer, 2, timeout=2)] == [1]
    consumer.resume(tp0)
    assert consumer.paused() == set()
    assert [r.partition for r in drain(consumer, 1)] == [0]
    with pytest.raises(InvalidRequest, match="not assigned"):
        consumer.pause(TopicPartition(topic, 5))
    consumer.close()


def test_offsets_highwater_and_times(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    tp = TopicPartition(topic, 0)
    with Producer(endpoint, linger_ms=0) as producer:
        for ts in (1000, 2000, 3000):
            producer.send(topic, str(ts), timestamp_ms=ts).result(timeout=10)
    consumer = Consumer(endpoint=endpoint, auto_offset_reset="earliest", max_poll_records=1)
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: 3}
    times = consumer.offsets_for_times({tp: 1500, TopicPartition(topic, 0): 1500})
    assert times == {tp: OffsetAndTimestamp(1, 2000)} and times[tp].timestamp == 2000  # type: ignore[union-attr]
    assert consumer.offsets_for_times({tp: 3001}) == {tp: None}
    with pytest.raises(InvalidRequest):
        consumer.offsets_for_times({tp: -1})
    consumer.assign([tp])
    assert consumer.highwater(tp) is None  # nothing fetched yet
    assert [r.offset for r in consumer.poll(timeout_ms=5000)] == [0]
    assert consumer.highwater(tp) == 3  # lag = highwater - position
    assert consumer.highwater(tp) - consumer.position(tp) == 2  # type: ignore[operator]
    consumer.close()


def test_a_position_deep_inside_a_batch_larger_than_fetch_max_bytes(endpoint: str, topic: str
                                                                    ) -> None:
    Admin(endpoint).create_topic(topic, 1, {"inline.max.bytes": 358400})
    with Producer(endpoint, linger_ms=500, compression_type="none") as producer:
        for i in range(100):
            producer.send(topic, i.to_bytes(2, "big") * 500)  # one batch of 100 KB
    consumer = Consumer(endpoint=endpoint, fetch_max_bytes=10_000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 60)  # 60 KB of records before it in its batch
    assert [r.offset for r in drain(consumer, 40)] == list(range(60, 100))
    consumer.close()


def test_commit_offset_and_metadata_async_commits_and_close_without_commit(
        endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 1)
    produce(endpoint, topic, [str(i).encode() for i in range(10)])
    tp, group = TopicPartition(topic, 0), f"commits-{topic}"
    member = Consumer(topic, endpoint=endpoint, group_id=group, auto_offset_reset="earliest",
                      session_timeout_ms=SESSION_MS, auto_commit_interval_ms=60_000)
    pump([member], lambda: member.assignment() == {tp} and member.position(tp) == 10)
    member.commit({tp: OffsetAndMetadata(3, "batch 1")})
    assert member.committed(tp) == 3
    assert member.committed(tp, metadata=True) == OffsetAndMetadata(3, "batch 1")
    done: list[tuple[dict[TopicPartition, OffsetAndMetadata], Exception | None]] = []
    accepted = member.commit_async({tp: 5},
                                   callback=lambda offsets, error: done.append((offsets, error)))
    refused = member.commit_async({TopicPartition(topic, 9): 1},
                                  callback=lambda offsets, error: done.append((offsets, error)))
    # wait for both: the refusal needs no request and may finish before the first
    accepted.result(timeout=10)
    assert isinstance(refused.exception(timeout=10), CommitFailed)
    assert done == []  # callbacks wait for the application's thread
    member.poll(timeout_ms=100)  # callbacks run inside poll, on this thread
    assert done[0] == ({tp: OffsetAndMetadata(5, "")}, None) and isinstance(done[1][1],
                                                                            CommitFailed)
    assert member.committed(tp) == 5
    member.close(autocommit=False)  # the position, 10, is not committed
    assert member.committed(tp) == 5


def test_a_member_that_stops_polling_loses_its_partitions_and_rejoins(endpoint: str,
                                                                      topic: str) -> None:
    Admin(endpoint).create_topic(topic, 3)
    group, lost = f"stall-{topic}", []
    stalled = Consumer(topic, endpoint=endpoint, group_id=group, session_timeout_ms=SESSION_MS,
                       max_poll_interval_ms=1000, on_lost=lost.extend)
    pump([stalled], lambda: len(stalled.assignment()) == 3)
    stopped = time.monotonic()  # its processing loop hangs: no poll, heartbeats go on
    newcomer = Consumer(topic, endpoint=endpoint, group_id=group, session_timeout_ms=SESSION_MS)
    pump([newcomer], lambda: len(newcomer.assignment()) == 3, timeout=10)
    # max_poll_interval_ms, then a heartbeat interval; slack for a loaded 2-core machine
    assert time.monotonic() - stopped < 1.0 + SESSION_MS / 1000 + 4.0
    with pytest.raises(CommitFailed, match="max_poll_interval_ms"):
        stalled.commit()
    stalled.poll(timeout_ms=50)  # rejoins; what it held is reported lost
    assert sorted(lost) == [TopicPartition(topic, p) for p in range(3)]
    pump([stalled, newcomer], lambda: sorted(len(c.assignment()) for c in (stalled, newcomer))
         == [1, 2])
    stalled.close()
    newcomer.close()


def test_assign_with_a_group_commits_where_no_member_reads(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 2)
    produce(endpoint, topic, [str(i).encode() for i in range(10)], partition=0)
    tp, group = TopicPartition(topic, 0), f"simple-{topic}"
    tool = Consumer(endpoint=endpoint, group_id=group, auto_offset_reset="earliest",
                    enable_auto_commit=False)
    tool.assign([tp])
    assert len(drain(tool, 10)) == 10
    tool.commit()
    assert tool.committed(tp) == 10
    tool.commit({tp: OffsetAndMetadata(4, "rewind")})
    again = Consumer(endpoint=endpoint, group_id=group, enable_auto_commit=False)
    again.assign([tp])
    assert again.position(tp) == 4  # a manually assigned group consumer starts there
    member = Consumer(topic, endpoint=endpoint, group_id=group, session_timeout_ms=SESSION_MS)
    pump([member], lambda: len(member.assignment()) == 2)
    with pytest.raises(CommitFailed, match="member of the group reads"):
        tool.commit({tp: 6})
    assert tool.committed(tp) == 4
    member.close()  # gives its partitions back: the simple consumer may commit again
    tool.commit({tp: 6})
    assert again.committed(tp) == 6
    tool.close()
    again.close()


def test_consumer_options_are_checked(endpoint: str) -> None:
    for bad in ({"isolation_level": "read_dirty"}, {"max_poll_interval_ms": 0},
                {"value_deserializer": "json"}, {"max_poll_records": 0}):
        with pytest.raises(InvalidRequest):
            Consumer(endpoint=endpoint, **bad)  # type: ignore[arg-type]
    consumer = Consumer(endpoint=endpoint, isolation_level="read_uncommitted")
    for kwargs in ({"timeout": 1, "timeout_ms": 5}, {"timeout_ms": -1}, {"max_records": 0}):
        with pytest.raises(InvalidRequest):
            consumer.poll(**kwargs)  # type: ignore[arg-type]
    assert consumer.poll(timeout_ms=0) == [] and consumer.poll(0) == []
    consumer.close()
