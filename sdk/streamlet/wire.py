"""Every JSON shape of the native ``/v1`` API, in one place for both sides of the wire.

The Lambda handlers (``functions/``) write these and the HTTP transport
(:mod:`streamlet.transport.http`) reads them, and the reverse for request bodies, so a
field is named here and nowhere else: appends and producer ids, fetch headers, offsets,
topic metadata, tiered-storage reports, and consumer-group state.

Example:
    >>> tp = TopicPartition("orders", 0)
    >>> lease_from_json(lease_json(Lease(tp, "m-1", 3, 42))) == Lease(tp, "m-1", 3, 42)
    True
    >>> append_from_json(append_json(AppendResult(0, 9, -1, 0))).last_offset
    9
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from .groups.leases import GroupSnapshot, Lease, Member
from .records import (
    AppendResult,
    ArchiveReport,
    ProducerIdentity,
    RetentionReport,
    SegmentInfo,
    TopicDescription,
    TopicPartition,
    TransactionInfo,
    TxnOffsets,
)

CLUSTER_ID = "streamlet"
"""The one cluster id a Streamlet deployment reports in its REST Proxy v3 resources."""
HIGH_WATERMARK_HEADER = "X-Streamlet-High-Watermark"
LOG_START_HEADER = "X-Streamlet-Log-Start-Offset"
TOPIC_ID_HEADER = "X-Streamlet-Topic-Id"
"""Response headers of a native fetch (the body is the batches back to back)."""
APPEND_DEADLINE_MS = 10_000
"""A native append starts no write later than this after API Gateway received it."""
APPEND_RETRY_AFTER_MS = APPEND_DEADLINE_MS + 5_000
"""An append that got no reply at all is retried no sooner than this after it was sent:
its attempt may still be running, and must be past its deadline first."""


# ---- the log ----------------------------------------------------------------------------


def append_json(result: AppendResult) -> dict[str, Any]:
    return {"base_offset": result.base_offset, "last_offset": result.last_offset,
            "log_append_time": result.log_append_time,
            "log_start_offset": result.log_start_offset, "duplicate": result.duplicate}


def append_from_json(data: Mapping[str, Any]) -> AppendResult:
    return AppendResult(int(data["base_offset"]), int(data["last_offset"]),
                        int(data["log_append_time"]), int(data["log_start_offset"]),
                        bool(data["duplicate"]))


def topic_json(meta: TopicDescription) -> dict[str, Any]:
    """``GET /v1/topics/{topic}``: what producers look up (no watermarks)."""
    return {"name": meta.name, "topic_id": meta.topic_id, "partitions": meta.partitions,
            "config": meta.config}


def topic_from_json(data: Mapping[str, Any]) -> TopicDescription:
    return TopicDescription(str(data["name"]), str(data["topic_id"]), int(data["partitions"]),
                            {str(k): str(v) for k, v in dict(data["config"]).items()})


def watermarks_json(low: int, high: int) -> dict[str, int]:
    return {"low": low, "high": high}


def watermarks_from_json(data: Mapping[str, Any]) -> tuple[int, int]:
    return int(data["low"]), int(data["high"])


def offset_json(offset: int | None) -> dict[str, int | None]:
    """``GET .../offsets?timestamp=``: the first offset at or after it, or null."""
    return {"offset": offset}


def offset_from_json(data: Mapping[str, Any]) -> int | None:
    return None if data["offset"] is None else int(data["offset"])


# ---- tiered storage ---------------------------------------------------------------------


def reports_json(reports: Iterable[ArchiveReport | RetentionReport]) -> dict[str, Any]:
    return {"data": [asdict(r) for r in reports]}


def archive_reports_from_json(data: Mapping[str, Any]) -> list[ArchiveReport]:
    return [ArchiveReport(**{**r, "segments": [SegmentInfo(**s) for s in r["segments"]]})
            for r in data["data"]]


def retention_reports_from_json(data: Mapping[str, Any]) -> list[RetentionReport]:
    return [RetentionReport(**r) for r in data["data"]]


# ---- consumer groups --------------------------------------------------------------------


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


# ---- transactions -----------------------------------------------------------------------


def identity_json(who: ProducerIdentity) -> dict[str, Any]:
    return {"transactional_id": who.transactional_id, "producer_id": who.producer_id,
            "epoch": who.epoch}


def identity_from_json(data: Mapping[str, Any]) -> ProducerIdentity:
    return ProducerIdentity(str(data["transactional_id"]), int(data["producer_id"]),
                            int(data["epoch"]))


def batches_json(batches: Mapping[tuple[str, int], Iterable[int]]) -> list[dict[str, Any]]:
    """A commit's batches: ``[{"topic", "partition", "base_offsets": [...]}]``."""
    return [{"topic": topic, "partition": partition, "base_offsets": sorted(bases)}
            for (topic, partition), bases in sorted(batches.items())]


def batches_from_json(data: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], list[int]]:
    out: dict[tuple[str, int], list[int]] = {}
    for entry in data:
        out.setdefault((str(entry["topic"]), int(entry["partition"])), []).extend(
            int(b) for b in entry["base_offsets"])
    return out


def txn_offsets_json(offsets: TxnOffsets) -> dict[str, Any]:
    return {"group_id": offsets.group_id, "member_id": offsets.member_id,
            "partitions": [{**partition_json(tp), "lease_epoch": epoch, "offset": offset,
                            "metadata": metadata}
                           for tp, (epoch, offset, metadata) in sorted(offsets.offsets.items())]}


def txn_offsets_from_json(data: Mapping[str, Any]) -> TxnOffsets:
    return TxnOffsets(str(data["group_id"]), str(data["member_id"]), {
        TopicPartition(str(p["topic"]), int(p["partition"])):
            (int(p["lease_epoch"]), int(p["offset"]), str(p.get("metadata") or ""))
        for p in data["partitions"]})


def transaction_json(info: TransactionInfo) -> dict[str, Any]:
    return asdict(info)


def transaction_from_json(data: Mapping[str, Any]) -> TransactionInfo:
    return TransactionInfo(**{k: data[k] for k in TransactionInfo.__dataclass_fields__
                              if k in data})
