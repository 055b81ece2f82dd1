"""Topic administration and offset queries."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from ._values import is_int
from .errors import (
    GroupActive,
    GroupNotFound,
    InvalidRequest,
    PartitionNotFound,
    TopicNotFound,
)
from .groups.leases import GroupSnapshot
from .records import ArchiveReport, RetentionReport, TopicDescription, TopicPartition
from .transport import Transport, connect

MAX_LIVENESS_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class GroupPartition:
    """One row of ``describe_group``, as kafka-consumer-groups.sh prints it."""

    group: str
    topic: str
    partition: int
    current_offset: int | None
    log_end_offset: int
    lag: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None
    lease_epoch: int


class Admin:
    """Creates, describes, grows and deletes topics; answers offset queries.

    Example:
        >>> admin = Admin("direct+http://127.0.0.1:4566")                  # doctest: +SKIP
        >>> admin.create_topic("orders", partitions=6, config={"retention.ms": 86400000})
        >>> admin.watermarks("orders", 0)                                  # doctest: +SKIP
        (0, 0)
    """

    def __init__(self, endpoint: str | None = None, *, transport: Transport | None = None):
        self._owns_transport = transport is None
        self._transport = transport or connect(endpoint)
        self._closed = False

    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, object] | None = None) -> TopicDescription:
        """Create a topic; config keys are Kafka's (retention.ms, max.message.bytes, ...)."""
        return self._transport.create_topic(name, partitions, config)

    def list_topics(self) -> list[str]:
        return self._transport.list_topics()

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions, config and each partition's (low, high) watermarks."""
        return self._transport.describe_topic(name)

    def delete_topic(self, name: str) -> None:
        """Delete a topic and all of its records."""
        self._transport.delete_topic(name)

    def create_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow ``name`` to ``total`` partitions (keys may then map elsewhere, as in Kafka)."""
        return self._transport.create_partitions(name, total)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, high watermark) of one partition."""
        return self._transport.watermarks(topic, partition)

    def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                          ) -> dict[TopicPartition, int | None]:
        """For each partition, the first offset whose timestamp is >= the given ms (or None)."""
        return {tp: self._transport.offset_for_time(tp.topic, tp.partition, ts)
                for tp, ts in timestamps.items()}

    # ---- tiered storage and retention ---------------------------------------------------

    def delete_records(self, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Kafka's deleteRecords: records below each offset (-1: all of them) become
        unreadable at once; returns each partition's new low watermark."""
        return {tp: self._transport.delete_records(tp.topic, tp.partition, before)
                for tp, before in offsets.items()}

    def archive(self, topic: str | None = None, *, force: bool = False) -> list[ArchiveReport]:
        """Run the archiver now: roll hot batches older than segment.ms (or beyond
        segment.bytes) into S3 segments; ``force`` rolls every hot batch."""
        return self._transport.archive(topic, force)

    def enforce_retention(self, topic: str | None = None) -> list[RetentionReport]:
        """Run retention now: delete segments past retention.ms / retention.bytes."""
        return self._transport.enforce_retention(topic)

    # ---- consumer groups ----------------------------------------------------------------

    def list_groups(self) -> list[str]:
        return self._transport.groups.list_groups()

    def describe_group(self, group: str) -> list[GroupPartition]:
        """One row per partition: committed offset, log end, lag and current owner."""
        snap = self._snapshot(group)
        rows = []
        for tp, lease in sorted(snap.leases.items()):
            watermarks = self._watermarks(tp)
            if watermarks is None:
                continue  # the topic (or partition) was deleted: its offsets mean nothing
            high = watermarks[1]
            member = snap.members.get(lease.owner or "")
            rows.append(GroupPartition(
                group, tp.topic, tp.partition, lease.committed, high,
                None if lease.committed is None else max(0, high - lease.committed),
                lease.owner, member.host if member else None,
                member.client_id if member else None, lease.epoch))
        return rows

    def live_members(self, group: str) -> list[str]:
        """Members whose heartbeat counter moves, watched for 1.5 heartbeat intervals."""
        first = self._snapshot(group).members
        if not first:
            return []
        interval = max(m.heartbeat_ms for m in first.values()) / 1000
        time.sleep(min(MAX_LIVENESS_WAIT_S, interval * 1.5))
        second = self._snapshot(group).members
        return sorted(m for m, member in second.items()
                      if m not in first or first[m].beat != member.beat)

    def reset_offsets(self, group: str, *, topic: str | None = None,
                      partition: int | None = None, to_earliest: bool = False,
                      to_latest: bool = False, to_offset: int | None = None,
                      to_datetime_ms: int | None = None, shift_by: int | None = None,
                      execute: bool = False) -> dict[TopicPartition, tuple[int | None, int]]:
        """Plan (and with ``execute=True`` apply) new committed offsets: {tp: (old, new)}.

        Exactly one of the ``to_*``/``shift_by`` options; new offsets are clamped to each
        partition's (low, high) as Kafka does. Refused while the group has live members.
        """
        _one_spec(to_earliest, to_latest, to_offset, to_datetime_ms, shift_by)
        snap = self._snapshot(group)
        tps = [tp for tp in sorted(snap.leases) if (topic is None or tp.topic == topic)
               and (partition is None or tp.partition == partition)
               and self._watermarks(tp) is not None]
        if not tps:
            raise InvalidRequest(f"Group '{group}' has no offsets for "
                                 f"{topic or 'any topic'}"
                                 f"{'' if partition is None else f' partition {partition}'}.")
        plan = {tp: (snap.leases[tp].committed,
                     self._target(tp, snap.leases[tp].committed, to_earliest, to_latest,
                                  to_offset, to_datetime_ms, shift_by)) for tp in tps}
        if execute:
            live = self.live_members(group)
            if live:
                raise GroupActive(group, live)
            self._transport.groups.reset(group, {tp: new for tp, (_, new) in plan.items()},
                                         {tp: snap.leases[tp] for tp in tps})
        return plan

    def _target(self, tp: TopicPartition, current: int | None, to_earliest: bool,
                to_latest: bool, to_offset: int | None, to_datetime_ms: int | None,
                shift_by: int | None) -> int:
        low, high = self._transport.watermarks(tp.topic, tp.partition)
        if to_earliest:
            wanted = low
        elif to_latest:
            wanted = high
        elif to_offset is not None:
            wanted = to_offset
        elif to_datetime_ms is not None:
            found = self._transport.offset_for_time(tp.topic, tp.partition, to_datetime_ms)
            wanted = high if found is None else found
        else:
            wanted = (low if current is None else current) + (shift_by or 0)
        return min(max(wanted, low), high)

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int] | None:
        try:
            return self._transport.watermarks(tp.topic, tp.partition)
        except (TopicNotFound, PartitionNotFound):
            return None

    def delete_group(self, group: str) -> None:
        """Delete a group's offsets and leases; refused while it has live members."""
        live = self.live_members(group)
        if live:
            raise GroupActive(group, live)
        self._transport.groups.delete(group)

    def _snapshot(self, group: str) -> GroupSnapshot:
        snap = self._transport.groups.snapshot(group)
        if not snap.leases and not snap.members:
            raise GroupNotFound(group)
        return snap

    def close(self) -> None:
        """Close the transport's connections (unless it was passed in). Idempotent."""
        if self._owns_transport and not self._closed:
            self._transport.close()
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _one_spec(to_earliest: bool, to_latest: bool, to_offset: int | None,
              to_datetime_ms: int | None, shift_by: int | None) -> None:
    chosen = [to_earliest, to_latest, to_offset is not None, to_datetime_ms is not None,
              shift_by is not None]
    if sum(chosen) != 1:
        raise InvalidRequest("Choose exactly one of to_earliest, to_latest, to_offset, "
                             "to_datetime_ms, shift_by.")
    for name, value in (("to_offset", to_offset), ("to_datetime_ms", to_datetime_ms)):
        if value is not None and (not is_int(value)
                                  or value < 0):
            raise InvalidRequest(f"{name} must be a non-negative integer, got {value!r}.")
    if shift_by is not None and not is_int(shift_by):
        raise InvalidRequest(f"shift_by must be an integer, got {shift_by!r}.")
