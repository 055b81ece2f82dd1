"""Streamlet: Kafka's model as a serverless log on DynamoDB and S3.

Example:
    >>> from streamlet import Admin, Consumer, Producer                  # doctest: +SKIP
    >>> Admin().create_topic("orders", partitions=3)                     # doctest: +SKIP
    >>> with Producer() as p:                                            # doctest: +SKIP
    ...     p.send("orders", b"hello", key=b"k")
    >>> with Consumer("orders", auto_offset_reset="earliest") as c:     # doctest: +SKIP
    ...     print([r.value for r in c.poll(timeout=2)])
"""

from .admin import Admin, ConfigEntry, GroupPartition, NewTopic
from .consumer import Consumer
from .errors import (
    AccessDenied,
    AppendConflict,
    BufferExhausted,
    CommitFailed,
    ConfigNotFound,
    DataUnavailable,
    GroupActive,
    GroupNotFound,
    InvalidConfig,
    InvalidPartitions,
    InvalidRecord,
    InvalidRequest,
    InvalidTopicName,
    OffsetMismatch,
    OffsetOutOfRange,
    OutOfOrderSequence,
    PartitionNotFound,
    ProducerFenced,
    RecordTooLarge,
    RequestTimedOut,
    RetriableError,
    StreamletError,
    Throttled,
    TopicExists,
    TopicNotFound,
)
from .futures import RecordFuture
from .producer import Producer
from .records import (
    ArchiveReport,
    PartitionInfo,
    Record,
    RecordMetadata,
    RetentionReport,
    SegmentInfo,
    TimestampType,
    TopicDescription,
    TopicPartition,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDenied", "Admin", "AppendConflict", "ArchiveReport", "BufferExhausted",
    "CommitFailed", "ConfigEntry", "ConfigNotFound", "Consumer",
    "DataUnavailable",
    "GroupActive", "GroupNotFound",
    "GroupPartition", "InvalidConfig", "InvalidPartitions",
    "InvalidRecord", "InvalidRequest", "InvalidTopicName", "NewTopic", "OffsetMismatch",
    "OffsetOutOfRange",
    "OutOfOrderSequence", "PartitionInfo", "PartitionNotFound", "Producer", "ProducerFenced",
    "Record", "RecordFuture", "RecordMetadata", "RecordTooLarge", "RequestTimedOut",
    "RetentionReport", "RetriableError", "SegmentInfo",
    "StreamletError", "Throttled", "TimestampType", "TopicDescription", "TopicExists",
    "TopicNotFound", "TopicPartition",
]
from .errors import (
    AppendOutcomeUnknown,
    ClusterNotFound,
    ConsumerIllegalState,
    ConsumerInstanceExists,
    ConsumerInstanceNotFound,
    CorruptRecord,
    InvalidTimestamp,
    InvalidTxnState,
    RecordNotJson,
    ResourceNotFound,
    TailUnverified,
    TransactionAborted,
    TransactionTooLarge,
    UnsupportedLayout,
)
from .records import (
    ConsumerGroupMetadata,
    ConsumerRecords,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    TransactionInfo,
)

__all__ += ["AppendOutcomeUnknown", "ClusterNotFound", "ConsumerGroupMetadata",
            "ConsumerIllegalState", "ConsumerInstanceExists", "ConsumerInstanceNotFound",
            "ConsumerRecords", "CorruptRecord", "InvalidTimestamp", "InvalidTxnState",
            "RecordNotJson", "ResourceNotFound",
            "OffsetAndMetadata", "OffsetAndTimestamp", "TailUnverified", "TransactionAborted",
            "TransactionInfo", "TransactionTooLarge", "UnsupportedLayout"]
