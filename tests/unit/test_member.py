"""The one member core, as both kinds of member drive it (in-memory group state)."""

from __future__ import annotations

import pytest

from streamlet.clock import ManualClock
from streamlet.errors import CommitFailed
from streamlet.groups import GroupMember, GroupOps, LivenessTracker, Member
from streamlet.records import TopicPartition
from tests.harness.memgroups import MemoryGroups

ALL = [TopicPartition("orders", p) for p in range(4)]


def member(groups: GroupOps, name: str, clock: ManualClock,
           owned: dict[TopicPartition, int] | None = None) -> GroupMember:
    return GroupMember(groups, "g", name, LivenessTracker(10, clock), owned)


def join(groups: MemoryGroups, name: str) -> None:
    groups.heartbeat("g", Member(name, 0, topics=("orders",)))


def step(one: GroupMember) -> None:
    todo = one.plan(ALL)
    one.release(todo.release)
    one.take(todo.take)


def test_two_members_split_the_partitions_and_the_first_gives_back_its_surplus() -> None:
    groups, clock = MemoryGroups(), ManualClock()
    join(groups, "a")
    a = member(groups, "a", clock)
    step(a)
    assert set(a.owned) == set(ALL)
    join(groups, "b")
    b = member(groups, "b", clock)
    for one in (a, b, b, a, b):
        step(one)
    assert len(a.owned) == len(b.owned) == 2
    assert set(a.owned) | set(b.owned) == set(ALL)
    assert {groups.leases[("g", tp)].owner for tp in ALL} == {"a", "b"}


def test_a_member_rebuilt_from_stored_state_behaves_like_a_long_lived_one() -> None:
    """What a REST instance does: a new GroupMember per request from its item."""
    groups, clock = MemoryGroups(), ManualClock()
    join(groups, "rest")
    first = member(groups, "rest", clock)
    step(first)
    again = GroupMember(groups, "g", "rest", LivenessTracker(10, clock), first.owned)
    again.tracker.restore(first.tracker.observations())
    calls = len(groups.calls)
    step(again)
    assert again.owned == first.owned
    assert not [c for c in groups.calls[calls:] if c.startswith(("take", "release"))]


def test_a_dead_members_partitions_are_taken_and_its_item_removed() -> None:
    groups, clock = MemoryGroups(), ManualClock()
    join(groups, "a")
    join(groups, "b")
    a, b = member(groups, "a", clock), member(groups, "b", clock)
    for one in (a, b, a, b):
        step(one)
    clock.advance(11)  # b stops beating; a's counter keeps moving
    join(groups, "a")
    step(a)
    clock.advance(1)
    join(groups, "a")
    step(a)
    assert set(a.owned) == set(ALL)
    assert ("g", "b") not in groups.members


def test_a_lease_that_moved_is_lost_and_a_stale_commit_writes_nothing() -> None:
    groups, clock = MemoryGroups(), ManualClock()
    join(groups, "a")
    a = member(groups, "a", clock)
    step(a)
    tp = ALL[0]
    groups.reset("g", {tp: 5}, {})  # an admin reset bumps the epoch: a is fenced
    with pytest.raises(CommitFailed):
        a.commit({tp: (9, "")})
    assert groups.leases[("g", tp)].committed == 5
    assert a.drop_lost() == [tp]
    with pytest.raises(CommitFailed, match=r"orders\[0\]"):
        a.commit({tp: (9, "")})  # not owned any more: refused before any request


def test_leave_releases_everything_and_removes_the_member() -> None:
    groups, clock = MemoryGroups(), ManualClock()
    join(groups, "a")
    a = member(groups, "a", clock)
    step(a)
    a.commit({ALL[1]: (7, "m")})
    a.leave()
    assert all(groups.leases[("g", tp)].owner is None for tp in ALL)
    assert groups.leases[("g", ALL[1])].committed == 7
    assert ("g", "a") not in groups.members and a.owned == {}
