"""Plain data types shared by the producer, the consumer and the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum


class TimestampType(IntEnum):
    """Where a record's timestamp came from (Kafka's two timestamp types)."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """A topic and one of its partitions.

    Example:
        >>> TopicPartition("orders", 3)
        TopicPartition(topic='orders', partition=3)
    """

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an acknowledged record was written."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    """Milliseconds since the epoch: the create time, or the log append time."""
    timestamp_type: TimestampType = TimestampType.CREATE_TIME

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record.

    Example:
        >>> r = Record("orders", 0, 41, b"k", b"v", [("trace", b"1")], 1700000000000)
        >>> r.offset, r.value, r.header("trace")
        (41, b'v', b'1')
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp: int = 0
    timestamp_type: TimestampType = TimestampType.CREATE_TIME
    lease_epoch: int = -1
    """The partition's lease epoch when a group member read it (a fencing token for
    downstream writes); -1 outside consumer groups."""

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        found: bytes | None = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition of a described topic."""

    partition: int
    low: int
    """Log start offset: the first offset still readable."""
    high: int
    """High watermark: the offset the next record will get."""


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A topic's metadata, as returned by ``Admin.describe_topic``."""

    name: str
    topic_id: str
    partitions: int
    config: dict[str, str]
    partition_info: list[PartitionInfo] = field(default_factory=list)
    overrides: frozenset[str] = frozenset()
    """The config keys set on the topic; every other key holds its default."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What the log assigned to one appended batch."""

    base_offset: int
    last_offset: int
    log_append_time: int
    """-1 unless the topic uses LogAppendTime."""
    log_start_offset: int
    duplicate: bool = False
    """True when the batch was a retry of one already written."""


@dataclass(frozen=True, slots=True)
class ProducerIdentity:
    """What ``init_transactions`` gives a transactional producer: the producer id stable
    for its transactional id, and the epoch that fences every older instance."""

    transactional_id: str
    producer_id: int
    epoch: int


@dataclass(frozen=True, slots=True)
class TxnOffsets:
    """A consumer group's offsets sent with a transaction (``send_offsets_to_transaction``):
    committed with its output or not at all, fenced by each partition's lease epoch."""

    group_id: str
    member_id: str
    offsets: Mapping[TopicPartition, tuple[int, int, str]]
    """``{partition: (lease epoch, next offset to read, metadata)}``."""


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadata:
    """What ``Producer.send_offsets_to_transaction`` needs of a consumer
    (``consumer.group_metadata()``, as in Kafka): its group, its member id and the lease
    epoch of each partition it owns, the fencing tokens the commit is conditioned on."""

    group_id: str
    member_id: str
    lease_epochs: Mapping[TopicPartition, int]


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """One transaction's record, as ``streamlet transactions list`` shows it."""

    transactional_id: str
    number: int
    """The transaction's number within its transactional id (0, 1, 2...)."""
    producer_id: int
    epoch: int
    status: str
    """``open``, ``committed`` or ``aborted``."""
    started_ms: int
    deadline_ms: int
    """When an open transaction times out (and any reader or archiver pass aborts it)."""
    ended_ms: int = 0
    reason: str = ""
    """Why it was aborted (timed out, fenced, a lease moved, the producer aborted it)."""
    partitions: int = 0
    """Committed: the partitions its batches went to."""
    batches: int = 0
    """Committed: how many batches it made visible."""


DEFAULT_FETCH_BYTES = 1024 * 1024
"""What one fetch returns at most by default (Kafka's ``max.partition.fetch.bytes``)."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Record batches read from one partition, in offset order."""

    batches: list[bytes]
    high_watermark: int
    """The end of the last batch this fetch knows of: the high watermark when the fetch
    reached the tail (``watermarks`` always reads it)."""
    log_start_offset: int
    topic_id: str = ""
    """The topic incarnation read (a topic deleted and recreated gets a new id)."""
    reached_end: bool = False
    """The fetch read to the partition's end: ``high_watermark`` is the partition's."""
    last_stable_offset: int | None = None
    """Where a read_committed fetch stopped before a transaction still open (Kafka's last
    stable offset); None when it did not."""


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One archived segment: an immutable S3 object holding offsets base..last, with
    record timestamps from ``min_timestamp`` (-1: unknown) to ``max_timestamp`` (the
    partition's running maximum at its last batch)."""

    key: str
    base_offset: int
    last_offset: int
    size: int
    max_timestamp: int
    min_timestamp: int = -1


@dataclass(slots=True)
class ArchiveReport:
    """What one archiver pass over a partition did."""

    topic: str
    partition: int
    segments: list[SegmentInfo] = field(default_factory=list)
    blobs_deleted: int = 0
    archived_offset: int = 0
    """The archive watermark: offsets below it are served from S3 segments."""
    high_watermark: int = 0
    unarchived_age_ms: int = 0
    """Age of the oldest batch the pass left in the hot tier (not yet due), 0 when it
    archived everything below the high watermark it started with."""


@dataclass(slots=True)
class RetentionReport:
    """What one retention pass (or a delete_records) over a partition did."""

    topic: str
    partition: int
    log_start_before: int
    log_start_after: int
    segments_deleted: int = 0


# ---- the consumer's types: what poll returns, what commit and offsets_for_times carry ----
# (one block, imports included, so that it merges beside other additions to this module)

from collections.abc import ItemsView, KeysView, ValuesView  # noqa: E402
from typing import NamedTuple, SupportsIndex, overload  # noqa: E402


class OffsetAndMetadata(NamedTuple):
    """An offset to commit (the next record to read) and a metadata string, as
    kafka-python's ``OffsetAndMetadata`` (``leader_epoch`` is accepted and ignored).

    Example:
        >>> OffsetAndMetadata(42, "batch 7")
        OffsetAndMetadata(offset=42, metadata='batch 7', leader_epoch=-1)
    """

    offset: int
    metadata: str = ""
    leader_epoch: int = -1


class OffsetAndTimestamp(NamedTuple):
    """What ``offsets_for_times`` finds: the first offset whose record timestamp is at or
    after the time asked for, and that record's timestamp (ms)."""

    offset: int
    timestamp: int
    leader_epoch: int = -1


class ConsumerRecords(list[Record]):
    """What ``Consumer.poll`` returns: the records in the order polled, and by partition.

    It is a list of records (iterate, ``len``, truth, index, slice, ``+`` and ``== []``
    work as on the plain list poll used to return) that also maps each TopicPartition to
    that partition's records, like kafka-python's dict and Java's ConsumerRecords:
    ``items()``, ``keys()``, ``values()``, ``polled[tp]``, ``tp in polled``,
    ``get(tp)``, ``dict(polled)``. Where the two habits differ, the list wins: ``len``
    counts records and iterating yields records (kafka-python's dict yields partitions:
    iterate ``keys()`` or ``items()`` for those).

    Example:
        >>> a = Record("orders", 0, 7, None, b"x")
        >>> polled = ConsumerRecords([a, Record("orders", 1, 3, None, b"y")])
        >>> len(polled), polled[0].offset, [r.offset for r in polled[TopicPartition("orders", 0)]]
        (2, 7, [7])
        >>> sorted(tp.partition for tp in polled.keys()), TopicPartition("orders", 2) in polled
        ([0, 1], False)
    """

    __slots__ = ()

    def by_partition(self) -> dict[TopicPartition, list[Record]]:
        """``{tp: records of tp in order}``, partitions in the order they first appear."""
        out: dict[TopicPartition, list[Record]] = {}
        for record in self:
            out.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        return out

    def keys(self) -> KeysView[TopicPartition]:
        return self.by_partition().keys()

    def values(self) -> ValuesView[list[Record]]:
        return self.by_partition().values()

    def items(self) -> ItemsView[TopicPartition, list[Record]]:
        return self.by_partition().items()

    def get(self, tp: TopicPartition, default: list[Record] | None = None
            ) -> list[Record] | None:
        return self.by_partition().get(tp, default)

    def partitions(self) -> set[TopicPartition]:
        """The partitions with records in this poll (Java's ``partitions()``)."""
        return set(self.by_partition())

    @overload
    def __getitem__(self, key: SupportsIndex) -> Record: ...

    @overload
    def __getitem__(self, key: slice) -> list[Record]: ...

    @overload
    def __getitem__(self, key: TopicPartition) -> list[Record]: ...

    def __getitem__(self, key: SupportsIndex | slice | TopicPartition
                    ) -> Record | list[Record]:
        if isinstance(key, TopicPartition):
            found = [r for r in self if r.topic == key.topic and r.partition == key.partition]
            if not found:
                raise KeyError(key)
            return found
        return super().__getitem__(key)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, TopicPartition):
            return any(r.topic == item.topic and r.partition == item.partition for r in self)
        return super().__contains__(item)
