"""Confluent REST Proxy v3 consumer groups (read-only): groups, consumers and their
assignments, lags, lag summary.

Served by the admin handler. A group exists while it has leases or members (as for
:meth:`streamlet.admin.Admin.describe_group`); an unknown group is a 404 with error_code
40404, an unknown consumer, assignment or lag a 404 with error_code 404. ``state`` is
``STABLE`` while any member item is known, else ``EMPTY``; ``type`` is ``CLASSIC`` (members
plan their own assignment, as Kafka's classic protocol); the assignor is always
``cooperative-sticky``. No broker coordinates a group: ``coordinator`` leads to the
cluster's (empty) broker list. A consumer's assignments are the leases it owns. As in
REST Proxy, lags list only the partitions with a committed offset (lag = log end -
committed); a partition nobody owns has ``consumer_id`` and ``client_id`` ``""``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from streamlet.admin import Admin, GroupPartition
from streamlet.errors import GroupNotFound, ResourceNotFound
from streamlet.groups.leases import GroupSnapshot, Lease, Member
from streamlet.records import TopicPartition
from streamlet.wire import CLUSTER_ID

from ._runtime import engine
from ._shared import ClusterId, check_cluster, listing, new_router, related, resource_meta, unquoted

router = new_router()
GROUPS = "/v3/clusters/<cluster_id>/consumer-groups"
ASSIGNOR = "cooperative-sticky"
GROUP_TYPE = "CLASSIC"
BROKERS = f"/v3/clusters/{CLUSTER_ID}/brokers"


def _path(*parts: object) -> str:
    """A URL path under the consumer groups; each part percent-encoded (member ids are
    free text)."""
    quoted = (quote(str(part), safe="") for part in parts)
    return "/".join((f"/v3/clusters/{CLUSTER_ID}/consumer-groups", *quoted))


def _meta(path: str, crn: str) -> dict[str, Any]:
    return resource_meta(router.current_event, path, f"/consumer-group={crn}")


def _related(path: str) -> dict[str, str]:
    return related(router.current_event, path)


def _listing(kind: str, path: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return listing(router.current_event, kind, path, data)


def _text(value: str | None) -> str | None:
    """Member fields the heartbeat stores as ``-`` when the client gave none."""
    return None if value in (None, "", "-") else value


def _id(value: str | None) -> str:
    """A consumer or client id REST Proxy's document requires as a string: ``""`` if none."""
    return _text(value) or ""


def _partition_path(topic: str, partition: int) -> str:
    return f"/v3/clusters/{CLUSTER_ID}/topics/{topic}/partitions/{partition}"


def _snapshot(group: str) -> GroupSnapshot:
    snap = engine().groups.snapshot(group)
    if not snap.leases and not snap.members:
        raise GroupNotFound(group)
    return snap


def group_resource(group: str, snap: GroupSnapshot) -> dict[str, Any]:
    return {"kind": "KafkaConsumerGroup", "metadata": _meta(_path(group), group),
            "cluster_id": CLUSTER_ID, "consumer_group_id": group, "is_simple": False,
            "partition_assignor": ASSIGNOR, "state": "STABLE" if snap.members else "EMPTY",
            "type": GROUP_TYPE, "is_mixed_consumer_group": False,
            "coordinator": _related(BROKERS), "consumers": _related(_path(group, "consumers")),
            "lag_summary": _related(_path(group, "lag-summary"))}


def consumer_resource(group: str, member: Member) -> dict[str, Any]:
    path = _path(group, "consumers", member.member_id)
    return {"kind": "KafkaConsumer",
            "metadata": _meta(path, f"{group}/consumer={member.member_id}"),
            "cluster_id": CLUSTER_ID, "consumer_group_id": group,
            "consumer_id": member.member_id, "instance_id": _text(member.instance_id),
            "client_id": _id(member.client_id), "host": _text(member.host),
            "assignments": _related(f"{path}/assignments")}


def lag_resource(row: GroupPartition, member: Member | None) -> dict[str, Any]:
    """A committed partition's lag; its consumer is the lease owner while that member's
    item exists (``""`` otherwise)."""
    path = _path(row.group, "lags", row.topic, "partitions", row.partition)
    return {"kind": "KafkaConsumerLag",
            "metadata": _meta(path, f"{row.group}/lag={row.topic}/partition={row.partition}"),
            "cluster_id": CLUSTER_ID, "consumer_group_id": row.group,
            "topic_name": row.topic, "partition_id": row.partition,
            "current_offset": row.current_offset, "log_end_offset": row.log_end_offset,
            "lag": row.lag, "consumer_id": _id(row.consumer_id if member else None),
            "instance_id": _text(member.instance_id) if member else None,
            "client_id": _id(row.client_id)}


def assignment_resource(group: str, consumer: str, tp: TopicPartition) -> dict[str, Any]:
    path = _path(group, "consumers", consumer, "assignments", tp.topic, "partitions",
                 tp.partition)
    crn = f"{group}/consumer={consumer}/assignment={tp.topic}/partition={tp.partition}"
    return {"kind": "KafkaConsumerAssignment", "metadata": _meta(path, crn),
            "cluster_id": CLUSTER_ID, "consumer_group_id": group, "consumer_id": consumer,
            "topic_name": tp.topic, "partition_id": tp.partition,
            "partition": _related(_partition_path(tp.topic, tp.partition)),
            "lag": _related(_path(group, "lags", tp.topic, "partitions", tp.partition))}


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
        "max_lag_consumer_id": "", "max_lag_instance_id": None, "max_lag_client_id": "",
        "max_lag_topic_name": "", "max_lag_partition_id": -1,
        "max_lag": 0, "total_lag": sum(lag["lag"] for lag in lags),
        "max_lag_consumer": _related(_path(name, "consumers")),
        "max_lag_partition": _related(_path(name, "lags"))}
    if top is not None:
        summary.update(
            max_lag_consumer_id=top["consumer_id"], max_lag_instance_id=top["instance_id"],
            max_lag_client_id=top["client_id"], max_lag_topic_name=top["topic_name"],
            max_lag_partition_id=top["partition_id"], max_lag=top["lag"],
            max_lag_partition=_related(_partition_path(top["topic_name"],
                                                       top["partition_id"])))
        if top["consumer_id"]:
            summary["max_lag_consumer"] = _related(
                _path(name, "consumers", top["consumer_id"]))
    return summary


# ---- one consumer, its assignments, one lag --------------------------------------------------


def _consumer(group: str, consumer: str) -> tuple[GroupSnapshot, Member]:
    snap = _snapshot(group)
    member = snap.members.get(consumer)
    if member is None:
        raise ResourceNotFound(f"Consumer '{consumer}' is not a member of consumer group "
                               f"'{group}'.")
    return snap, member


def _owned(snap: GroupSnapshot, consumer: str) -> list[TopicPartition]:
    return sorted(tp for tp, lease in snap.leases.items() if lease.owner == consumer)


@router.get(f"{GROUPS}/<group>/consumers/<consumer>")
def get_consumer(cluster_id: ClusterId, group: str, consumer: str) -> dict[str, Any]:
    """One member of the group (its heartbeat item)."""
    check_cluster(cluster_id)
    name = unquoted(group)
    return consumer_resource(name, _consumer(name, unquoted(consumer))[1])


@router.get(f"{GROUPS}/<group>/consumers/<consumer>/assignments")
def list_consumer_assignments(cluster_id: ClusterId, group: str, consumer: str
                              ) -> dict[str, Any]:
    """The partitions whose lease the consumer holds, in topic/partition order."""
    check_cluster(cluster_id)
    name, member = unquoted(group), unquoted(consumer)
    snap, _ = _consumer(name, member)
    return _listing("KafkaConsumerAssignmentList", _path(name, "consumers", member,
                                                         "assignments"),
                    [assignment_resource(name, member, tp) for tp in _owned(snap, member)])


@router.get(f"{GROUPS}/<group>/consumers/<consumer>/assignments/<topic>/partitions/<partition>")
def get_consumer_assignment(cluster_id: ClusterId, group: str, consumer: str, topic: str,
                            partition: int) -> dict[str, Any]:
    """One partition the consumer holds; 404 if it does not hold it."""
    check_cluster(cluster_id)
    name, member = unquoted(group), unquoted(consumer)
    tp = TopicPartition(unquoted(topic), partition)
    snap, _ = _consumer(name, member)
    if tp not in _owned(snap, member):
        raise ResourceNotFound(f"Consumer '{member}' of consumer group '{name}' is not "
                               f"assigned {tp.topic}/{tp.partition}.")
    return assignment_resource(name, member, tp)


@router.get(f"{GROUPS}/<group>/lags/<topic>/partitions/<partition>")
def get_consumer_lag(cluster_id: ClusterId, group: str, topic: str, partition: int
                     ) -> dict[str, Any]:
    """One partition's committed offset, log end offset, lag and owner; 404 before the
    group commits it (as the lag list, which leaves it out)."""
    check_cluster(cluster_id)
    name = unquoted(group)
    snap = _snapshot(name)
    tp = TopicPartition(unquoted(topic), partition)
    lease = snap.leases.get(tp)
    if lease is None or lease.committed is None:
        raise ResourceNotFound(f"Consumer group '{name}' has no committed offset for "
                               f"{tp.topic}/{tp.partition}.")
    member = snap.members.get(lease.owner or "")
    return lag_resource(_lag_row(name, lease, member), member)


def _lag_row(group: str, lease: Lease, member: Member | None) -> GroupPartition:
    """The lag of one committed lease (as :meth:`Admin.describe_group` computes it)."""
    committed = lease.committed or 0
    high = engine().watermarks(lease.tp.topic, lease.tp.partition)[1]
    return GroupPartition(group, lease.tp.topic, lease.tp.partition, committed, high,
                          max(0, high - committed), lease.owner,
                          member.host if member else None,
                          member.client_id if member else None, lease.epoch)
