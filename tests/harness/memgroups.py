"""An in-memory GroupOps with the engine's conditional semantics, for pure member tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from streamlet.errors import CommitFailed, GroupNotFound
from streamlet.groups.leases import GroupSnapshot, Lease, Member
from streamlet.records import TopicPartition


class MemoryGroups:
    """One process's consumer-group state: takes and commits fenced by owner and epoch."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, TopicPartition], Lease] = {}
        self.members: dict[tuple[str, str], Member] = {}
        self.calls: list[str] = []

    def snapshot(self, group: str) -> GroupSnapshot:
        self.calls.append("snapshot")
        return GroupSnapshot({tp: lease for (g, tp), lease in self.leases.items() if g == group},
                             {m: member for (g, m), member in self.members.items() if g == group})

    def lease(self, group: str, tp: TopicPartition) -> Lease | None:
        return self.leases.get((group, tp))

    def list_groups(self) -> list[str]:
        return sorted({g for g, _ in self.leases} | {g for g, _ in self.members})

    def heartbeat(self, group: str, member: Member) -> int:
        old = self.members.get((group, member.member_id))
        beat = (old.beat if old else 0) + 1
        self.members[(group, member.member_id)] = replace(member, beat=beat)
        return beat

    def remove_member(self, group: str, member_id: str, seen_beat: int | None = None) -> None:
        found = self.members.get((group, member_id))
        if found is not None and (seen_beat is None or found.beat == seen_beat):
            del self.members[(group, member_id)]

    def ensure_leases(self, group: str, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.leases.setdefault((group, tp), Lease(tp, None, 0, None))

    def take(self, group: str, tp: TopicPartition, member_id: str, seen: Lease) -> Lease | None:
        self.calls.append(f"take {tp.topic}/{tp.partition}")
        now = self.leases[(group, tp)]
        if now.epoch != seen.epoch:
            return None
        taken = replace(now, owner=member_id, epoch=now.epoch + 1)
        self.leases[(group, tp)] = taken
        return taken

    def release(self, group: str, tp: TopicPartition, member_id: str, epoch: int) -> None:
        self.calls.append(f"release {tp.topic}/{tp.partition}")
        now = self.leases.get((group, tp))
        if now is not None and now.owner == member_id and now.epoch == epoch:
            self.leases[(group, tp)] = replace(now, owner=None)

    def commit(self, group: str, member_id: str,
               offsets: Mapping[TopicPartition, tuple[int, int, str]]) -> None:
        stale = [tp for tp, (epoch, _, _) in offsets.items()
                 if (lease := self.leases.get((group, tp))) is None
                 or lease.owner != member_id or lease.epoch != epoch]
        if stale:
            raise CommitFailed(group, stale)
        for tp, (_, offset, metadata) in offsets.items():
            self.leases[(group, tp)] = replace(self.leases[(group, tp)], committed=offset,
                                               metadata=metadata)

    def reset(self, group: str, offsets: Mapping[TopicPartition, int],
              seen: Mapping[TopicPartition, Lease]) -> None:
        for tp, offset in offsets.items():
            old = self.leases.get((group, tp), Lease(tp, None, 0, None))
            self.leases[(group, tp)] = replace(old, owner=None, epoch=old.epoch + 1,
                                               committed=offset)

    def delete(self, group: str) -> None:
        keys = [k for k in self.leases if k[0] == group]
        if not keys and not any(g == group for g, _ in self.members):
            raise GroupNotFound(group)
        for key in keys:
            del self.leases[key]
