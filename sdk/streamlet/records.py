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
