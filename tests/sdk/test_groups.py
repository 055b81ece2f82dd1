"""Consumer groups against the local platform: split, rebalance, hand over, fence.

Every test runs twice (``endpoint`` from conftest): direct, and over the HTTP API's
native group routes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from streamlet import (
    Admin,
    CommitFailed,
    Consumer,
    GroupActive,
    InvalidRequest,
    Producer,
    Record,
    TopicPartition,
)
from streamlet.errors import ConsumerIllegalState

SESSION_MS = 1500


def member(endpoint: str, topic: str, group: str, **kw) -> Consumer:  # type: ignore[no-untyped-def]
    return Consumer(topic, endpoint=endpoint, group_id=group, auto_offset_reset="earliest",
                    session_timeout_ms=SESSION_MS, **kw)


def pump(consumers: list[Consumer], until: Callable[[], bool], timeout: float = 15.0
         ) -> list[Record]:
    """Poll every consumer in turn until ``until()`` holds."""
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            out += c.poll(timeout=0.05)
        if until():
            return out
    raise AssertionError("condition not reached in time")


def sizes(consumers: list[Consumer]) -> list[int]:
    return sorted(len(c.assignment()) for c in consumers)


def produce(endpoint: str, topic: str, n: int) -> None:
    with Producer(endpoint) as producer:
        for i in range(n):
            producer.send(topic, str(i), key=str(i))


@pytest.fixture
def eight(endpoint: str, topic: str) -> str:
    Admin(endpoint).create_topic(topic, 8)
    produce(endpoint, topic, 400)
    return topic


def test_members_split_partitions_floor_or_ceil(endpoint: str, eight: str) -> None:
    members = [member(endpoint, eight, f"split-{eight}") for _ in range(3)]
    pump(members, lambda: sizes(members) == [2, 3, 3])
    owned = [tp for m in members for tp in m.assignment()]
    assert sorted(owned) == [TopicPartition(eight, p) for p in range(8)]
    for m in members:
        m.close()


def test_join_moves_only_what_must_move(endpoint: str, eight: str) -> None:
    revoked: list[TopicPartition] = []
    a = member(endpoint, eight, f"sticky-{eight}", on_revoke=revoked.extend)
    pump([a], lambda: len(a.assignment()) == 8)
    before = set(a.assignment())
    b = member(endpoint, eight, f"sticky-{eight}")
    pump([a, b], lambda: sizes([a, b]) == [4, 4])
    assert len(revoked) == 4 and set(a.assignment()) == before - set(revoked)
    assert set(b.assignment()) == set(revoked)
    a.close()
    b.close()


def test_every_record_once_across_a_rebalance_and_close(endpoint: str, eight: str) -> None:
    a, b = member(endpoint, eight, f"once-{eight}"), member(endpoint, eight, f"once-{eight}")
    seen = pump([a, b], lambda: sizes([a, b]) == [4, 4])
    b.close()  # hands over at once (commits first)
    seen += pump([a], lambda: len(a.assignment()) == 8, timeout=SESSION_MS / 1000)
    deadline = time.monotonic() + 10
    while len({(r.partition, r.offset) for r in seen}) < 400 and time.monotonic() < deadline:
        seen += a.poll(0.1)
    keys = [(r.partition, r.offset) for r in seen]
    assert len(set(keys)) == 400
    assert len(keys) == 400  # nothing delivered twice: revoke committed before handing over
    a.close()


def test_a_crashed_member_loses_its_partitions_after_the_session_timeout(
        endpoint: str, eight: str) -> None:
    a, b = member(endpoint, eight, f"crash-{eight}"), member(endpoint, eight, f"crash-{eight}")
    pump([a, b], lambda: sizes([a, b]) == [4, 4])
    b._group._suspend_heartbeats(True)  # type: ignore[union-attr]  # b freezes: no close
    frozen = time.monotonic()
    pump([a], lambda: len(a.assignment()) == 8, timeout=4 * SESSION_MS / 1000)
    took = time.monotonic() - frozen
    assert took < 2 * SESSION_MS / 1000 + 2.5  # two sessions, and slack for a loaded machine
    b._group._suspend_heartbeats(False)  # type: ignore[union-attr]  # b wakes up
    lost: list[TopicPartition] = []
    b._listeners["lost"] = lost.extend
    b.poll(0.1)
    b._next_tick = 0
    pump([b], lambda: len(lost) == 4, timeout=5)
    with pytest.raises(CommitFailed):
        b.commit({lost[0]: 1})
    a.close()
    b.close()


def test_static_member_restart_keeps_its_partitions(endpoint: str, eight: str) -> None:
    a = member(endpoint, eight, f"static-{eight}", group_instance_id="worker-a")
    b = member(endpoint, eight, f"static-{eight}", group_instance_id="worker-b")
    pump([a, b], lambda: sizes([a, b]) == [4, 4])
    mine = set(b.assignment())
    epochs = {tp: b.lease_epoch(tp) for tp in mine}
    b._group._stop.set()  # type: ignore[union-attr]  # process dies without leaving
    b2 = member(endpoint, eight, f"static-{eight}", group_instance_id="worker-b")
    pump([a, b2], lambda: set(b2.assignment()) == mine, timeout=SESSION_MS / 1000)
    assert len(a.assignment()) == 4  # no rebalance happened
    assert all(b2.lease_epoch(tp) == epochs[tp] + 1 for tp in mine)  # old process fenced
    a.close()
    b2.close()


def test_records_carry_the_lease_epoch_and_commits_are_fenced(endpoint: str, eight: str
                                                              ) -> None:
    a = member(endpoint, eight, f"fence-{eight}", enable_auto_commit=False)
    records = pump([a], lambda: len(a.assignment()) == 8)
    records += a.poll(1)
    assert records and all(r.lease_epoch == a.lease_epoch(r.topic_partition) >= 1
                           for r in records)
    tp = TopicPartition(eight, 0)
    a.commit({tp: 7})
    assert a.committed(tp) == 7
    a.commit({tp: 3})  # backwards by the owner: applies (Kafka's last commit wins)
    assert a.committed(tp) == 3
    with pytest.raises(CommitFailed, match="nothing was committed"):
        a.commit({tp: 9, TopicPartition(eight, 99): 1})
    assert a.committed(tp) == 3
    with pytest.raises(InvalidRequest, match="offsets are >= 0"):
        a.commit({tp: -1})
    a.close()


def test_committed_offsets_survive_and_new_members_resume_there(endpoint: str, eight: str
                                                                ) -> None:
    a = member(endpoint, eight, f"resume-{eight}")
    first = pump([a], lambda: len(a.assignment()) == 8)
    while len(first) < 100:
        first += a.poll(0.1)
    a.close()  # commits positions
    b = member(endpoint, eight, f"resume-{eight}")
    rest = pump([b], lambda: len(b.assignment()) == 8)
    deadline = time.monotonic() + 10
    while len(first) + len(rest) < 400 and time.monotonic() < deadline:
        rest += b.poll(0.1)
    both = [(r.partition, r.offset) for r in first + rest]
    assert len(both) == len(set(both)) == 400
    b.close()


def test_new_topics_and_partitions_are_picked_up(endpoint: str, topic: str) -> None:
    admin = Admin(endpoint)
    a = member(endpoint, topic, f"grow-{topic}")  # the topic does not exist yet
    assert a.poll(0.2) == [] and a.assignment() == set()
    admin.create_topic(topic, 2)
    pump([a], lambda: len(a.assignment()) == 2)
    admin.create_partitions(topic, 3)
    pump([a], lambda: len(a.assignment()) == 3)
    a.close()


def test_admin_describe_and_refusals(endpoint: str, eight: str) -> None:
    admin, group = Admin(endpoint), f"ops-{eight}"
    a = member(endpoint, eight, group, client_id="billing", enable_auto_commit=False)
    pump([a], lambda: len(a.assignment()) == 8)
    a.commit({TopicPartition(eight, 0): 10})
    rows = admin.describe_group(group)
    row = next(r for r in rows if r.partition == 0)
    assert (row.current_offset, row.log_end_offset, row.lag) == (
        10, admin.watermarks(eight, 0)[1], admin.watermarks(eight, 0)[1] - 10)
    assert row.consumer_id and row.client_id == "billing"
    assert group in admin.list_groups()
    with pytest.raises(GroupActive, match="live members"):
        admin.reset_offsets(group, to_earliest=True, execute=True)
    with pytest.raises(GroupActive):
        admin.delete_group(group)
    assert [r.current_offset for r in admin.describe_group(group)] == [
        r.current_offset for r in rows]  # nothing changed
    a.close()
    plan = admin.reset_offsets(group, topic=eight, partition=0, to_offset=2, execute=True)
    assert plan == {TopicPartition(eight, 0): (10, 2)}
    assert next(r for r in admin.describe_group(group) if r.partition == 0).current_offset == 2
    admin.delete_group(group)
    assert group not in admin.list_groups()


def test_assign_is_refused_while_subscribed(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic)
    consumer = Consumer(topic, endpoint=endpoint, group_id=f"g-{topic}")
    with pytest.raises(ConsumerIllegalState, match="unsubscribe"):  # as Kafka
        consumer.assign([TopicPartition(topic, 0)])
    consumer.close()
    plain = Consumer(topic, endpoint=endpoint)
    with pytest.raises(InvalidRequest, match="group_id"):
        plain.commit()


def test_a_deleted_topic_drops_out_of_describe_and_reset(endpoint: str, topic: str) -> None:
    admin, group = Admin(endpoint), f"mixed-{topic}"
    gone = f"{topic}-gone"
    admin.create_topic(topic)
    admin.create_topic(gone)
    a = Consumer(topic, gone, endpoint=endpoint, group_id=group, session_timeout_ms=SESSION_MS,
                 enable_auto_commit=False)
    pump([a], lambda: len(a.assignment()) == 2)
    a.commit({TopicPartition(topic, 0): 0, TopicPartition(gone, 0): 0})
    a.close()
    admin.delete_topic(gone)
    assert [(r.topic, r.partition) for r in admin.describe_group(group)] == [(topic, 0)]
    assert list(admin.reset_offsets(group, to_earliest=True)) == [TopicPartition(topic, 0)]


def test_close_commits_what_is_still_owned_and_reports_the_rest_lost(endpoint: str, eight: str
                                                                    ) -> None:
    lost: list[TopicPartition] = []
    # only close() commits: an auto-commit meanwhile (a slow machine) could leave the
    # stolen partition with nothing new to commit, and so nothing to find lost
    a = member(endpoint, eight, f"closing-{eight}", on_lost=lost.extend,
               auto_commit_interval_ms=600_000)
    pump([a], lambda: len(a.assignment()) == 8)
    a.poll(1)  # positions move past what is committed
    positions = {tp: a.position(tp) for tp in a.assignment()}
    admin_engine_groups = a._transport.groups
    stolen = TopicPartition(eight, 3)
    admin_engine_groups.take(f"closing-{eight}", stolen, "intruder",
                             admin_engine_groups.lease(f"closing-{eight}", stolen))
    a.close()  # no exception: the stolen partition is reported lost, the rest committed
    assert lost == [stolen]
    for tp, position in positions.items():
        if tp != stolen:
            assert admin_engine_groups.lease(f"closing-{eight}", tp).committed == position


def test_members_reading_overlapping_topics_leave_no_partition_unread(endpoint: str,
                                                                       eight: str) -> None:
    """a reads one topic, b reads it and another: every partition of both gets an owner,
    each record is delivered once, and the load splits 6 / 6."""
    other = f"{eight}-more"
    Admin(endpoint).create_topic(other, 4)
    produce(endpoint, other, 100)
    group = f"overlap-{eight}"
    narrow = member(endpoint, eight, group)
    wide = Consumer(eight, other, endpoint=endpoint, group_id=group,
                    auto_offset_reset="earliest", session_timeout_ms=SESSION_MS)
    seen = pump([narrow, wide], lambda: len(narrow.assignment() | wide.assignment()) == 12
                and sizes([narrow, wide]) == [6, 6])
    assert not narrow.assignment() & wide.assignment()
    assert {tp.topic for tp in narrow.assignment()} == {eight}
    assert {TopicPartition(other, p) for p in range(4)} <= wide.assignment()
    deadline = time.monotonic() + 15
    while len(seen) < 500 and time.monotonic() < deadline:
        seen += narrow.poll(timeout=0.05) + wide.poll(timeout=0.05)
    assert len({(r.topic, r.partition, r.offset) for r in seen}) == len(seen) == 500
    narrow.close()
    wide.close()


def test_resubscribing_hands_the_dropped_topic_over(endpoint: str, eight: str) -> None:
    other = f"{eight}-next"
    Admin(endpoint).create_topic(other, 2)
    group = f"resub-{eight}"
    mover, stayer = member(endpoint, eight, group), member(endpoint, eight, group)
    pump([mover, stayer], lambda: sizes([mover, stayer]) == [4, 4])
    revoked: list[TopicPartition] = []
    mover.subscribe([other], on_revoke=revoked.extend)
    pump([mover, stayer], lambda: len(stayer.assignment()) == 8
         and mover.assignment() == {TopicPartition(other, 0), TopicPartition(other, 1)})
    assert sorted(revoked) == sorted(tp for tp in revoked if tp.topic == eight)
    assert len(revoked) == 4  # given back through on_revoke, not left to expire
    mover.close()
    stayer.close()
