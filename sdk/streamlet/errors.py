"""Errors raised by Streamlet, on both sides of the wire.

::

    StreamletError
     ├── InvalidRequest            400  40002  (bad input; nothing was written)
     │    ├── InvalidTopicName
     │    ├── InvalidConfig
     │    ├── InvalidPartitions
     │    └── InvalidRecord
     ├── TopicExists               400  40002
     ├── TopicNotFound             404  40401
     ├── PartitionNotFound         404  40402
     ├── RecordTooLarge            413  41301
     ├── OffsetOutOfRange          416  41601
     ├── OffsetMismatch            412  41201  (expected-offset append refused)
     ├── ProducerFenced            409  40901  (a newer epoch owns the producer id)
     ├── OutOfOrderSequence        409  40902
     ├── CommitFailed              409  40903  (the lease moved: nothing was committed)
     ├── GroupNotFound             404  40404
     ├── GroupActive               409  40904  (the group has live members)
     ├── DataUnavailable           500  50003  (records inside the log are missing)
     └── RetriableError            503  50302  (retried by the SDK with backoff)
          ├── Throttled            429  42901
          ├── RequestTimedOut      504  50401  (outcome unknown: may have been applied)
          └── AppendConflict       503  50303  (partition head kept moving)

Every class carries a stable ``code`` (used on the wire), an HTTP ``status``, a
REST Proxy style ``error_code`` and ``retriable``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Protocol


class TopicPartitionLike(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


class StreamletError(Exception):
    """Base class of every Streamlet error."""

    code: ClassVar[str] = "streamlet_error"
    status: ClassVar[int] = 500
    error_code: ClassVar[int] = 50001
    retriable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(StreamletError):
    """The request is malformed; nothing was written."""

    code = "invalid_request"
    status = 400
    error_code = 40002


class InvalidTopicName(InvalidRequest):
    """A topic name breaks Kafka's naming rule."""

    code = "invalid_topic_name"


class InvalidConfig(InvalidRequest):
    """A topic config key is unknown or its value is out of range."""

    code = "invalid_config"


class InvalidPartitions(InvalidRequest):
    """A partition count is out of range or would shrink a topic."""

    code = "invalid_partitions"


class InvalidRecord(InvalidRequest):
    """A record or record batch is malformed (types, CRC, header layout)."""

    code = "invalid_record"


class TopicExists(StreamletError):
    """``create_topic`` on a name that is taken."""

    code = "topic_exists"
    status = 400
    error_code = 40002

    def __init__(self, topic: str) -> None:
        super().__init__(f"Topic '{topic}' already exists.")
        self.topic = topic


class TopicNotFound(StreamletError):
    """The topic does not exist."""

    code = "topic_not_found"
    status = 404
    error_code = 40401

    def __init__(self, topic: str) -> None:
        super().__init__(f"Topic '{topic}' does not exist.")
        self.topic = topic


class PartitionNotFound(StreamletError):
    """The partition number is outside the topic's partitions."""

    code = "partition_not_found"
    status = 404
    error_code = 40402

    def __init__(self, topic: str, partition: int, partitions: int) -> None:
        super().__init__(
            f"Partition {partition} of topic '{topic}' does not exist "
            f"(the topic has {partitions} partitions: 0..{partitions - 1})."
        )
        self.topic, self.partition, self.partitions = topic, partition, partitions


class RecordTooLarge(StreamletError):
    """A record or batch is larger than the topic's max.message.bytes."""

    code = "record_too_large"
    status = 413
    error_code = 41301

    def __init__(self, topic: str, size: int, limit: int, what: str = "record") -> None:
        super().__init__(
            f"A {what} of {size} bytes for topic '{topic}' exceeds max.message.bytes={limit}."
        )
        self.topic, self.size, self.limit = topic, size, limit


class OffsetOutOfRange(StreamletError):
    """A fetch offset is below the log start or above the high watermark."""

    code = "offset_out_of_range"
    status = 416
    error_code = 41601

    def __init__(self, topic: str, partition: int, offset: int, low: int, high: int) -> None:
        super().__init__(
            f"Offset {offset} is out of range for '{topic}' partition {partition} "
            f"(valid offsets: {low}..{high})."
        )
        self.topic, self.partition, self.offset = topic, partition, offset
        self.low, self.high = low, high


class OffsetMismatch(StreamletError):
    """An append with an expected offset found the partition elsewhere."""

    code = "offset_mismatch"
    status = 412
    error_code = 41201

    def __init__(self, topic: str, partition: int, expected: int, actual: int) -> None:
        super().__init__(
            f"Expected next offset {expected} for '{topic}' partition {partition}, "
            f"but the partition's next offset is {actual}."
        )
        self.topic, self.partition = topic, partition
        self.expected, self.actual = expected, actual


class ProducerFenced(StreamletError):
    """A producer with a newer epoch has taken over this producer id."""

    code = "producer_fenced"
    status = 409
    error_code = 40901

    def __init__(self, topic: str, partition: int, producer_id: int, epoch: int, current: int):
        super().__init__(
            f"Producer {producer_id} epoch {epoch} is fenced on '{topic}' partition "
            f"{partition}: epoch {current} is current."
        )
        self.producer_id, self.epoch, self.current_epoch = producer_id, epoch, current


class OutOfOrderSequence(StreamletError):
    """An idempotent batch's sequence number is not the next one expected."""

    code = "out_of_order_sequence"
    status = 409
    error_code = 40902

    def __init__(self, topic: str, partition: int, producer_id: int, got: int, expected: int):
        super().__init__(
            f"Producer {producer_id} sent sequence {got} to '{topic}' partition {partition}, "
            f"expected {expected}."
        )
        self.producer_id, self.got, self.expected = producer_id, got, expected


class CommitFailed(StreamletError):
    """A commit for partitions this member no longer owns at its lease epoch."""

    code = "commit_failed"
    status = 409
    error_code = 40903

    def __init__(self, group: str, partitions: Iterable[TopicPartitionLike], detail: str = ""):
        names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
        super().__init__(
            f"Commit refused for group '{group}': {names} no longer owned by this member "
            f"at its lease epoch{f' ({detail})' if detail else ''}; nothing was committed.")
        self.group = group


class GroupNotFound(StreamletError):
    """The consumer group has no state."""

    code = "group_not_found"
    status = 404
    error_code = 40404

    def __init__(self, group: str) -> None:
        super().__init__(f"Consumer group '{group}' does not exist.")
        self.group = group


class GroupActive(StreamletError):
    """An operation that needs an idle group found live members."""

    code = "group_active"
    status = 409
    error_code = 40904

    def __init__(self, group: str, members: Iterable[str]) -> None:
        super().__init__(f"Consumer group '{group}' has live members ({', '.join(members)}); "
                         "stop them first.")
        self.group = group


class DataUnavailable(StreamletError):
    """Offsets between the log start and the high watermark could not be read from either
    tier (a hot batch expired before it was archived, or a segment object is missing)."""

    code = "data_unavailable"
    error_code = 50003


class RetriableError(StreamletError):
    """A transient failure; the SDK retries these with backoff."""

    code = "retriable"
    status = 503
    error_code = 50302
    retriable = True


class Throttled(RetriableError):
    """The storage layer throttled the request."""

    code = "throttled"
    status = 429
    error_code = 42901


class RequestTimedOut(RetriableError):
    """No answer arrived in time; the request may or may not have been applied."""

    code = "request_timed_out"
    status = 504
    error_code = 50401


class AppendConflict(RetriableError):
    """Concurrent appends kept moving the partition head."""

    code = "append_conflict"
    error_code = 50303


class _BatchRefused(InvalidRecord):
    """A produced batch refused by the broker-side validation (streamlet.validation)."""

    def __init__(self, topic: str, partition: int, detail: str) -> None:
        super().__init__(f"Record batch for '{topic}' partition {partition} refused: {detail}")
        self.topic, self.partition, self.detail = topic, partition, detail


class CorruptRecord(_BatchRefused):
    """A batch that does not decode as it claims: unknown codec, undecodable or oversized
    compressed data, records whose lengths, count or offset deltas are wrong (Kafka's
    CORRUPT_MESSAGE and INVALID_RECORD)."""

    code = "corrupt_message"


class InvalidTimestamp(_BatchRefused):
    """A record timestamp outside the topic's message.timestamp.before.max.ms /
    message.timestamp.after.max.ms window, or a batch max timestamp that is not its
    records' largest (Kafka's INVALID_TIMESTAMP)."""

    code = "invalid_timestamp"


ERRORS_BY_CODE: dict[str, type[StreamletError]] = {
    cls.code: cls
    for cls in (
        StreamletError, InvalidRequest, InvalidTopicName, InvalidConfig, InvalidPartitions,
        InvalidRecord, TopicExists, TopicNotFound, PartitionNotFound, RecordTooLarge,
        OffsetOutOfRange, OffsetMismatch, ProducerFenced, OutOfOrderSequence, CommitFailed,
        GroupNotFound, GroupActive, DataUnavailable, RetriableError,
        Throttled, RequestTimedOut, AppendConflict,
        CorruptRecord, InvalidTimestamp,
    )
}
