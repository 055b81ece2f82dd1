"""Pure group logic: liveness by counter movement, quotas and plans."""

from __future__ import annotations

from collections import Counter
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from streamlet.groups.leases import (
    GroupSnapshot,
    Lease,
    LivenessTracker,
    Member,
    plan,
    targets,
)
from streamlet.records import TopicPartition


class FakeClock:
    def __init__(self, start: float = 0.0, rate: float = 1.0) -> None:
        self.real, self.start, self.rate = 0.0, start, rate

    def monotonic(self) -> float:
        return self.start + self.real * self.rate

    def time(self) -> float:
        return self.monotonic()


def members(**beats: int) -> dict[str, Member]:
    return {m: Member(m, b) for m, b in beats.items()}


def tps(n: int) -> list[TopicPartition]:
    return [TopicPartition("t", p) for p in range(n)]


def snapshot(owners: dict[int, str | None], epoch: int = 1) -> GroupSnapshot:
    return GroupSnapshot(leases={TopicPartition("t", p): Lease(TopicPartition("t", p), o, epoch,
                                                                None)
                                 for p, o in owners.items()})


def test_a_member_is_live_while_its_counter_moves() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(10, clock)
    tracker.observe(members(a=1, b=1))
    clock.real = 8
    tracker.observe(members(a=2, b=1))
    clock.real = 12
    tracker.observe(members(a=3, b=1))
    assert tracker.live() == {"a"}
    assert tracker.dead() == {"b": 1}


def test_clock_offsets_do_not_matter_only_elapsed_time_on_our_clock() -> None:
    for start in (-300.0, 0.0, 300.0):  # +-5 minutes
        clock = FakeClock(start=start)
        tracker = LivenessTracker(10, clock)
        tracker.observe(members(a=1))
        clock.real = 9.9
        assert tracker.live() == {"a"}


def test_a_fast_observer_still_sees_heartbeats_every_third_of_the_timeout() -> None:
    clock = FakeClock(rate=1.5)
    tracker = LivenessTracker(9, clock)
    for beat in range(1, 20):  # the member beats every 3 real seconds
        tracker.observe(members(a=beat))
        clock.real += 3
        assert tracker.live() == {"a"}


def test_a_member_keeps_the_longer_session_it_states() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(10, clock)
    slow = {"rest": Member("rest", 1, session_ms=30_000), "sdk": Member("sdk", 1)}
    tracker.observe(slow)
    clock.real = 25
    tracker.observe(slow)
    assert tracker.live() == {"rest"}  # 25 s silent: dead by ours, live by its own 30 s
    clock.real = 31
    assert tracker.live() == set() and tracker.dead() == {"rest": 1, "sdk": 1}


def test_a_shorter_stated_session_never_shortens_ours() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(10, clock)
    tracker.observe({"a": Member("a", 1, session_ms=1_000)})
    clock.real = 9
    assert tracker.live() == {"a"}


def test_observations_persist_and_resume_in_a_fresh_tracker() -> None:
    clock = FakeClock()
    first = LivenessTracker(10, clock)
    first.observe(members(a=1, b=1))
    clock.real = 6
    first.observe(members(a=2, b=1))
    saved = first.observations()
    assert saved == {"a": (2, 6.0), "b": (1, 0.0)}
    clock.real = 12
    second = LivenessTracker(10, clock)  # another process, same clock
    second.restore(saved)
    second.observe(members(a=2, b=1))
    assert second.live() == {"a"} and second.dead() == {"b": 1}


def test_targets_are_floor_or_ceil_for_one_topic() -> None:
    assert [targets(m, ["t"], "abc", {}, {"t": 8}) for m in "abc"] == [{"t": 3}, {"t": 3},
                                                                      {"t": 2}]
    assert targets("z", ["t"], [], {}, {"t": 5}) == {"t": 5}
    assert targets("z", ["t"], [], {}, {"t": 5, "other": 3}) == {"t": 5}  # not subscribed


@given(st.lists(st.integers(1, 12), min_size=1, max_size=5), st.integers(1, 12))
def test_identical_subscriptions_split_floor_or_ceil(counts: list[int], size: int) -> None:
    names = [f"m{i:02}" for i in range(size)]
    partitions = {f"t{i}": n for i, n in enumerate(counts)}
    got = [targets(m, partitions, names, {}, partitions) for m in names]
    for topic, n in partitions.items():
        assert sum(g[topic] for g in got) == n
    totals = [sum(g.values()) for g in got]
    assert totals == sorted(totals, reverse=True) and totals[0] - totals[-1] <= 1


SUBSCRIPTIONS = st.dictionaries(st.sampled_from("abcdef"),
                                st.sets(st.sampled_from(["x", "y", "z"]), min_size=1),
                                min_size=1)


@given(SUBSCRIPTIONS, st.fixed_dictionaries({t: st.integers(1, 9) for t in "xyz"}))
def test_every_subscribed_partition_has_a_member_meant_for_it(
        subscriptions: dict[str, set[str]], partitions: dict[str, int]) -> None:
    members = {m: Member(m, 1, topics=tuple(t)) for m, t in subscriptions.items()}
    got = {m: targets(m, t, members, members, partitions) for m, t in subscriptions.items()}
    for topic, n in partitions.items():
        readers = [m for m, t in subscriptions.items() if topic in t]
        assert sum(got[m].get(topic, 0) for m in readers) == (n if readers else 0)
        assert all(topic not in got[m] for m in subscriptions if m not in readers)


def test_overlapping_subscriptions_balance_by_topic() -> None:
    """a reads x; b reads x and y: b is the only reader of y, so a takes all of x."""
    members = {"a": Member("a", 1, topics=("x",)), "b": Member("b", 1, topics=("x", "y"))}
    assert targets("a", ["x"], members, members, {"x": 4, "y": 4}) == {"x": 4}
    assert targets("b", ["x", "y"], members, members, {"x": 4, "y": 4}) == {"x": 0, "y": 4}


@given(SUBSCRIPTIONS, st.fixed_dictionaries({t: st.integers(1, 6) for t in "xyz"}),
       st.randoms(use_true_random=False))
def test_members_planning_in_turn_settle_with_every_partition_owned_once(
        subscriptions: dict[str, set[str]], partitions: dict[str, int], rng: Random) -> None:
    """Members rebalance in a random order, each on the current state, until nobody moves:
    then every partition of a subscribed topic is owned by one member that reads it, and
    each member owns what its targets say."""
    members = {m: Member(m, 1, topics=tuple(sorted(t))) for m, t in subscriptions.items()}
    leases = {TopicPartition(t, p): Lease(TopicPartition(t, p), None, 0, None)
              for t, n in partitions.items() for p in range(n)}
    owned: dict[str, dict[TopicPartition, int]] = {m: {} for m in members}
    live = set(members)
    for _ in range(50):
        moved = False
        for me in rng.sample(sorted(members), len(members)):
            wanted = [tp for tp in leases if tp.topic in subscriptions[me]]
            todo = plan(me, owned[me], GroupSnapshot(dict(leases), members), live, wanted)
            assert todo.lost == []
            for tp in todo.release:
                leases[tp] = Lease(tp, None, leases[tp].epoch, None)
                del owned[me][tp]
            for lease in todo.take:
                leases[lease.tp] = Lease(lease.tp, me, lease.epoch + 1, None)
                owned[me][lease.tp] = lease.epoch + 1
            moved = moved or bool(todo.release or todo.take)
        if not moved:
            break
    assert not moved, "the plans never settled"
    subscribed = {t for topics in subscriptions.values() for t in topics}
    for tp, lease in leases.items():
        assert (lease.owner is not None) == (tp.topic in subscribed), (tp, lease)
        assert lease.owner is None or tp.topic in subscriptions[lease.owner]
    for me, topics in subscriptions.items():
        counts = Counter(tp.topic for tp in owned[me])
        want = targets(me, topics, live, members, partitions)
        assert {t: counts.get(t, 0) for t in want} == want


def test_a_new_member_takes_free_partitions() -> None:
    todo = plan("a", {}, snapshot(dict.fromkeys(range(4))), {"a"}, tps(4))
    assert [lease.tp.partition for lease in todo.take] == [0, 1, 2, 3]
    assert todo.release == [] and todo.lost == []


def test_over_quota_members_release_only_the_excess() -> None:
    owned = {tp: 1 for tp in tps(4)}
    todo = plan("a", owned, snapshot(dict.fromkeys(range(4), "a")), {"a", "b"}, tps(4))
    assert [tp.partition for tp in todo.release] == [2, 3]
    assert todo.take == []


def test_live_members_are_never_stolen_from() -> None:
    todo = plan("b", {}, snapshot(dict.fromkeys(range(4), "a")), {"a", "b"}, tps(4))
    assert todo.take == []


def test_dead_members_leases_are_taken() -> None:
    todo = plan("b", {}, snapshot(dict.fromkeys(range(4), "a")), {"b"}, tps(4))
    assert len(todo.take) == 4


def test_dead_members_leases_are_taken_at_once_even_beyond_quota() -> None:
    owners = {0: "b", 1: "b", 2: "dead", 3: "dead"}
    owned = {TopicPartition("t", 0): 1, TopicPartition("t", 1): 1}
    todo = plan("b", owned, snapshot(owners), {"b", "c"}, tps(4))
    assert [lease.tp.partition for lease in todo.take] == [2, 3]
    assert todo.release == []  # the surplus goes back at the next rebalance
    later = plan("b", {**owned, TopicPartition("t", 2): 1, TopicPartition("t", 3): 1},
                 snapshot(dict.fromkeys(range(4), "b")), {"b", "c"}, tps(4))
    assert [tp.partition for tp in later.release] == [2, 3]


def test_a_moved_lease_is_reported_lost() -> None:
    tp = TopicPartition("t", 0)
    snap = snapshot({0: "b", 1: "a"}, epoch=2)
    todo = plan("a", {tp: 1, TopicPartition("t", 1): 2}, snap, {"a", "b"}, tps(2))
    assert todo.lost == [tp]


def test_own_leases_from_an_earlier_life_come_first() -> None:
    snap = snapshot({0: None, 1: "a", 2: None})
    todo = plan("a", {}, snap, {"a", "b"}, tps(3))
    assert [lease.tp.partition for lease in todo.take] == [1, 0]


def test_partitions_no_longer_wanted_are_released() -> None:
    old, new = TopicPartition("old", 0), TopicPartition("new", 0)
    snap = GroupSnapshot(leases={old: Lease(old, "a", 3, None), new: Lease(new, None, 0, None)})
    todo = plan("a", {old: 3}, snap, {"a", "b"}, [new])
    assert todo.release == [old] and todo.lost == []
    assert [lease.tp for lease in todo.take] == [new]


def test_quota_is_shared_only_with_members_reading_the_same_topics() -> None:
    snap = GroupSnapshot(
        leases={tp: Lease(tp, "a" if tp.partition < 2 else None, 1, None) for tp in tps(4)},
        members={"a": Member("a", 1, topics=("t",)), "b": Member("b", 1, topics=("other",)),
                 "c": Member("c", 1)})  # c's subscription unknown: it counts
    todo = plan("a", {TopicPartition("t", 0): 1, TopicPartition("t", 1): 1}, snap,
                {"a", "b", "c"}, tps(4))
    assert [lease.tp.partition for lease in todo.take] == []  # 2 of 4 with c, not 2 of 4/3
    snap.members.pop("c")
    todo = plan("a", {TopicPartition("t", 0): 1, TopicPartition("t", 1): 1}, snap,
                {"a", "b"}, tps(4))
    assert [lease.tp.partition for lease in todo.take] == [2, 3]  # b reads other topics
