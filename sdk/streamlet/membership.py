"""One consumer's membership in a group: heartbeats, rebalances, fenced commits."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import CommitFailed, StreamletError
from .leases import Clock, Lease, LivenessTracker, Member, plan
from .records import TopicPartition
from .transport import Transport


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

    def __init__(self, transport: Transport, group: str, *, instance_id: str | None,
                 client_id: str, session_timeout_s: float, heartbeat_interval_s: float,
                 clock: Clock) -> None:
        self._groups = transport.groups
        self._transport = transport
        self.group = group
        self.member_id = instance_id or f"{client_id}-{uuid.uuid4().hex[:12]}"
        self._me = Member(self.member_id, 0, client_id, socket.gethostname(),
                          instance_id or "", (), int(heartbeat_interval_s * 1000),
                          int(session_timeout_s * 1000))
        self._interval = heartbeat_interval_s
        self._tracker = LivenessTracker(session_timeout_s, clock)
        self.owned: dict[TopicPartition, int] = {}
        self.topics: list[str] = []
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        """Seconds between heartbeats (and between rebalance checks in poll)."""
        return self._interval

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
        """Observe the group; returns lost and to-be-taken changes, and what to release.

        The caller commits and calls ``on_revoke`` for the release list, then calls
        :meth:`release`; ``assigned`` partitions are already taken.
        """
        wanted = list(wanted)
        snapshot = self._groups.snapshot(self.group)
        missing = [tp for tp in wanted if tp not in snapshot.leases]
        if missing:
            self._groups.ensure_leases(self.group, missing)
            snapshot = self._groups.snapshot(self.group)
        self._tracker.observe(snapshot.members)
        live = self._tracker.live() | {self.member_id}
        self._forget_dead(snapshot.members)
        todo = plan(self.member_id, self.owned, snapshot, live, wanted)
        changes = Changes(lost=todo.lost)
        for tp in todo.lost:
            self.owned.pop(tp, None)
        for lease in todo.take:
            try:
                taken = self._groups.take(self.group, lease.tp, self.member_id, lease)
            except StreamletError:
                break  # transient: report what was taken; the next rebalance goes on
            if taken is not None:
                self.owned[lease.tp] = taken.epoch
                changes.assigned[lease.tp] = taken
        return changes, todo.release

    def _forget_dead(self, members: Mapping[str, Member]) -> None:
        """Tidy up members that stopped beating (TTL would too, within a day)."""
        for member_id, beat in self._tracker.dead().items():
            if member_id != self.member_id and member_id in members:
                with contextlib.suppress(StreamletError):
                    self._groups.remove_member(self.group, member_id, seen_beat=beat)

    def release(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            epoch = self.owned.pop(tp, None)
            if epoch is not None:
                self._groups.release(self.group, tp, self.member_id, epoch)

    # ---- commits ------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, tuple[int, str]]) -> None:
        """Fenced commit: every partition must be ours at the epoch we were granted."""
        not_owned = [tp for tp in offsets if tp not in self.owned]
        if not_owned:
            raise CommitFailed(self.group, not_owned)
        self._groups.commit(self.group, self.member_id, {
            tp: (self.owned[tp], offset, metadata) for tp, (offset, metadata) in offsets.items()
        })

    def drop_lost(self) -> list[TopicPartition]:
        """Forget the partitions whose lease moved (owner or epoch); returns them."""
        leases = self._groups.snapshot(self.group).leases
        lost = [tp for tp, epoch in self.owned.items()
                if (lease := leases.get(tp)) is None or lease.owner != self.member_id
                or lease.epoch != epoch]
        for tp in lost:
            del self.owned[tp]
        return lost

    def leave(self) -> None:
        """Release every lease and remove the member item: others take over at once."""
        self._stop.set()
        self._running.set()
        self.release(list(self.owned))
        self._groups.remove_member(self.group, self.member_id)
        if self._thread is not None:
            self._thread.join(timeout=5)
