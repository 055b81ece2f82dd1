"""Consumer-group lease logic, pure: liveness by counter movement, quotas, rebalance plans.

A member is live while its heartbeat counter keeps moving *as observed on this
process's own monotonic clock* (the KCL rule): no wall-clock timestamps from other
hosts are ever compared, so clock offsets cannot cause a steal and only rate drift
matters. With the heartbeat every third of the session timeout, an observer whose
clock runs up to ~2x fast still sees live members move in time.

Assignment is cooperative and sticky: every member computes the same quota from the
sorted list of live members (each owns floor or ceil of partitions/members), gives up
only the partitions it holds beyond its quota, and takes only unowned or dead-owned
partitions (dead-owned ones at once, even beyond quota, so a crash is handed over as
soon as the first member notices). Nothing is ever stolen from a live member.

Each member states its own session timeout in its member item (``session_ms``); an
observer waits for the longer of that and its own before judging the member dead, so a
member that beats rarely (a REST Proxy v2 instance beats only when its client calls)
keeps its partitions for the session it asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .errors import InvalidRequest
from .records import TopicPartition


class Clock(Protocol):
    """A monotonic clock in seconds (injectable for tests)."""

    def monotonic(self) -> float: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True, slots=True)
class Lease:
    """One partition's lease: owner, fencing epoch and committed offset."""

    tp: TopicPartition
    owner: str | None
    epoch: int
    committed: int | None
    metadata: str = ""
    committed_ms: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    """One member's item: its heartbeat counter and who it is."""

    member_id: str
    beat: int
    client_id: str = ""
    host: str = ""
    instance_id: str = ""
    topics: tuple[str, ...] = ()
    heartbeat_ms: int = 3000
    session_ms: int = 0
    """The member's own session timeout (0: unknown, the observer's own applies)."""


@dataclass(frozen=True)
class GroupSnapshot:
    """Everything under a group's key, read in one strongly consistent Query."""

    leases: dict[TopicPartition, Lease] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)


def validate_group(group: object) -> str:
    """A group id: a string of 1 to 249 characters without ``#``; raises InvalidRequest.

    Example:
        >>> validate_group("billing")
        'billing'
    """
    if not isinstance(group, str) or not 1 <= len(group) <= 249 or "#" in group:
        raise InvalidRequest(f"Group id {group!r} must be a string of 1 to 249 characters "
                             "without '#'.")
    return group


class LivenessTracker:
    """Remembers, per member, when (on our clock) its counter last moved.

    A member is dead once its counter has not moved for the longer of our session
    timeout and the one it states (``Member.session_ms``).
    """

    def __init__(self, session_timeout_s: float, clock: Clock) -> None:
        self._timeout = session_timeout_s
        self._clock = clock
        self._seen: dict[str, tuple[int, float, float]] = {}

    def observe(self, members: Mapping[str, Member]) -> None:
        now = self._clock.monotonic()
        for member_id, member in members.items():
            last = self._seen.get(member_id)
            timeout = max(self._timeout, member.session_ms / 1000)
            moved = now if last is None or last[0] != member.beat else last[1]
            self._seen[member_id] = (member.beat, moved, timeout)
        for gone in set(self._seen) - set(members):
            del self._seen[gone]

    def live(self) -> set[str]:
        now = self._clock.monotonic()
        return {m for m, (_, moved, timeout) in self._seen.items() if now - moved < timeout}

    def dead(self) -> dict[str, int]:
        """Members whose counter has not moved for the session timeout -> last beat seen."""
        alive = self.live()
        return {m: seen[0] for m, seen in self._seen.items() if m not in alive}

    def observations(self) -> dict[str, tuple[int, float]]:
        """``{member: (beat, when it last moved)}``: what a stateless observer persists."""
        return {m: (beat, moved) for m, (beat, moved, _) in self._seen.items()}

    def restore(self, observations: Mapping[str, tuple[int, float]]) -> None:
        """Resume from :meth:`observations` saved earlier (timeouts come with observe)."""
        self._seen = {m: (beat, moved, self._timeout)
                      for m, (beat, moved) in observations.items()}


def quota(member_id: str, live: Iterable[str], partitions: int) -> int:
    """Partitions ``member_id`` should own: floor or ceil of partitions / members.

    Example:
        >>> [quota(m, ["a", "b", "c"], 8) for m in "abc"]
        [3, 3, 2]
    """
    members = sorted(set(live) | {member_id})
    base, extra = divmod(partitions, len(members))
    return base + (1 if members.index(member_id) < extra else 0)


@dataclass(frozen=True)
class Plan:
    """What one member should do next."""

    lost: list[TopicPartition]
    release: list[TopicPartition]
    take: list[Lease]


def _sharing(live: set[str], members: Mapping[str, Member], topics: set[str]) -> set[str]:
    """The live members that split ``topics`` with us: those subscribed to one of them
    (or whose subscription is not known). A member that moved to other topics no longer
    counts, so the partitions it gave back are taken by the members still reading them."""
    return {m for m in live
            if m not in members or not members[m].topics or topics & set(members[m].topics)}


def plan(me: str, owned: Mapping[TopicPartition, int], snapshot: GroupSnapshot,
         live: set[str], wanted: Iterable[TopicPartition]) -> Plan:
    """Lose what moved away, give up what is beyond quota or no longer wanted, take what
    is free.

    Leases of dead members are taken at once even beyond quota, so a crash is
    handed over as soon as any member notices it; the surplus is released at the
    next rebalance and settles on the members below quota.
    """
    wanted = sorted(tp for tp in wanted if tp in snapshot.leases)
    leases = snapshot.leases
    lost = [tp for tp, epoch in owned.items()
            if (lease := leases.get(tp)) is None or lease.owner != me or lease.epoch != epoch]
    kept = sorted(tp for tp in owned if tp not in lost and tp in wanted)
    target = quota(me, _sharing(live, snapshot.members, {tp.topic for tp in wanted}),
                   len(wanted))
    candidates = [leases[tp] for tp in wanted if tp not in owned]
    orphans = [lease for lease in candidates
               if lease.owner is not None and lease.owner != me and lease.owner not in live]
    free = sorted((lease for lease in candidates if lease.owner in (None, me)),
                  key=lambda lease: (lease.owner != me, lease.tp))
    need = max(0, target - len(kept) - len(orphans))
    # Owned but no longer wanted (its topic was unsubscribed or deleted): give it back.
    dropped = sorted(tp for tp in owned if tp not in lost and tp not in wanted)
    release = dropped + (kept[target:] if not orphans else [])
    return Plan(lost, release, orphans + free[:need])
