"""Stateless group membership of REST v2 instances, on a controlled wall clock (moto)."""

from __future__ import annotations

import pytest

from streamlet.clock import ManualClock as Clock
from streamlet.engine import Engine
from streamlet.engine.groups import GroupStore
from streamlet.engine.instances import ConsumerInstances
from streamlet.errors import CommitFailed, ConsumerInstanceNotFound
from streamlet.groups.instance import ConsumerInstance
from streamlet.groups.subscriptions import Subscriptions
from streamlet.records import TopicPartition

ALL = [TopicPartition("orders", p) for p in range(4)]


class Rest:
    """REST instances of group ``g`` as the handlers drive them: state in DynamoDB only."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.instances = ConsumerInstances(engine._ddb, engine.names, clock=clock)
        self.groups = GroupStore(engine._ddb, engine.names, clock=clock)
        self.subs = Subscriptions(self.groups, self.instances, engine.topics, clock=clock)

    def join(self, name: str, session_ms: int = 30_000) -> None:
        self.instances.create("g", name, "binary", "earliest", session_ms=session_ms)
        self.subs.subscribe(self.instances.get("g", name), ["orders"], None)

    def tick(self, name: str) -> ConsumerInstance:
        state = self.subs.tick(self.instances.get("g", name))
        self.instances.save_membership(state)
        return state


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest.fixture
def rest(engine: Engine, clock: Clock) -> Rest:
    engine.create_topic("orders", 4)
    return Rest(engine, clock)


def test_an_idle_instance_loses_its_partitions_after_its_session(rest: Rest, clock: Clock
                                                                 ) -> None:
    rest.join("a")
    a = rest.tick("a")
    assert set(a.owned) == set(ALL)
    rest.join("b")
    assert rest.tick("b").owned == {}  # a is live
    clock.now += 29  # a says nothing for 29 s: still within its 30 s session
    assert rest.tick("b").owned == {}
    clock.now += 2
    b = rest.tick("b")
    assert set(b.owned) == set(ALL)  # a is dead: its leases are taken at once
    assert set(rest.groups.snapshot("g").members) == {b.member_id}  # and its item tidied
    with pytest.raises(CommitFailed, match="nothing was committed"):
        rest.subs.commit(rest.instances.get("g", "a"), {ALL[0]: (1, "")})
    a = rest.tick("a")  # a comes back: it learns the loss and rejoins
    assert a.owned == {} and a.positions == {}
    assert set(rest.groups.snapshot("g").members) == {a.member_id, b.member_id}


def test_observers_wait_for_the_longer_session_a_member_states(rest: Rest, clock: Clock
                                                               ) -> None:
    rest.join("slow", session_ms=120_000)
    rest.tick("slow")
    rest.join("quick", session_ms=5_000)
    rest.tick("quick")
    clock.now += 100  # far beyond quick's own 5 s, within slow's 120 s
    assert rest.tick("quick").owned == {}
    clock.now += 21
    assert set(rest.tick("quick").owned) == set(ALL)


def test_partitions_move_after_the_session_and_the_instance_expires_later(
        rest: Rest, clock: Clock) -> None:
    rest.join("a")
    rest.tick("a")
    rest.join("b")
    rest.tick("b")  # b first sees a here: liveness counts from b's own observations
    clock.now += 200  # a's client stopped calling; b's calls (a records request) go on
    assert set(rest.tick("b").owned) == set(ALL)
    assert rest.instances.get("g", "a").owned  # a's item still exists, unaware
    clock.now += 101  # a is past REST Proxy's 5-minute instance timeout; b is not
    with pytest.raises(ConsumerInstanceNotFound):
        rest.instances.get("g", "a")
    assert set(rest.tick("b").owned) == set(ALL)


def test_positions_start_at_the_committed_offset_when_a_partition_is_taken(
        rest: Rest, engine: Engine) -> None:
    rest.join("a")
    a = rest.tick("a")
    rest.subs.commit(a, {ALL[0]: (7, "")})
    rest.subs.leave(a)
    rest.join("b")
    b = rest.tick("b")
    assert b.positions == {ALL[0]: 7}  # the others have no commit: auto.offset.reset applies
    assert all(epoch == 2 for tp, epoch in b.owned.items())  # each take bumped the epoch
