"""Identity-bound group state (issue 16, point 4): members, leases and REST v2 instances
belong to the IAM principal that created or took them; another principal is refused
(AccessDenied, nothing written). Existence checks and size bounds of member state."""

from __future__ import annotations

import pytest

from streamlet.engine import Engine
from streamlet.errors import (
    AccessDenied,
    CommitFailed,
    InvalidRequest,
    PartitionNotFound,
    TopicNotFound,
)
from streamlet.groups.leases import MAX_MEMBER_TOPICS, Member
from streamlet.records import TopicPartition

TP = TopicPartition("orders", 0)
VICTIM, IMPOSTOR = "role:aws:123456789012:billing", "role:aws:123456789012:intruder"


@pytest.fixture
def stores(engine: Engine):  # type: ignore[no-untyped-def]
    engine.create_topic("orders", 2)
    victim = engine.groups.bound(VICTIM, engine.topics)
    impostor = engine.groups.bound(IMPOSTOR, engine.topics)
    victim.heartbeat("g", Member("m-victim", 0, topics=("orders",)))
    victim.ensure_leases("g", [TP])
    return victim, impostor


def _victim_holds(victim):  # type: ignore[no-untyped-def]
    lease = victim.take("g", TP, "m-victim", victim.lease("g", TP))
    victim.commit("g", "m-victim", {TP: (lease.epoch, 10, "")})
    return lease


def test_another_principal_cannot_commit_as_the_member(engine: Engine, stores) -> None:  # type: ignore[no-untyped-def]
    # issue 16: a commit of 2^63-1 "as the victim" stuck, and the victim's later commits
    # were acknowledged and ignored.
    victim, impostor = stores
    lease = _victim_holds(victim)
    with pytest.raises(AccessDenied, match="m-victim"):
        impostor.commit("g", "m-victim", {TP: (lease.epoch, 2**63 - 1, "")})
    assert victim.lease("g", TP).committed == 10
    victim.commit("g", "m-victim", {TP: (lease.epoch, 11, "")})  # the victim's next commit
    assert victim.lease("g", TP).committed == 11


def test_another_principal_cannot_heartbeat_release_take_or_remove_the_member(stores) -> None:  # type: ignore[no-untyped-def]
    # issue 16: member ids and epochs are readable, so anyone in the group impersonated.
    victim, impostor = stores
    lease = _victim_holds(victim)
    before = victim.snapshot("g")
    with pytest.raises(AccessDenied):
        impostor.heartbeat("g", Member("m-victim", 0, topics=("orders",)))
    with pytest.raises(AccessDenied):
        impostor.release("g", TP, "m-victim", lease.epoch)
    with pytest.raises(AccessDenied):
        impostor.take("g", TP, "m-victim", victim.lease("g", TP))
    with pytest.raises(AccessDenied):
        impostor.remove_member("g", "m-victim")
    with pytest.raises(AccessDenied):
        impostor.remove_member("g", "m-victim", seen_beat=1)
    assert victim.snapshot("g") == before


def test_a_stale_epoch_stays_refused_and_takes_are_bound_to_the_taker(stores) -> None:  # type: ignore[no-untyped-def]
    victim, impostor = stores
    lease = _victim_holds(victim)
    impostor.heartbeat("g", Member("m-other", 0))
    taken = impostor.take("g", TP, "m-other", victim.lease("g", TP))  # the group protocol
    assert taken is not None and taken.epoch == lease.epoch + 1
    with pytest.raises(CommitFailed):
        victim.commit("g", "m-victim", {TP: (lease.epoch, 20, "")})
    impostor.commit("g", "m-other", {TP: (taken.epoch, 5, "")})  # the new owner, backwards
    assert victim.lease("g", TP).committed == 5


def test_a_member_removes_and_releases_its_own(stores) -> None:  # type: ignore[no-untyped-def]
    victim, _ = stores
    lease = _victim_holds(victim)
    victim.release("g", TP, "m-victim", lease.epoch)
    victim.remove_member("g", "m-victim")
    victim.remove_member("g", "m-victim")  # gone: a no-op
    assert victim.snapshot("g").members == {}
    assert victim.snapshot("g").leases[TP].owner is None


def test_leases_takes_and_commits_name_existing_partitions(stores) -> None:  # type: ignore[no-untyped-def]
    # issue 16: leases and commits on topics that do not exist were accepted.
    victim, _ = stores
    with pytest.raises(TopicNotFound):
        victim.ensure_leases("g", [TopicPartition("nope", 0)])
    with pytest.raises(PartitionNotFound):
        victim.ensure_leases("g", [TopicPartition("orders", 9)])
    with pytest.raises(PartitionNotFound):
        victim.commit("g", "m-victim", {TopicPartition("orders", 9): (1, 1, "")})
    with pytest.raises(TopicNotFound):
        victim.reset("g", {TopicPartition("nope", 0): 0}, {})
    assert set(victim.snapshot("g").leases) == {TP}


@pytest.mark.parametrize("member", [
    Member("m", 0, topics=tuple(f"t{i}" for i in range(MAX_MEMBER_TOPICS + 1))),
    Member("m", 0, topics=("x" * 4 * 1024 * 1024,)),
    Member("m", 0, topics=("a b",)),
    Member("m", 0, client_id="c" * 2000),
    Member("x" * 513, 0),
])
def test_member_state_is_bounded(stores, member: Member) -> None:  # type: ignore[no-untyped-def]
    # issue 16: heartbeats with 4 MB of topic names were accepted.
    victim, _ = stores
    with pytest.raises(InvalidRequest):
        victim.heartbeat("g", member)
    assert "m" not in victim.snapshot("g").members


def test_instances_belong_to_their_creator(engine: Engine) -> None:
    # issue 16: REST v2 instances could be driven by any principal granted the group.
    engine.create_topic("orders", 1)
    mine = engine.instances.bound(VICTIM)
    theirs = engine.instances.bound(IMPOSTOR)
    mine.create("g", "c1", "binary", "earliest")
    assert mine.get("g", "c1").principal == VICTIM
    for attempt in (lambda: theirs.get("g", "c1"), lambda: theirs.delete("g", "c1"),
                    lambda: theirs.assign("g", "c1", [TP]),
                    lambda: theirs.set_positions("g", "c1", {TP: 5}),
                    lambda: theirs.subscribe("g", "c1", ["orders"], None)):
        with pytest.raises(AccessDenied, match="c1"):
            attempt()
    assert mine.get("g", "c1").assignments == () and mine.get("g", "c1").positions == {}
    mine.assign("g", "c1", [TP])
    mine.delete("g", "c1")


def test_state_from_before_identities_is_adopted_by_its_members_principal(engine: Engine
                                                                          ) -> None:
    # Upgrading: members and leases written before principals were recorded (or in direct
    # mode) carry none. The member's next heartbeat claims it, and its leases follow it;
    # another principal still cannot commit or release them.
    engine.create_topic("orders", 1)
    legacy = engine.groups  # unbound, as before this version
    legacy.heartbeat("g", Member("m-old", 0, topics=("orders",)))
    legacy.ensure_leases("g", [TP])
    lease = legacy.take("g", TP, "m-old", legacy.lease("g", TP))
    owner = engine.groups.bound(VICTIM, engine.topics)
    impostor = engine.groups.bound(IMPOSTOR, engine.topics)
    owner.heartbeat("g", Member("m-old", 0, topics=("orders",)))  # claims the member
    with pytest.raises(AccessDenied):
        impostor.commit("g", "m-old", {TP: (lease.epoch, 99, "")})
    owner.commit("g", "m-old", {TP: (lease.epoch, 7, "")})  # adopts the lease
    assert owner.lease("g", TP).committed == 7
    with pytest.raises(AccessDenied):
        impostor.release("g", TP, "m-old", lease.epoch)
    owner.release("g", TP, "m-old", lease.epoch)
    assert owner.lease("g", TP).owner is None
