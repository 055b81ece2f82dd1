"""REST Proxy v2 subscriptions: group membership for consumer instances that keep no process.

A subscribed instance is a member of the consumer group ``{group}`` in the same lease
items SDK consumers use, through the same member core (:mod:`streamlet.groups.member`),
so both kinds share partitions, fence each other's commits and show up together in
``streamlet groups describe``. Nothing runs between requests: **every request to the
instance is its heartbeat**, and a records request is also its rebalance tick
(:meth:`Subscriptions.tick`): bump the member's counter, read the group, judge liveness,
plan, release and take leases, then read only the partitions it owns, from the committed
offset (or ``auto.offset.reset``) the first time a partition is taken. Owned leases
(with their epochs), positions and the liveness tracker's observations persist in the
instance item.

Liveness is the KCL rule of :mod:`streamlet.groups.leases` with a persisted memory: the
instance remembers when each member's counter last moved, on the wall clock of whichever Lambda
serves the request (AWS hosts are time-synchronised far below a session timeout).
Requests to one instance are meant to come one at a time, as REST Proxy serializes them;
concurrent ones cannot break the fencing (every take and commit is conditional on the
lease epoch), they can only make the instance retake a lease and redeliver from the
committed offset.

The session timeout defaults to 30 s (``DEFAULT_SESSION_MS``, ``session.timeout.ms`` at
instance creation, 1 s to 5 min). REST clients beat only when they call, and one long
poll may hold a request for up to 20 s (the API's wait limit), so the session must
outlast a long poll plus the client's processing; Kafka's own default is 45 s. Much
longer would leave a crashed client's partitions unread for minutes: REST Proxy's 5-minute
instance timeout still applies to the instance item, but its partitions move after the
session. A records request never waits longer than half the session, so a client that
keeps polling is never judged dead by its own poll.

Topics are authorized as they are named: a :class:`TopicGrant` (the HTTP handlers pass
the caller's) refuses a subscription to a topic outside the grant, and a ``topic_pattern``
only ever matches topics the grant may read. Patterns are RE2 (linear time: Kafka's own
choice for group regexes), so no pattern can stall a request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..clock import SYSTEM, Clock, WallAsMonotonic
from ..errors import ConsumerIllegalState, InvalidRequest, TopicNotFound
from ..records import TopicPartition
from ..topicconfig import validate_topic_name
from .instance import ConsumerInstance
from .leases import LivenessTracker, Member, validate_group
from .member import GroupMember
from .ops import GroupOps

MAX_PATTERN_LENGTH = 1000
PATTERN_MEMORY = 1 << 20
"""RE2's memory budget for one compiled topic_pattern (bytes)."""
HOST = "rest-v2"
"""The ``host`` a REST instance's member item shows (``streamlet groups describe``)."""


class _Topic(Protocol):
    @property
    def partitions(self) -> int: ...


class Topics(Protocol):
    """The topic lookups membership needs (the engine's ``TopicStore``)."""

    def get(self, name: str, *, fresh: bool = False) -> _Topic:
        """The topic's metadata; ``TopicNotFound`` if it does not exist."""
        ...

    def list(self) -> list[str]:
        """Every topic name."""
        ...


class SubscriptionStore(Protocol):
    """Where an instance's subscription is kept (the engine's ``ConsumerInstances``)."""

    def subscribe(self, group: str, name: str, topics: Iterable[str], pattern: str | None
                  ) -> None: ...


class TopicGrant(Protocol):
    """What the caller may read (the HTTP handlers' view of the caller's grant)."""

    def may_read(self, topic: str) -> bool: ...

    def check_read(self, topic: str, partition: int | None = None) -> None:
        """AccessDenied naming ``topic`` unless the caller may read it."""
        ...


class _Everything:
    def may_read(self, topic: str) -> bool:
        return True

    def check_read(self, topic: str, partition: int | None = None) -> None:
        return None


EVERYTHING: TopicGrant = _Everything()
"""No restriction (direct mode: IAM on the tables decides)."""


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """A ``topic_pattern`` as an RE2 regex (matched against whole topic names).

    RE2 runs in time linear in the name whatever the pattern (``(a+)+b`` included); what it
    cannot compile (backreferences, lookaround, huge repetitions) is InvalidRequest.

    Example:
        >>> compile_pattern("orders\\..*").fullmatch("orders.eu") is not None
        True
    """
    import re2

    if not 1 <= len(pattern) <= MAX_PATTERN_LENGTH:
        raise InvalidRequest(f"topic_pattern must be 1 to {MAX_PATTERN_LENGTH} characters.")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = PATTERN_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args else "invalid"
        raise InvalidRequest(f"Invalid topic_pattern {pattern!r}: {reason} (RE2 syntax: no "
                             "backreferences or lookaround).") from None


class Subscriptions:
    """Joins, rebalances, commits for and removes subscribed consumer instances."""

    def __init__(self, groups: GroupOps, instances: SubscriptionStore, topics: Topics,
                 clock: Clock = SYSTEM, grant: TopicGrant = EVERYTHING) -> None:
        self._groups = groups
        self._instances = instances
        self._topics = topics
        self._clock = WallAsMonotonic(clock)
        self._grant = grant

    def subscribe(self, state: ConsumerInstance, topics: Sequence[str] | None,
                  pattern: str | None) -> None:
        """Subscribe to existing ``topics`` or a ``pattern``; joins the group at once.

        Raises ConsumerIllegalState if the instance has a manual assignment, InvalidRequest
        for a bad name or pattern, AccessDenied for a topic outside the grant, TopicNotFound
        for an unknown topic; nothing is written then.
        """
        if state.assignments:
            raise ConsumerIllegalState(
                f"Consumer instance '{state.name}' has a manual assignment: subscription and "
                "manual assignment are mutually exclusive.")
        if pattern is not None:
            compile_pattern(pattern)
        for topic in topics or ():
            self._grant.check_read(validate_topic_name(topic))
            self._topics.get(topic)  # TopicNotFound
        validate_group(state.group)
        self._instances.subscribe(state.group, state.name, topics or (), pattern)
        self.heartbeat(replace(state, topics=tuple(topics or ()), topic_pattern=pattern))

    def heartbeat(self, state: ConsumerInstance, topics: Iterable[str] = ()) -> None:
        """Bump the member's counter (every request to a subscribed instance does)."""
        member = Member(state.member_id, 0, state.name, HOST, "",
                        tuple(topics) or state.topics, state.session_ms // 3, state.session_ms)
        self._groups.heartbeat(state.group, member)

    def topic_names(self, state: ConsumerInstance) -> list[str]:
        """The subscribed topics (each still granted), or the existing topics the pattern
        matches among those the grant may read."""
        if state.topic_pattern is None:
            for topic in state.topics:
                self._grant.check_read(topic)
            return list(state.topics)
        regex = compile_pattern(state.topic_pattern)
        return [t for t in self._topics.list() if regex.fullmatch(t) and self._grant.may_read(t)]

    def _wanted(self, names: Iterable[str]) -> list[TopicPartition]:
        """Every partition of these topics (topics deleted meanwhile are skipped)."""
        out = []
        for name in names:
            try:
                count = self._topics.get(name).partitions
            except TopicNotFound:
                continue
            out += [TopicPartition(name, p) for p in range(count)]
        return out

    def _member(self, state: ConsumerInstance) -> GroupMember:
        """The member core, rebuilt from what the instance item remembers."""
        tracker = LivenessTracker(state.session_ms / 1000, self._clock)
        tracker.restore(state.seen)
        return GroupMember(self._groups, state.group, state.member_id, tracker, state.owned)

    def tick(self, state: ConsumerInstance) -> ConsumerInstance:
        """Heartbeat and rebalance once; the new state is returned, not saved."""
        names = self.topic_names(state)
        wanted = self._wanted(names)
        self.heartbeat(state, names)
        member = self._member(state)
        todo = member.plan(wanted)
        member.release(todo.release)  # beyond target, or unsubscribed / deleted
        positions = {tp: p for tp, p in state.positions.items() if tp in member.owned}
        for tp, taken in member.take(todo.take).items():
            if taken.committed is not None:
                positions[tp] = taken.committed
        return replace(state, owned=dict(member.owned), positions=positions,
                       seen=member.tracker.observations())

    def commit(self, state: ConsumerInstance,
               offsets: Mapping[TopicPartition, tuple[int, str]]) -> None:
        """Fenced commit of ``{tp: (next offset, metadata)}`` for partitions the instance owns.

        Raises ConsumerIllegalState without a subscription, CommitFailed (nothing written)
        for a partition it does not own, or no longer owns at its lease epoch.
        """
        if not state.subscribed:
            raise ConsumerIllegalState(
                f"Consumer instance '{state.name}' is not subscribed: committed offsets "
                "belong to the group's lease owners (subscribe instead of assigning).")
        self._member(state).commit(offsets)

    def leave(self, state: ConsumerInstance) -> None:
        """Release every owned lease and remove the member: others take over at once."""
        self._member(state).leave()
