"""Group storage: conditional takes, fenced commits, resets (in-process moto)."""

from __future__ import annotations

import pytest

from streamlet.engine import Engine
from streamlet.errors import CommitFailed, GroupNotFound, InvalidRequest
from streamlet.groups.leases import Member
from streamlet.records import TopicPartition

TP = TopicPartition("orders", 0)


@pytest.fixture
def groups(engine: Engine):  # type: ignore[no-untyped-def]
    engine.groups.ensure_leases("g", [TP, TopicPartition("orders", 1)])
    return engine.groups


def test_take_bumps_the_epoch_and_only_one_taker_wins(groups) -> None:  # type: ignore[no-untyped-def]
    seen = groups.snapshot("g").leases[TP]
    assert seen.owner is None and seen.epoch == 0
    first = groups.take("g", TP, "a", seen)
    assert first is not None and (first.owner, first.epoch) == ("a", 1)
    assert groups.take("g", TP, "b", seen) is None  # same stale view: refused
    assert groups.lease("g", TP).owner == "a"


def test_a_retried_take_recognises_its_own_success(groups) -> None:  # type: ignore[no-untyped-def]
    seen = groups.snapshot("g").leases[TP]
    groups.take("g", TP, "a", seen)
    again = groups.take("g", TP, "a", seen)  # as after a lost reply
    assert again is not None and again.epoch == 1


def test_a_take_reports_the_offset_committed_up_to_the_take(  # type: ignore[no-untyped-def]
        groups) -> None:
    """The old owner commits after the taker read the group: the taker must start there,
    not at the offset it saw (else it reads those records again: a duplicate output of an
    exactly-once pipeline)."""
    held = groups.take("g", TP, "a", groups.snapshot("g").leases[TP])
    seen = groups.snapshot("g").leases[TP]  # the taker's view: nothing committed
    groups.commit("g", "a", {TP: (held.epoch, 42, "last")})
    taken = groups.take("g", TP, "b", seen)
    assert taken is not None and (taken.committed, taken.metadata) == (42, "last")
    with pytest.raises(CommitFailed):  # and nothing of the old owner lands after it
        groups.commit("g", "a", {TP: (held.epoch, 50, "")})


def test_commits_are_fenced_by_owner_and_epoch(groups) -> None:  # type: ignore[no-untyped-def]
    lease = groups.take("g", TP, "a", groups.snapshot("g").leases[TP])
    groups.commit("g", "a", {TP: (lease.epoch, 10, "m")})
    assert (groups.lease("g", TP).committed, groups.lease("g", TP).metadata) == (10, "m")
    stolen = groups.take("g", TP, "b", groups.lease("g", TP))
    with pytest.raises(CommitFailed, match=r"orders\[0\]"):
        groups.commit("g", "a", {TP: (lease.epoch, 20, "")})
    assert groups.lease("g", TP).committed == 10
    groups.commit("g", "b", {TP: (stolen.epoch, 15, "")})
    assert groups.lease("g", TP).committed == 15


def test_a_multi_partition_commit_is_all_or_nothing(groups) -> None:  # type: ignore[no-untyped-def]
    tp1 = TopicPartition("orders", 1)
    mine = groups.take("g", TP, "a", groups.snapshot("g").leases[TP])
    with pytest.raises(CommitFailed, match=r"orders\[1\]"):
        groups.commit("g", "a", {TP: (mine.epoch, 5, ""), tp1: (1, 5, "")})
    assert groups.lease("g", TP).committed is None


def test_the_owner_may_commit_backwards_a_stale_owner_never(groups) -> None:  # type: ignore[no-untyped-def]
    # issue 16 (point 4): a backwards commit by the owner was silently ignored, so a bad
    # commit (e.g. 2^63-1) stuck forever; Kafka's owner is last-writer-wins.
    lease = groups.take("g", TP, "a", groups.snapshot("g").leases[TP])
    groups.commit("g", "a", {TP: (lease.epoch, 2**63 - 1, "")})
    groups.commit("g", "a", {TP: (lease.epoch, 3, "")})
    assert groups.lease("g", TP).committed == 3
    stolen = groups.take("g", TP, "b", groups.lease("g", TP))
    with pytest.raises(CommitFailed):
        groups.commit("g", "a", {TP: (lease.epoch, 1, "")})  # stale epoch: refused
    assert (groups.lease("g", TP).committed, stolen.epoch) == (3, lease.epoch + 1)


def test_release_and_members(groups) -> None:  # type: ignore[no-untyped-def]
    assert groups.heartbeat("g", Member("a", 0, "cli", "host", "", ("orders",))) == 1
    assert groups.heartbeat("g", Member("a", 0, heartbeat_ms=10_000, session_ms=30_000)) == 2
    assert groups.snapshot("g").members["a"] == Member("a", 2, "-", "-", "-", ("orders",),
                                                       10_000, 30_000)
    lease = groups.take("g", TP, "a", groups.snapshot("g").leases[TP])
    groups.release("g", TP, "a", lease.epoch)
    snap = groups.snapshot("g")
    assert snap.leases[TP].owner is None and snap.members["a"].beat == 2
    groups.remove_member("g", "a", seen_beat=1)  # it moved since: kept
    assert "a" in groups.snapshot("g").members
    groups.remove_member("g", "a")
    assert groups.snapshot("g").members == {}


def test_reset_moves_offsets_and_fences_the_old_owner(groups) -> None:  # type: ignore[no-untyped-def]
    lease = groups.take("g", TP, "a", groups.snapshot("g").leases[TP])
    groups.commit("g", "a", {TP: (lease.epoch, 50, "")})
    groups.reset("g", {TP: 5}, groups.snapshot("g").leases)
    after = groups.lease("g", TP)
    assert (after.committed, after.owner, after.epoch) == (5, None, lease.epoch + 1)
    with pytest.raises(CommitFailed):
        groups.commit("g", "a", {TP: (lease.epoch, 60, "")})
    stale = {TP: lease}
    with pytest.raises(InvalidRequest, match="changed during the reset"):
        groups.reset("g", {TP: 1}, stale)


def test_list_and_delete(groups) -> None:  # type: ignore[no-untyped-def]
    groups.ensure_leases("other", [TP])
    assert groups.list_groups() == ["g", "other"]
    groups.delete("other")
    assert groups.list_groups() == ["g"]
    with pytest.raises(GroupNotFound):
        groups.delete("other")


@pytest.mark.parametrize("bad", ["", "a#b", "x" * 250, 3, "a b", "a/b", ".", "..", "é"])
def test_bad_group_ids(groups, bad: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest, match="Group id"):
        groups.snapshot(bad)
