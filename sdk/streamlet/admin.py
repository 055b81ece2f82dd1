"""Topic administration, configs and offset queries (kafka-python's KafkaAdminClient names
beside Streamlet's own)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ._admin_inputs import config_resource, offset_of, operations, settled
from ._values import is_int
from .errors import (
    GroupActive,
    GroupNotFound,
    InvalidRequest,
    PartitionNotFound,
    StreamletError,
    TopicExists,
    TopicNotFound,
)
from .groups.leases import GroupSnapshot
from .records import (
    ArchiveReport,
    RetentionReport,
    TopicDescription,
    TopicPartition,
    TransactionInfo,
)
from .topicconfig import CONFIG_KEYS, validate_config, validate_partitions, validate_topic_name
from .transport import Transport, connect

MAX_LIVENESS_WAIT_S = 10.0
DEFAULT_CONFIG, TOPIC_CONFIG = "DEFAULT_CONFIG", "DYNAMIC_TOPIC_CONFIG"
"""Where a config value comes from (Kafka's ConfigSource names)."""


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


@dataclass(frozen=True, slots=True)
class NewTopic:
    """A topic for :meth:`Admin.create_topics` (kafka-python's ``NewTopic``).

    ``num_partitions=-1`` means the default (1). ``replication_factor`` is accepted and
    not used: DynamoDB and S3 keep every write in three availability zones.
    """

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    replica_assignments: Mapping[int, Sequence[int]] = field(default_factory=dict)
    topic_configs: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One topic config as :meth:`Admin.describe_configs` reports it."""

    name: str
    value: str
    source: str
    """``DYNAMIC_TOPIC_CONFIG`` (set on the topic) or ``DEFAULT_CONFIG``."""
    is_read_only: bool = False
    is_sensitive: bool = False

    @property
    def is_default(self) -> bool:
        return self.source == DEFAULT_CONFIG


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

    # ---- kafka-python's KafkaAdminClient: topics and configs ---------------------------

    def create_topics(self, new_topics: Iterable[NewTopic | str],
                      timeout_ms: int | None = None, validate_only: bool = False,
                      raise_errors: bool = True
                      ) -> dict[str, TopicDescription | StreamletError]:
        """Create several topics: ``NewTopic`` objects (or names, with the defaults).

        Every name, partition count and config is checked before any topic is created;
        then each is created on its own, as Kafka does, so one that exists does not stop
        the others. Returns each topic's description, or (``raise_errors=False``) the
        error that refused it; with ``raise_errors`` the first error is raised once every
        topic was tried. ``validate_only`` checks everything (existence too), creates
        nothing. ``timeout_ms`` is accepted for kafka-python's signature (creation is
        synchronous).

        Example:
            >>> admin.create_topics([NewTopic("orders", 6, topic_configs={  # doctest: +SKIP
            ...     "retention.ms": 86400000})])
        """
        wanted = [_checked(NewTopic(t) if isinstance(t, str) else t) for t in new_topics]
        if len({t.name for t in wanted}) != len(wanted):
            raise InvalidRequest("create_topics names a topic twice.")
        existing = set(self._transport.list_topics()) if validate_only else set()
        results: dict[str, TopicDescription | StreamletError] = {}
        for topic in wanted:
            partitions = max(topic.num_partitions, 1)
            try:
                if not validate_only:
                    results[topic.name] = self._transport.create_topic(
                        topic.name, partitions, topic.topic_configs)
                elif topic.name in existing:
                    raise TopicExists(topic.name)
                else:
                    results[topic.name] = TopicDescription(
                        topic.name, "", partitions, validate_config(topic.topic_configs), [],
                        frozenset(topic.topic_configs))
            except StreamletError as error:
                results[topic.name] = error
        return settled(results, raise_errors)

    def delete_topics(self, topics: Iterable[str], timeout_ms: int | None = None,
                      raise_errors: bool = True) -> dict[str, StreamletError | None]:
        """Delete several topics, each on its own; ``{name: None}`` for each deleted (or,
        with ``raise_errors=False``, the error that refused it). With ``raise_errors``
        the first error is raised once every topic was tried."""
        if isinstance(topics, str):
            raise InvalidRequest("delete_topics takes a list of topic names, not one name.")
        results: dict[str, StreamletError | None] = {}
        for name in topics:
            try:
                self._transport.delete_topic(name)
                results[name] = None
            except StreamletError as error:
                results[name] = error
        return settled(results, raise_errors)

    def describe_configs(self, resources: Iterable[object]) -> dict[str, dict[str, ConfigEntry]]:
        """Each topic's configs with their sources: ``{topic: {key: ConfigEntry}}``.

        ``resources`` are topic names, or objects with ``name`` and ``configs`` (the keys
        wanted, None for all) such as kafka-python's ``ConfigResource`` for a topic.
        ``source`` is ``DYNAMIC_TOPIC_CONFIG`` for a key set on the topic (even to the
        default value), else ``DEFAULT_CONFIG``.
        """
        out: dict[str, dict[str, ConfigEntry]] = {}
        for resource in resources:
            name, keys = config_resource(resource)
            topic = self._transport.describe_topic(name)
            out[name] = {key: ConfigEntry(key, value, TOPIC_CONFIG if key in topic.overrides
                                          else DEFAULT_CONFIG)
                         for key, value in sorted(topic.config.items())
                         if keys is None or key in keys}
        return out

    def alter_configs(self, configs: Mapping[str, Mapping[str, object]],
                      validate_only: bool = False) -> dict[str, TopicDescription]:
        """Kafka's (non-incremental) AlterConfigs: ``{topic: {key: value}}`` becomes each
        topic's whole set of overrides; every key not given returns to its default.
        Every topic is validated before any is changed."""
        return self._alter({name: (dict(given), [k for k in CONFIG_KEYS if k not in given])
                            for name, given in configs.items()}, validate_only)

    def incremental_alter_configs(self, changes: Mapping[str, Mapping[str, object]],
                                  validate_only: bool = False) -> dict[str, TopicDescription]:
        """Kafka's IncrementalAlterConfigs: ``{topic: {key: ("SET", value) or
        ("DELETE", None)}}``; keys not named keep their values. Every topic is validated
        before any is changed (APPEND and SUBTRACT are for list configs: topics have none).

        Example:
            >>> admin.incremental_alter_configs({"orders": {                # doctest: +SKIP
            ...     "retention.ms": ("SET", 3600000), "segment.ms": ("DELETE", None)}})
        """
        return self._alter({name: operations(name, ops) for name, ops in changes.items()},
                           validate_only)

    def _alter(self, plans: Mapping[str, tuple[dict[str, object], list[str]]],
               validate_only: bool) -> dict[str, TopicDescription]:
        for name, (updates, deletes) in plans.items():
            self._transport.alter_topic_config(name, updates, deletes, validate_only=True)
        if validate_only:
            return {name: self._transport.alter_topic_config(name, u, d, validate_only=True)
                    for name, (u, d) in plans.items()}
        return {name: self._transport.alter_topic_config(name, updates, deletes)
                for name, (updates, deletes) in plans.items()}

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

    def list_consumer_group_offsets(self, group_id: str,
                                    partitions: Iterable[TopicPartition] | None = None
                                    ) -> dict[TopicPartition, int]:
        """The group's committed offsets (the next offset each partition reads), for
        every partition with one or only ``partitions``. ``GroupNotFound``."""
        wanted = None if partitions is None else set(partitions)
        return {tp: lease.committed for tp, lease in sorted(self._snapshot(group_id)
                                                                .leases.items())
                if lease.committed is not None and (wanted is None or tp in wanted)}

    def alter_consumer_group_offsets(self, group_id: str, offsets: Mapping[TopicPartition, object]
                                     ) -> dict[TopicPartition, int]:
        """Set the group's committed offsets to exactly these (backwards too, as Kafka's
        AlterConsumerGroupOffsets; values are ints or objects with an ``offset``, such
        as OffsetAndMetadata). Refused while the group has live members (``GroupActive``),
        as Kafka refuses a non-empty group; a group with no state yet is created. Each
        partition's lease epoch moves, so an old owner cannot commit over it."""
        wanted = {tp: offset_of(tp, value) for tp, value in offsets.items()}
        if not wanted:
            raise InvalidRequest("alter_consumer_group_offsets needs at least one offset.")
        snap = self._transport.groups.snapshot(group_id)
        live = self.live_members(group_id) if snap.members else []
        if live:
            raise GroupActive(group_id, live)
        self._transport.groups.reset(group_id, wanted, {tp: snap.leases[tp] for tp in wanted
                                                        if tp in snap.leases})
        return wanted

    # ---- transactions -------------------------------------------------------------------

    def list_transactions(self, include_ended: bool = False) -> list[TransactionInfo]:
        """Open transactions (Kafka's listTransactions), each with its deadline; with
        ``include_ended`` also the committed and aborted ones whose records are kept
        (30 days), with why each was aborted. One scan: an operator's tool."""
        return self._transport.list_transactions(include_ended)

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


def _checked(topic: NewTopic) -> NewTopic:
    """A NewTopic's name, partitions and configs, checked before anything is created."""
    validate_topic_name(topic.name)
    if topic.num_partitions != -1:
        validate_partitions(topic.name, topic.num_partitions)
    if not is_int(topic.replication_factor) or topic.replication_factor in (0,) \
            or topic.replication_factor < -1:
        raise InvalidRequest(f"replication_factor for '{topic.name}' must be -1 or positive, "
                             f"got {topic.replication_factor!r}.")
    if topic.replica_assignments:
        raise InvalidRequest(f"replica_assignments for '{topic.name}': Streamlet places "
                             "partitions itself (there are no brokers to assign).")
    validate_config(topic.topic_configs)
    return topic
