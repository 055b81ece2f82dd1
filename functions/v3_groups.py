"""Confluent REST Proxy v3 consumer groups (read-only): groups, members, lags, lag summary.

Served by the admin handler. A group exists while it has leases or members (as for
:meth:`streamlet.admin.Admin.describe_group`); an unknown group is a 404 with error_code
40404. ``state`` is ``STABLE`` while any member item is known, else ``EMPTY``; the
assignor is always ``cooperative-sticky`` and there is no coordinator. As in REST Proxy,
lags list only the partitions with a committed offset (lag = log end - committed).
"""

from __future__ import annotations

from typing import Any

from streamlet.admin import Admin, GroupPartition
from streamlet.errors import GroupNotFound
from streamlet.groups.leases import GroupSnapshot, Member
from streamlet.wire import CLUSTER_ID

from ._runtime import engine
from ._shared import ClusterId, check_cluster, listing, new_router, related, resource_meta, unquoted

router = new_router()
GROUPS = "/v3/clusters/<cluster_id>/consumer-groups"
ASSIGNOR = "cooperative-sticky"


def _path(*parts: object) -> str:
    return "/".join((f"/v3/clusters/{CLUSTER_ID}/consumer-groups", *map(str, parts)))


def _meta(path: str, crn: str) -> dict[str, Any]:
    return resource_meta(router.current_event, path, f"/consumer-group={crn}")


def _related(path: str) -> dict[str, str]:
    return related(router.current_event, path)


def _listing(kind: str, path: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return listing(router.current_event, kind, path, data)


def _text(value: str | None) -> str | None:
    """Member fields the heartbeat stores as ``-`` when the client gave none."""
    return None if value in (None, "", "-") else value


def _snapshot(group: str) -> GroupSnapshot:
    snap = engine().groups.snapshot(group)
    if not snap.leases and not snap.members:
        raise GroupNotFound(group)
    return snap


def group_resource(group: str, snap: GroupSnapshot) -> dict[str, Any]:
    return {"kind": "KafkaConsumerGroup", "metadata": _meta(_path(group), group),
            "cluster_id": CLUSTER_ID, "consumer_group_id": group, "is_simple": False,
            "partition_assignor": ASSIGNOR, "state": "STABLE" if snap.members else "EMPTY",
            "coordinator": None, "consumers": _related(_path(group, "consumers")),
            "lag_summary": _related(_path(group, "lag-summary"))}


def consumer_resource(group: str, member: Member) -> dict[str, Any]:
    path = _path(group, "consumers", member.member_id)
    return {"kind": "KafkaConsumer",
            "metadata": _meta(path, f"{group}/consumer={member.member_id}"),
            "cluster_id": CLUSTER_ID, "consumer_group_id": group,
            "consumer_id": member.member_id, "instance_id": _text(member.instance_id),
            "client_id": _text(member.client_id), "host": _text(member.host),
            "assignments": _related(f"{path}/assignments")}


def lag_resource(row: GroupPartition, member: Member | None) -> dict[str, Any]:
    path = _path(row.group, "lags", row.topic, "partitions", row.partition)
    return {"kind": "KafkaConsumerLag",
            "metadata": _meta(path, f"{row.group}/lag={row.topic}/partition={row.partition}"),
            "cluster_id": CLUSTER_ID, "consumer_group_id": row.group,
            "topic_name": row.topic, "partition_id": row.partition,
            "current_offset": row.current_offset, "log_end_offset": row.log_end_offset,
            "lag": row.lag, "consumer_id": row.consumer_id,
            "instance_id": _text(member.instance_id) if member else None,
            "client_id": _text(row.client_id)}


def _lags(group: str) -> list[dict[str, Any]]:
    """Committed partitions' lags (Admin.describe_group), with the owners' instance ids."""
    rows = [r for r in Admin(transport=engine()).describe_group(group) if r.lag is not None]
    members = engine().groups.snapshot(group).members if rows else {}
    return [lag_resource(r, members.get(r.consumer_id or "")) for r in rows]


@router.get(GROUPS)
def list_consumer_groups(cluster_id: ClusterId) -> dict[str, Any]:
    """Every consumer group with leases or members."""
    check_cluster(cluster_id)
    data = []
    for group in engine().groups.list_groups():
        snap = engine().groups.snapshot(group)
        if snap.leases or snap.members:  # not deleted meanwhile, not only v2 instances
            data.append(group_resource(group, snap))
    return _listing("KafkaConsumerGroupList", _path(), data)


@router.get(f"{GROUPS}/<group>")
def get_consumer_group(cluster_id: ClusterId, group: str) -> dict[str, Any]:
    """One consumer group; 404 (40404) if it has no state."""
    check_cluster(cluster_id)
    name = unquoted(group)
    return group_resource(name, _snapshot(name))


@router.get(f"{GROUPS}/<group>/consumers")
def list_consumers(cluster_id: ClusterId, group: str) -> dict[str, Any]:
    """The group's known members (heartbeat items), sorted by consumer id."""
    check_cluster(cluster_id)
    name = unquoted(group)
    members = _snapshot(name).members
    return _listing("KafkaConsumerList", _path(name, "consumers"),
                    [consumer_resource(name, members[m]) for m in sorted(members)])


@router.get(f"{GROUPS}/<group>/lags")
def list_consumer_lags(cluster_id: ClusterId, group: str) -> dict[str, Any]:
    """Per committed partition: committed offset, log end offset, lag and owner."""
    check_cluster(cluster_id)
    name = unquoted(group)
    return _listing("KafkaConsumerLagList", _path(name, "lags"), _lags(name))


@router.get(f"{GROUPS}/<group>/lag-summary")
def get_consumer_group_lag_summary(cluster_id: ClusterId, group: str) -> dict[str, Any]:
    """Total lag and the partition with the largest lag (first in topic/partition order)."""
    check_cluster(cluster_id)
    name = unquoted(group)
    lags = _lags(name)
    top = max(lags, key=lambda lag: lag["lag"], default=None)
    summary: dict[str, Any] = {
        "kind": "KafkaConsumerGroupLagSummary",
        "metadata": _meta(_path(name, "lag-summary"), f"{name}/lag-summary"),
        "cluster_id": CLUSTER_ID, "consumer_group_id": name,
        "max_lag_consumer_id": None, "max_lag_instance_id": None, "max_lag_client_id": None,
        "max_lag_topic_name": None, "max_lag_partition_id": None,
        "max_lag": 0, "total_lag": sum(lag["lag"] for lag in lags),
        "max_lag_consumer": None, "max_lag_partition": None}
    if top is not None:
        summary.update(
            max_lag_consumer_id=top["consumer_id"], max_lag_instance_id=top["instance_id"],
            max_lag_client_id=top["client_id"], max_lag_topic_name=top["topic_name"],
            max_lag_partition_id=top["partition_id"], max_lag=top["lag"],
            max_lag_consumer=None if top["consumer_id"] is None else _related(
                _path(name, "consumers", top["consumer_id"])),
            max_lag_partition=_related(f"/v3/clusters/{CLUSTER_ID}/topics/"
                                       f"{top['topic_name']}/partitions/{top['partition_id']}"))
    return summary
