"""REST Proxy v2 subscriptions: group membership for consumer instances that keep no process.

A subscribed instance is a member of the consumer group ``{group}`` in the same lease
items SDK consumers use (:mod:`streamlet.engine.groups`), so both kinds share partitions,
fence each other's commits and show up together in ``streamlet groups describe``. Nothing
runs between requests: **every request to the instance is its heartbeat**, and a records
request is also its rebalance tick (:meth:`Subscriptions.tick`): read the group, bump the
member's counter, judge liveness, plan with :func:`streamlet.leases.plan`, release and take
leases, then read only the partitions it owns, from the committed offset (or
``auto.offset.reset``) the first time a partition is taken. Owned leases (with their
epochs), positions and the liveness tracker's observations persist in the instance item.

Liveness is the KCL rule of :mod:`streamlet.leases` with a persisted memory: the instance
remembers when each member's counter last moved, on the wall clock of whichever Lambda
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
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from ..errors import CommitFailed, InvalidRequest, StreamletError, TopicNotFound
from ..leases import LivenessTracker, Member, plan, validate_group
from ..records import TopicPartition
from ..topicconfig import validate_topic_name
from .groups import GroupStore
from .instances import ConsumerIllegalState, ConsumerInstance, ConsumerInstances
from .topics import TopicStore

MAX_PATTERN_LENGTH = 1000
HOST = "rest-v2"
"""The ``host`` a REST instance's member item shows (``streamlet groups describe``)."""


class _WallClock:
    """The liveness clock of a process-less member: seconds since the epoch."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def monotonic(self) -> float:
        return self._clock()


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A ``topic_pattern`` (matched against whole topic names); InvalidRequest if bad."""
    if not 1 <= len(pattern) <= MAX_PATTERN_LENGTH:
        raise InvalidRequest(f"topic_pattern must be 1 to {MAX_PATTERN_LENGTH} characters.")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise InvalidRequest(f"Invalid topic_pattern {pattern!r}: {e}.") from None


class Subscriptions:
    """Joins, rebalances, commits for and removes subscribed consumer instances."""

    def __init__(self, groups: GroupStore, instances: ConsumerInstances, topics: TopicStore,
                 clock: Callable[[], float] = time.time) -> None:
        self._groups = groups
        self._instances = instances
        self._topics = topics
        self._clock = _WallClock(clock)

    def subscribe(self, state: ConsumerInstance, topics: Sequence[str] | None,
                  pattern: str | None) -> None:
        """Subscribe to existing ``topics`` or a ``pattern``; joins the group at once.

        Raises ConsumerIllegalState if the instance has a manual assignment, InvalidRequest
        for a bad name or pattern, TopicNotFound for an unknown topic; nothing is written
        then.
        """
        if state.assignments:
            raise ConsumerIllegalState(
                f"Consumer instance '{state.name}' has a manual assignment: subscription and "
                "manual assignment are mutually exclusive.")
        if pattern is not None:
            compile_pattern(pattern)
        for topic in topics or ():
            self._topics.get(validate_topic_name(topic))  # TopicNotFound
        validate_group(state.group)
        self._instances.subscribe(state.group, state.name, topics or (), pattern)
        self.heartbeat(replace(state, topics=tuple(topics or ()), topic_pattern=pattern))

    def heartbeat(self, state: ConsumerInstance, topics: Iterable[str] = ()) -> None:
        """Bump the member's counter (every request to a subscribed instance does)."""
        member = Member(state.member_id, 0, state.name, HOST, "",
                        tuple(topics) or state.topics, state.session_ms // 3, state.session_ms)
        self._groups.heartbeat(state.group, member)

    def topic_names(self, state: ConsumerInstance) -> list[str]:
        """The subscribed topics, or the existing topics the pattern matches."""
        if state.topic_pattern is None:
            return list(state.topics)
        regex = compile_pattern(state.topic_pattern)
        return [t for t in self._topics.list() if regex.fullmatch(t)]

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

    def tick(self, state: ConsumerInstance) -> ConsumerInstance:
        """Heartbeat and rebalance once; the new state is returned, not saved."""
        names = self.topic_names(state)
        wanted = self._wanted(names)
        self.heartbeat(state, names)
        snapshot = self._groups.snapshot(state.group)
        missing = [tp for tp in wanted if tp not in snapshot.leases]
        if missing:
            self._groups.ensure_leases(state.group, missing)
            snapshot = self._groups.snapshot(state.group)
        tracker = LivenessTracker(state.session_ms / 1000, self._clock)
        tracker.restore(state.seen)
        tracker.observe(snapshot.members)
        todo = plan(state.member_id, state.owned, snapshot, tracker.live() | {state.member_id},
                    wanted)
        owned = {tp: e for tp, e in state.owned.items() if tp not in todo.lost}
        for tp in todo.release:  # beyond target, or unsubscribed / deleted
            self._groups.release(state.group, tp, state.member_id, owned.pop(tp))
        positions = {tp: p for tp, p in state.positions.items() if tp in owned}
        for lease in todo.take:
            try:
                taken = self._groups.take(state.group, lease.tp, state.member_id, lease)
            except StreamletError:
                break  # transient: the next request goes on
            if taken is not None:
                owned[lease.tp] = taken.epoch
                if taken.committed is not None:
                    positions[lease.tp] = taken.committed
        self._forget(state, tracker.dead())
        return replace(state, owned=owned, positions=positions, seen=tracker.observations())

    def _forget(self, state: ConsumerInstance, dead: Mapping[str, int]) -> None:
        """Tidy up members that stopped beating (only if still at the beat we saw)."""
        for member_id, beat in dead.items():
            if member_id != state.member_id:
                with contextlib.suppress(StreamletError):
                    self._groups.remove_member(state.group, member_id, seen_beat=beat)

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
        not_owned = [tp for tp in offsets if tp not in state.owned]
        if not_owned:
            raise CommitFailed(state.group, not_owned)
        self._groups.commit(state.group, state.member_id, {
            tp: (state.owned[tp], offset, metadata)
            for tp, (offset, metadata) in offsets.items()})

    def leave(self, state: ConsumerInstance) -> None:
        """Release every owned lease and remove the member: others take over at once."""
        for tp, epoch in state.owned.items():
            self._groups.release(state.group, tp, state.member_id, epoch)
        self._groups.remove_member(state.group, state.member_id)
