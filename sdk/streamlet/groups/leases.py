"""Consumer-group lease logic, pure: liveness by counter movement, targets, rebalance plans.

A member is live while its heartbeat counter keeps moving *as observed on this
process's own monotonic clock* (the KCL rule): no wall-clock timestamps from other
hosts are ever compared, so clock offsets cannot cause a steal and only rate drift
matters. With the heartbeat every third of the session timeout, an observer whose
clock runs up to ~2x fast still sees live members move in time.

Assignment is cooperative and sticky: every member computes the same per-topic targets
from the live members and their subscriptions (:func:`targets`: every partition of a
subscribed topic has a member meant for it; identical subscriptions split floor or ceil
of partitions/members), gives up only the partitions it holds beyond its target, and
takes only unowned or dead-owned partitions (dead-owned ones at once, even beyond
target, so a crash is handed over as soon as the first member notices). Nothing is ever
stolen from a live member.

Each member states its own session timeout in its member item (``session_ms``); an
observer waits for the longer of that and its own before judging the member dead, so a
member that beats rarely (a REST Proxy v2 instance beats only when its client calls)
keeps its partitions for the session it asked for.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..clock import Clock
from ..errors import InvalidRequest
from ..records import TopicPartition
from ..topicconfig import validate_topic_name

MAX_MEMBER_TOPICS = 1000
"""Topics one member may list (each a Kafka topic name: at most ~250 KB in all)."""
MAX_MEMBER_FIELD = 1024
"""Characters of a member's client id, host and instance id each."""
MAX_MEMBER_ID = 512
_GROUP = re.compile(r"[A-Za-z0-9._-]{1,249}")


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
    """A group id: Kafka's topic alphabet (``[A-Za-z0-9._-]``), 1 to 249 characters, not
    ``.`` or ``..``: one rule for every route, safe in URL paths, keys and IAM patterns.

    Raises InvalidRequest otherwise.

    Example:
        >>> validate_group("billing.eu")
        'billing.eu'
    """
    if not isinstance(group, str) or not _GROUP.fullmatch(group) or group in (".", ".."):
        raise InvalidRequest(f"Group id {group!r} must be 1 to 249 ASCII letters, digits, "
                             "'.', '_' or '-' (and not '.' or '..').")
    return group


def check_member(member: Member) -> None:
    """Bounded member state: its id, names and topic list; raises InvalidRequest."""
    if not 1 <= len(member.member_id) <= MAX_MEMBER_ID:
        raise InvalidRequest(f"A member id has 1 to {MAX_MEMBER_ID} characters.")
    for name in ("client_id", "host", "instance_id"):
        if len(getattr(member, name)) > MAX_MEMBER_FIELD:
            raise InvalidRequest(f"The member's {name} exceeds {MAX_MEMBER_FIELD} characters.")
    if len(member.topics) > MAX_MEMBER_TOPICS:
        raise InvalidRequest(f"Member '{member.member_id}' lists {len(member.topics)} topics; "
                             f"at most {MAX_MEMBER_TOPICS}.")
    for topic in member.topics:
        validate_topic_name(topic)


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


def targets(me: str, my_topics: Iterable[str], live: Iterable[str],
            members: Mapping[str, Member], partitions: Mapping[str, int]) -> dict[str, int]:
    """How many partitions of each topic ``me`` should own; every member computes the same.

    A topic's partitions are shared by the live members subscribed to it (a member whose
    subscription is unknown counts for every topic). Topics are dealt with the fewest
    sharers first, each partition going to the least loaded sharer (ties by member id),
    so every partition of a subscribed topic has a member meant to own it, and members
    with identical subscriptions own floor or ceil of partitions / members, the first
    ones by id taking the ceil.

    Example: ``a`` reads x; ``b`` reads x and y (4 partitions each): ``b`` takes y, ``a`` x.
        >>> subs = {"a": Member("a", 1, topics=("x",)), "b": Member("b", 1, topics=("x", "y"))}
        >>> targets("a", ["x"], {"a", "b"}, subs, {"x": 4, "y": 4})
        {'x': 4}
        >>> [targets(m, ["t"], "abc", {}, {"t": 8}) for m in "abc"]
        [{'t': 3}, {'t': 3}, {'t': 2}]
    """
    def reads(member: str) -> frozenset[str] | None:  # None: unknown, so every topic
        if member == me:
            return frozenset(my_topics)
        known = members.get(member)
        return frozenset(known.topics) if known is not None and known.topics else None

    subscriptions = {m: reads(m) for m in {*live, me}}
    sharers = {t: sorted(m for m, topics in subscriptions.items()
                         if topics is None or t in topics) for t in partitions}
    load = dict.fromkeys(subscriptions, 0)
    mine = {t: 0 for t in partitions if me in sharers[t]}
    for topic in sorted((t for t in partitions if sharers[t]),
                        key=lambda t: (len(sharers[t]), t)):
        queue = [(load[m], m) for m in sharers[topic]]
        heapq.heapify(queue)
        for _ in range(partitions[topic]):
            count, owner = heapq.heappop(queue)
            heapq.heappush(queue, (count + 1, owner))
            if owner == me:
                mine[topic] += 1
        load.update((m, count) for count, m in queue)
    return mine


@dataclass(frozen=True)
class Plan:
    """What one member should do next."""

    lost: list[TopicPartition]
    release: list[TopicPartition]
    take: list[Lease]


def plan(me: str, owned: Mapping[TopicPartition, int], snapshot: GroupSnapshot,
         live: set[str], wanted: Iterable[TopicPartition]) -> Plan:
    """Lose what moved away, give up what is beyond target or no longer wanted, take what
    is free, topic by topic (see :func:`targets`).

    Leases of dead members are taken at once even beyond target, so a crash is
    handed over as soon as any member notices it; the surplus is released at the
    next rebalance and settles on the members below target.
    """
    wanted = sorted(tp for tp in wanted if tp in snapshot.leases)
    leases = snapshot.leases
    lost = [tp for tp, epoch in owned.items()
            if (lease := leases.get(tp)) is None or lease.owner != me or lease.epoch != epoch]
    kept = sorted(tp for tp in owned if tp not in lost and tp in wanted)
    target = targets(me, {tp.topic for tp in wanted}, live, snapshot.members,
                     Counter(tp.topic for tp in leases))
    candidates = [leases[tp] for tp in wanted if tp not in owned]
    orphans = [lease for lease in candidates
               if lease.owner is not None and lease.owner != me and lease.owner not in live]
    free = sorted((lease for lease in candidates if lease.owner in (None, me)),
                  key=lambda lease: (lease.owner != me, lease.tp))
    # Owned but no longer wanted (its topic was unsubscribed or deleted): give it back.
    release = sorted(tp for tp in owned if tp not in lost and tp not in wanted)
    take = list(orphans)
    for topic, count in target.items():
        kept_here = [tp for tp in kept if tp.topic == topic]
        if not orphans:
            release += kept_here[count:]
        need = count - len(kept_here) - sum(lease.tp.topic == topic for lease in orphans)
        take += [lease for lease in free if lease.tp.topic == topic][:max(0, need)]
    return Plan(lost, release, take)
