"""The SDK consumer's membership in a group: a heartbeat thread around one GroupMember.

The member core (:mod:`streamlet.groups.member`) does the rebalancing, commits and
leaving; this adds what a long-lived process does between polls: a background thread
bumps the member's heartbeat counter every ``heartbeat_interval_s``, as long as the
application keeps polling. A member that has not called ``poll`` for
``max_poll_interval_s`` (Kafka's ``max.poll.interval.ms``: its processing loop hangs)
stops beating and removes its member item, so the others take its partitions at once
(they treat a lease whose holder has no member item as orphaned); its next poll rejoins
and reports what it had as lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..clock import Clock
from ..errors import CommitFailed, StreamletError
from ..records import TopicPartition
from .leases import Lease, LivenessTracker, Member
from .member import GroupMember, commit_unowned
from .ops import GroupOps


@dataclass
class Changes:
    """What a rebalance changed for this member."""

    assigned: dict[TopicPartition, Lease] = field(default_factory=dict)
    revoked: list[TopicPartition] = field(default_factory=list)
    lost: list[TopicPartition] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.assigned or self.revoked or self.lost)


class Membership:
    """Joins ``group``, keeps its member item alive and moves leases cooperatively."""

    def __init__(self, groups: GroupOps, group: str, *, instance_id: str | None,
                 client_id: str, session_timeout_s: float, heartbeat_interval_s: float,
                 clock: Clock, max_poll_interval_s: float = 300.0) -> None:
        self._groups = groups
        self.group = group
        self.member_id = instance_id or f"{client_id}-{uuid.uuid4().hex[:12]}"
        self._me = Member(self.member_id, 0, client_id, socket.gethostname(),
                          instance_id or "", (), int(heartbeat_interval_s * 1000),
                          int(session_timeout_s * 1000))
        self._interval = heartbeat_interval_s
        self._member = GroupMember(groups, group, self.member_id,
                                   LivenessTracker(session_timeout_s, clock))
        self.topics: list[str] = []
        self._clock = clock
        self._max_poll_interval = max_poll_interval_s
        self._lock = threading.Lock()
        self._last_poll = clock.monotonic()
        self._in_poll = False
        self._expired = False
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        """Seconds between heartbeats (and between rebalance checks in poll)."""
        return self._interval

    @property
    def owned(self) -> dict[TopicPartition, int]:
        """The partitions this member holds, with their lease epochs."""
        return self._member.owned

    @property
    def expired(self) -> bool:
        """Whether the member left the group for not polling within max_poll_interval."""
        return self._expired

    # ---- heartbeats ---------------------------------------------------------------

    def start(self, topics: Iterable[str]) -> None:
        """Join (or re-subscribe) with these topics and keep beating."""
        self.topics = list(topics)
        self._me = dataclasses.replace(self._me, topics=tuple(self.topics))
        self.heartbeat()
        if self._thread is None or not self._thread.is_alive():
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._beat, args=(self._stop,), daemon=True,
                                            name=f"streamlet-heartbeat-{self.group}")
            self._thread.start()

    def heartbeat(self) -> None:
        self._groups.heartbeat(self.group, self._me)

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self._running.wait()
            if stop.is_set() or self._expire_if_idle():
                continue
            try:
                self.heartbeat()
            except StreamletError:
                continue  # transient: the next beat tries again

    def _expire_if_idle(self) -> bool:
        """True while expired; expires the member when poll has not been called within
        max_poll_interval: no more beats, and its member item goes (others take over)."""
        with self._lock:
            if not self._expired and not self._in_poll and \
                    self._clock.monotonic() - self._last_poll > self._max_poll_interval:
                self._expired = True
                with contextlib.suppress(StreamletError):  # if not, it dies by its session
                    self._groups.remove_member(self.group, self.member_id)
            return self._expired

    def _suspend_heartbeats(self, suspended: bool) -> None:
        """Test hook: emulate a paused process (no beats while suspended)."""
        if suspended:
            self._running.clear()
        else:
            self._running.set()

    # ---- the poll clock -----------------------------------------------------------

    def poll_started(self) -> list[TopicPartition]:
        """Called as poll starts: the member is live while in poll. If it had expired, it
        rejoins now and the partitions it held are returned (lost: others may have them)."""
        with self._lock:
            self._in_poll = True
            self._last_poll = self._clock.monotonic()
            if not self._expired:
                return []
            self._expired = False
            lost = sorted(self._member.owned)
            self._member.owned.clear()
        if self.topics:
            with contextlib.suppress(StreamletError):  # the thread's next beat retries
                self.heartbeat()
        return lost

    def poll_ended(self) -> None:
        """Called as poll returns: max_poll_interval counts from now."""
        with self._lock:
            self._in_poll = False
            self._last_poll = self._clock.monotonic()

    # ---- rebalancing --------------------------------------------------------------

    def rebalance(self, wanted: Iterable[TopicPartition]) -> tuple[Changes, list[TopicPartition]]:
        """Observe the group; returns lost and taken changes, and what to release.

        The caller commits and calls ``on_revoke`` for the release list, then calls
        :meth:`release`; ``assigned`` partitions are already taken.
        """
        todo = self._member.plan(wanted)
        changes = Changes(lost=todo.lost)
        changes.assigned = self._member.take(todo.take)
        return changes, todo.release

    def release(self, tps: Iterable[TopicPartition]) -> None:
        self._member.release(tps)

    def commit(self, offsets: Mapping[TopicPartition, tuple[int, str]]) -> None:
        """Fenced commit: every partition must be ours at the epoch we were granted."""
        self._groups.commit(self.group, self.member_id, self.fenced(offsets))

    def fenced(self, offsets: Mapping[TopicPartition, tuple[int, str]]
               ) -> dict[TopicPartition, tuple[int, int, str]]:
        """The offsets with the epochs held now (to commit now or on another thread);
        CommitFailed for partitions not held, or all of them once the member expired."""
        if self._expired:
            raise CommitFailed(self.group, offsets, detail="max_poll_interval_ms passed "
                               "without a poll, so this member left the group; poll again "
                               "to rejoin")
        return self._member.fenced(offsets)

    def commit_call(self, fenced: Mapping[TopicPartition, tuple[int, int, str]]) -> None:
        """Write offsets prepared by :meth:`fenced` (from any thread)."""
        self._groups.commit(self.group, self.member_id, fenced)

    def commit_assigned(self, offsets: Mapping[TopicPartition, tuple[int, str]]) -> None:
        """Commit for manually assigned partitions (see :func:`~.member.commit_unowned`)."""
        commit_unowned(self._groups, self.group, self.member_id, offsets)

    def drop_lost(self) -> list[TopicPartition]:
        """Forget the partitions whose lease moved (owner or epoch); returns them."""
        return self._member.drop_lost()

    def leave(self) -> None:
        """Release every lease and remove the member item: others take over at once."""
        self._stop.set()
        self._running.set()
        self.topics = []
        self._me = dataclasses.replace(self._me, topics=())
        try:
            self._member.leave()
        finally:
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
            self._thread = None
