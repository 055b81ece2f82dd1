"""JSON forms of consumer-group state on the native ``/v1/groups`` routes.

The Lambda handlers write them and the HTTP transport reads them (and the reverse for
request bodies), so both sides share these few functions.

Example:
    >>> tp = TopicPartition("orders", 0)
    >>> lease_from_json(lease_json(Lease(tp, "m-1", 3, 42))) == Lease(tp, "m-1", 3, 42)
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .leases import GroupSnapshot, Lease, Member
from .records import TopicPartition


def partition_json(tp: TopicPartition) -> dict[str, Any]:
    return {"topic": tp.topic, "partition": tp.partition}


def partitions_json(tps: Iterable[TopicPartition]) -> list[dict[str, Any]]:
    return [partition_json(tp) for tp in tps]


def lease_json(lease: Lease) -> dict[str, Any]:
    return {**partition_json(lease.tp), "owner": lease.owner, "epoch": lease.epoch,
            "committed": lease.committed, "metadata": lease.metadata,
            "committed_ms": lease.committed_ms}


def lease_from_json(data: Mapping[str, Any]) -> Lease:
    committed = data.get("committed")
    return Lease(TopicPartition(str(data["topic"]), int(data["partition"])),
                 None if data.get("owner") is None else str(data["owner"]),
                 int(data["epoch"]), None if committed is None else int(committed),
                 str(data.get("metadata") or ""), int(data.get("committed_ms") or 0))


def member_json(member: Member) -> dict[str, Any]:
    return {"member_id": member.member_id, "beat": member.beat,
            "client_id": member.client_id, "host": member.host,
            "instance_id": member.instance_id, "topics": list(member.topics),
            "heartbeat_ms": member.heartbeat_ms, "session_ms": member.session_ms}


def member_from_json(data: Mapping[str, Any]) -> Member:
    return Member(str(data["member_id"]), int(data.get("beat") or 0),
                  str(data.get("client_id") or ""), str(data.get("host") or ""),
                  str(data.get("instance_id") or ""),
                  tuple(str(t) for t in data.get("topics") or ()),
                  int(data.get("heartbeat_ms") or 3000), int(data.get("session_ms") or 0))


def snapshot_json(snapshot: GroupSnapshot) -> dict[str, Any]:
    return {"leases": [lease_json(lease) for _, lease in sorted(snapshot.leases.items())],
            "members": [member_json(m) for _, m in sorted(snapshot.members.items())]}


def snapshot_from_json(data: Mapping[str, Any]) -> GroupSnapshot:
    leases = [lease_from_json(item) for item in data.get("leases") or ()]
    members = [member_from_json(item) for item in data.get("members") or ()]
    return GroupSnapshot({lease.tp: lease for lease in leases},
                         {member.member_id: member for member in members})
