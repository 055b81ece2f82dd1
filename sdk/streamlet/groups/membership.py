"""The SDK consumer's membership in a group: a heartbeat thread around one GroupMember.

The member core (:mod:`streamlet.groups.member`) does the rebalancing, commits and
leaving; this adds what a long-lived process does between polls: a background thread
bumps the member's heartbeat counter every ``heartbeat_interval_s``.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..clock import Clock
from ..errors import StreamletError
from ..records import TopicPartition
from .leases import Lease, LivenessTracker, Member
from .member import GroupMember
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
                 clock: Clock) -> None:
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

    # ---- heartbeats ---------------------------------------------------------------

    def start(self, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        self._me = dataclasses.replace(self._me, topics=tuple(self.topics))
        self.heartbeat()
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name=f"streamlet-heartbeat-{self.group}")
            self._thread.start()

    def heartbeat(self) -> None:
        self._groups.heartbeat(self.group, self._me)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self._running.wait()
            try:
                self.heartbeat()
            except StreamletError:
                continue  # transient: the next beat tries again

    def _suspend_heartbeats(self, suspended: bool) -> None:
        """Test hook: emulate a paused process (no beats while suspended)."""
        if suspended:
            self._running.clear()
        else:
            self._running.set()

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
        self._member.commit(offsets)

    def drop_lost(self) -> list[TopicPartition]:
        """Forget the partitions whose lease moved (owner or epoch); returns them."""
        return self._member.drop_lost()

    def leave(self) -> None:
        """Release every lease and remove the member item: others take over at once."""
        self._stop.set()
        self._running.set()
        self._member.leave()
        if self._thread is not None:
            self._thread.join(timeout=5)
