"""One consumer-group member, written once: a rebalance step, fenced commits and leaving.

Two kinds of member use it: the SDK consumer's threaded membership
(:mod:`streamlet.groups.membership`), which keeps a member object for its whole life,
and the REST Proxy v2 consumer instances (:mod:`streamlet.groups.subscriptions`), which
keep no process and rebuild a member from their stored state on every request. Both do
the same steps through :class:`~streamlet.groups.ops.GroupOps`:

1. :meth:`GroupMember.plan`: make sure every wanted partition has a lease item, read the
   group once, update liveness (the KCL rule, see :mod:`streamlet.groups.leases`),
   tidy up dead members, and plan with :func:`~streamlet.groups.leases.plan`; partitions
   whose lease moved away are forgotten at once (``lost``);
2. the caller hands back what the plan releases (the SDK consumer commits and runs
   ``on_revoke`` first) with :meth:`GroupMember.release`;
3. :meth:`GroupMember.take` takes what the plan says, each take bumping the lease epoch.

Example:
    >>> member = GroupMember(store, "billing", "m-1", LivenessTracker(10, SYSTEM))  # doctest: +SKIP
    >>> todo = member.plan([TopicPartition("orders", 0)])                          # doctest: +SKIP
    >>> member.release(todo.release); member.take(todo.take)                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from ..errors import CommitFailed, StreamletError
from ..records import TopicPartition
from .leases import Lease, LivenessTracker, Plan, plan
from .ops import GroupOps


class GroupMember:
    """A member's view of its group: who it is, what it owns (tp -> lease epoch)."""

    def __init__(self, groups: GroupOps, group: str, member_id: str,
                 tracker: LivenessTracker, owned: Mapping[TopicPartition, int] | None = None
                 ) -> None:
        self.groups = groups
        self.group = group
        self.member_id = member_id
        self.tracker = tracker
        self.owned: dict[TopicPartition, int] = dict(owned or {})

    def plan(self, wanted: Iterable[TopicPartition]) -> Plan:
        """Observe the group and plan; lost partitions are already dropped from ``owned``."""
        wanted = list(wanted)
        snapshot = self.groups.snapshot(self.group)
        missing = [tp for tp in wanted if tp not in snapshot.leases]
        if missing:
            self.groups.ensure_leases(self.group, missing)
            snapshot = self.groups.snapshot(self.group)
        self.tracker.observe(snapshot.members)
        self._forget_dead(snapshot.members)
        todo = plan(self.member_id, self.owned, snapshot,
                    self.tracker.live() | {self.member_id}, wanted)
        for tp in todo.lost:
            self.owned.pop(tp, None)
        return todo

    def take(self, leases: Iterable[Lease]) -> dict[TopicPartition, Lease]:
        """Take each lease (in order) until a storage error; returns what was taken.

        A lease someone else moved first is skipped; a transient error stops the round
        (the next rebalance goes on from there).
        """
        taken: dict[TopicPartition, Lease] = {}
        for lease in leases:
            try:
                got = self.groups.take(self.group, lease.tp, self.member_id, lease)
            except StreamletError:
                break
            if got is not None:
                self.owned[lease.tp] = got.epoch
                taken[lease.tp] = got
        return taken

    def release(self, tps: Iterable[TopicPartition]) -> None:
        """Give these leases up (those still owned), so others can take them at once."""
        for tp in tps:
            epoch = self.owned.pop(tp, None)
            if epoch is not None:
                self.groups.release(self.group, tp, self.member_id, epoch)

    def _forget_dead(self, members: Mapping[str, object]) -> None:
        """Remove the items of members that stopped beating (only at the beat we saw)."""
        for member_id, beat in self.tracker.dead().items():
            if member_id != self.member_id and member_id in members:
                with contextlib.suppress(StreamletError):
                    self.groups.remove_member(self.group, member_id, seen_beat=beat)

    def commit(self, offsets: Mapping[TopicPartition, tuple[int, str]]) -> None:
        """Commit ``{tp: (next offset, metadata)}``, fenced by the epochs this member holds.

        Raises CommitFailed (nothing written) for a partition it does not own, or no
        longer owns at its epoch.
        """
        self.groups.commit(self.group, self.member_id, self.fenced(offsets))

    def fenced(self, offsets: Mapping[TopicPartition, tuple[int, str]]
               ) -> dict[TopicPartition, tuple[int, int, str]]:
        """``{tp: (lease epoch, offset, metadata)}`` for a commit now or later (the epochs
        are the ones held now); CommitFailed for a partition this member does not own."""
        not_owned = [tp for tp in offsets if tp not in self.owned]
        if not_owned:
            raise CommitFailed(self.group, not_owned)
        return {tp: (self.owned[tp], offset, metadata)
                for tp, (offset, metadata) in offsets.items()}

    def drop_lost(self) -> list[TopicPartition]:
        """Forget the partitions whose lease moved (owner or epoch); returns them."""
        leases = self.groups.snapshot(self.group).leases
        lost = [tp for tp, epoch in self.owned.items()
                if (lease := leases.get(tp)) is None or lease.owner != self.member_id
                or lease.epoch != epoch]
        for tp in lost:
            del self.owned[tp]
        return lost

    def leave(self) -> None:
        """Release every lease and remove the member item: others take over at once."""
        self.release(list(self.owned))
        self.groups.remove_member(self.group, self.member_id)


def commit_unowned(groups: GroupOps, group: str, member_id: str,
                   offsets: Mapping[TopicPartition, tuple[int, str]]) -> None:
    """Commit for a consumer that assigned itself partitions (no subscription): Kafka's
    "simple consumer group", allowed only where no member of the group reads.

    A partition qualifies when its lease is unowned, or held by an id without a member
    item (a member that left or was removed as dead, or an earlier commit of this
    consumer). Each lease is borrowed for the length of one commit: taken (bumping its
    epoch, which fences any holder that comes back), committed as owners commit, released.
    Raises CommitFailed, committing nothing, when a member holds one of the partitions or
    takes one meanwhile.

    Example:
        >>> commit_unowned(store, "billing", "tool-1", {tp: (42, "")})  # doctest: +SKIP
    """
    if not offsets:
        return
    snapshot = groups.snapshot(group)
    missing = [tp for tp in offsets if tp not in snapshot.leases]
    if missing:
        groups.ensure_leases(group, missing)
        snapshot = groups.snapshot(group)
    leases = snapshot.leases
    held = [tp for tp in offsets if (owner := leases[tp].owner) not in (None, member_id)
            and owner in snapshot.members]
    if held:
        raise CommitFailed(group, held, detail="a member of the group reads them; a consumer "
                                               "using assign() commits only partitions no "
                                               "member holds")
    taken: dict[TopicPartition, int] = {}
    try:
        for tp in offsets:
            got = groups.take(group, tp, member_id, leases[tp])
            if got is None:
                raise CommitFailed(group, [tp], detail="a member took it meanwhile")
            taken[tp] = got.epoch
        groups.commit(group, member_id, {tp: (taken[tp], offset, metadata)
                                         for tp, (offset, metadata) in offsets.items()})
    finally:
        for tp, epoch in taken.items():
            with contextlib.suppress(StreamletError):
                groups.release(group, tp, member_id, epoch)
