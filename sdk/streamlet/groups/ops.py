"""What a consumer-group member needs from storage: the :class:`GroupOps` protocol.

Two implementations serve it: the engine's ``GroupStore`` (DynamoDB, in-process: direct
mode and the Lambda handlers) and the HTTP transport's ``HttpGroups`` (the native
``/v1/groups`` routes, which run the same ``GroupStore`` behind the API). The member
core (:mod:`streamlet.groups.member`) and ``Admin`` are written against this protocol
only.

Every method may also raise the retriable ``Throttled`` or ``RequestTimedOut`` (the
outcome of a write is then unknown; each write below is safe to repeat) and
``InvalidRequest`` for a malformed group id or partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from ..records import TopicPartition
from .leases import GroupSnapshot, Lease, Member


class GroupOps(Protocol):
    """Consumer-group state: member items, partition leases and committed offsets."""

    def snapshot(self, group: str) -> GroupSnapshot:
        """Every lease and member item of ``group``, read strongly consistent at once."""
        ...

    def lease(self, group: str, tp: TopicPartition) -> Lease | None:
        """One partition's lease (strongly consistent), or None if it has no lease item."""
        ...

    def list_groups(self) -> list[str]:
        """Every group id with any state, sorted."""
        ...

    def heartbeat(self, group: str, member: Member) -> int:
        """Create or renew ``member``'s item and bump its counter; returns the new counter.

        Observers judge liveness by the counter moving, never by timestamps.
        """
        ...

    def remove_member(self, group: str, member_id: str, seen_beat: int | None = None
                      ) -> None:
        """Delete a member item; with ``seen_beat``, only while its counter is still that
        (a dead member that came back is left alone). Never raises if it is gone."""
        ...

    def ensure_leases(self, group: str, tps: Iterable[TopicPartition]) -> None:
        """Create the missing lease items (unowned, epoch 0); existing ones stay as they are."""
        ...

    def take(self, group: str, tp: TopicPartition, member_id: str, seen: Lease
             ) -> Lease | None:
        """Take the lease last seen as ``seen``, bumping its epoch (the fencing token).

        Returns the lease now held, or None if anyone changed it since ``seen`` (a lost
        race, nothing written). A retried take whose first attempt landed is recognised.
        """
        ...

    def release(self, group: str, tp: TopicPartition, member_id: str, epoch: int) -> None:
        """Give the lease up if ``member_id`` still holds it at ``epoch``; else a no-op."""
        ...

    def commit(self, group: str, member_id: str,
               offsets: Mapping[TopicPartition, tuple[int, int, str]]) -> None:
        """Commit ``{tp: (lease epoch, next offset, metadata)}`` atomically.

        Fenced: raises ``CommitFailed`` and writes nothing if any lease is no longer
        ``member_id``'s at that epoch. ``InvalidRequest`` above 100 partitions (one
        DynamoDB transaction).
        """
        ...

    def reset(self, group: str, offsets: Mapping[TopicPartition, int],
              seen: Mapping[TopicPartition, Lease]) -> None:
        """Set committed offsets explicitly (even backwards), unowning each lease and
        bumping its epoch so any old owner is fenced; ``seen`` are the leases the caller
        planned from (``InvalidRequest`` if one changed meanwhile: nothing reset)."""
        ...

    def delete(self, group: str) -> None:
        """Delete every item of ``group``; ``GroupNotFound`` if it has none."""
        ...
