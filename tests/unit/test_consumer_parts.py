"""The consumer's pure parts: what poll returns, commit offsets, deserializing, simple
consumer commits and the max_poll_interval watchdog (in-memory group state)."""

from __future__ import annotations

import json
import time

import pytest

from streamlet.clock import ManualClock
from streamlet.errors import CommitFailed, InvalidRequest
from streamlet.fetching import deserialized
from streamlet.groups.commits import Commits, normalise_offsets
from streamlet.groups.leases import Member
from streamlet.groups.member import commit_unowned
from streamlet.groups.membership import Membership
from streamlet.records import ConsumerRecords, OffsetAndMetadata, Record, TopicPartition
from tests.harness.memgroups import MemoryGroups

A, B = TopicPartition("orders", 0), TopicPartition("orders", 1)


def polled() -> ConsumerRecords:
    return ConsumerRecords([Record("orders", 0, 5, None, b"a"), Record("orders", 1, 9, None, b"b"),
                            Record("orders", 0, 6, None, b"c")])


# ---- ConsumerRecords: one return type for both habits ---------------------------------------

def test_poll_results_keep_every_list_habit() -> None:
    records = polled()
    assert len(records) == 3 and records and not ConsumerRecords()
    assert [r.offset for r in records] == [5, 9, 6]  # the order polled
    assert records[0].offset == 5 and records[-1].value == b"c"
    assert [r.offset for r in records[:2]] == [5, 9]
    assert ConsumerRecords() == [] and records == list(records)
    out: list[Record] = []
    out += records
    assert len(out + records) == 6 and len(records + records) == 6 and len([] + records) == 3  # noqa: RUF005
    assert records[1] in records


def test_poll_results_map_each_partition_to_its_records_like_kafka_python() -> None:
    records = polled()
    assert list(records.keys()) == [A, B]
    assert {tp: [r.offset for r in rs] for tp, rs in records.items()} == {A: [5, 6], B: [9]}
    assert [len(rs) for rs in records.values()] == [2, 1]
    assert [r.offset for r in records[A]] == [5, 6]
    assert A in records and TopicPartition("orders", 7) not in records
    assert records.get(TopicPartition("orders", 7)) is None and records.partitions() == {A, B}
    assert dict(records) == {A: records[A], B: records[B]}
    with pytest.raises(KeyError):
        records[TopicPartition("orders", 7)]


# ---- offsets to commit ----------------------------------------------------------------------

def test_offsets_are_ints_offset_and_metadata_or_pairs() -> None:
    assert normalise_offsets({A: 3, B: OffsetAndMetadata(4, "m")}) == {A: (3, ""), B: (4, "m")}
    assert normalise_offsets({A: (5, "x"), B: OffsetAndMetadata(6, None, 2)}) == {  # type: ignore[arg-type]
        A: (5, "x"), B: (6, "")}
    for bad in ({A: -1}, {A: 1.5}, {A: True}, {A: OffsetAndMetadata(1, "x" * 4097)},
                {"orders": 1}, {A: (1, 2)}):
        with pytest.raises(InvalidRequest):
            normalise_offsets(bad)  # type: ignore[arg-type]


# ---- deserializers --------------------------------------------------------------------------

def test_deserializers_apply_to_keys_and_values_and_none_stays_none() -> None:
    record = Record("orders", 0, 5, b"k", b'{"n": 1}')
    out = deserialized(record, bytes.decode, json.loads)
    assert (out.key, out.value, out.offset) == ("k", {"n": 1}, 5)
    tombstone = deserialized(Record("orders", 0, 6, None, None), bytes.decode, json.loads)
    assert (tombstone.key, tombstone.value) == (None, None)
    assert deserialized(record, None, None) is record


def test_a_failing_deserializer_keeps_its_error_type_and_names_the_record() -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        deserialized(Record("orders", 2, 41, None, b"not json"), None, json.loads)
    assert "orders partition 2 offset 41" in "".join(raised.value.__notes__)


# ---- commits of a consumer that assigned itself partitions ------------------------------------

def test_a_simple_consumer_commits_partitions_no_member_holds() -> None:
    groups = MemoryGroups()
    commit_unowned(groups, "g", "tool", {A: (7, "m")})
    lease = groups.lease("g", A)
    assert lease is not None and (lease.committed, lease.metadata, lease.owner) == (7, "m", None)
    commit_unowned(groups, "g", "tool", {A: (3, "")})  # backwards too: the last commit wins
    assert groups.leases[("g", A)].committed == 3


def test_a_simple_consumer_cannot_commit_what_a_member_reads() -> None:
    groups = MemoryGroups()
    groups.ensure_leases("g", [A, B])
    groups.heartbeat("g", Member("m-1", 0, topics=("orders",)))
    held = groups.take("g", B, "m-1", groups.leases[("g", B)])
    assert held is not None
    with pytest.raises(CommitFailed, match=r"orders\[1\].*member of the group reads"):
        commit_unowned(groups, "g", "tool", {A: (1, ""), B: (1, "")})
    assert groups.leases[("g", A)].committed is None  # nothing committed, A not taken
    assert groups.leases[("g", A)].epoch == 0
    assert groups.leases[("g", B)] == held


def test_a_simple_commit_fences_a_holder_that_left_without_releasing() -> None:
    groups = MemoryGroups()
    groups.ensure_leases("g", [A])
    gone = groups.take("g", A, "m-gone", groups.leases[("g", A)])  # no member item: gone
    assert gone is not None
    commit_unowned(groups, "g", "tool", {A: (10, "")})
    assert groups.leases[("g", A)].epoch == gone.epoch + 1
    with pytest.raises(CommitFailed):
        groups.commit("g", "m-gone", {A: (gone.epoch, 99, "")})
    assert groups.leases[("g", A)].committed == 10


def test_commits_apply_in_call_order_and_callbacks_run_on_finish() -> None:
    groups = MemoryGroups()
    commits = Commits(Membership(groups, "g", instance_id="tool", client_id="c",
                                 session_timeout_s=10, heartbeat_interval_s=3,
                                 clock=ManualClock()))
    seen: list[tuple[dict[TopicPartition, OffsetAndMetadata], object]] = []
    future = commits.commit_async({A: 5}, assigned=True,
                                  callback=lambda offsets, error: seen.append((offsets, error)))
    commits.commit({A: OffsetAndMetadata(6, "sync")}, assigned=True)  # queued behind it
    assert future.done() and groups.leases[("g", A)].committed == 6
    assert seen == []  # callbacks wait for the consumer's thread
    assert commits.finish() is False
    assert seen == [({A: OffsetAndMetadata(5, "")}, None)] and commits.committed == {A: 6}
    refused = commits.commit_async({B: 1}, assigned=False,
                                   callback=lambda o, e: seen.append((o, e)))
    assert isinstance(refused.exception(), CommitFailed)  # not a member holding B
    assert commits.close() is True and isinstance(seen[-1][1], CommitFailed)


# ---- max_poll_interval: the heartbeat thread stops vouching for a member that stopped polling

def membership(groups: MemoryGroups, clock: ManualClock, max_poll_s: float) -> Membership:
    return Membership(groups, "g", instance_id=None, client_id="c", session_timeout_s=0.06,
                      heartbeat_interval_s=0.02, clock=clock, max_poll_interval_s=max_poll_s)


def wait_for(condition: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)
    assert condition(), "not reached in time"  # type: ignore[operator]


def test_a_member_that_stops_polling_leaves_and_its_next_poll_rejoins() -> None:
    groups, clock = MemoryGroups(), ManualClock()
    one = membership(groups, clock, max_poll_s=5)
    one.start(["orders"])
    one.poll_started()
    one.rebalance([A, B])
    assert set(one.owned) == {A, B}
    clock.advance(60)  # inside poll: never judged idle
    time.sleep(0.1)
    assert not one.expired and ("g", one.member_id) in groups.members
    one.poll_ended()
    clock.advance(4)
    time.sleep(0.1)
    assert not one.expired
    clock.advance(2)  # 6 s since the last poll returned
    wait_for(lambda: one.expired)
    assert ("g", one.member_id) not in groups.members  # others see the leases orphaned
    beats = groups.calls.count("snapshot")
    with pytest.raises(CommitFailed, match="max_poll_interval_ms"):
        one.fenced({A: (1, "")})
    assert one.poll_started() == [A, B]  # lost; rejoined
    assert one.owned == {} and ("g", one.member_id) in groups.members
    assert groups.calls.count("snapshot") == beats
    one.leave()
