"""The Kafka error codes the gateway answers (Apache Kafka's ``Errors`` enum).

Plain constants (what every client compares), and the mapping from Streamlet's errors.
"""

from __future__ import annotations

from ..errors import (
    AccessDenied,
    AppendOutcomeUnknown,
    CorruptRecord,
    DataUnavailable,
    GroupActive,
    GroupNotFound,
    InvalidConfig,
    InvalidPartitions,
    InvalidRecord,
    InvalidRequest,
    InvalidTimestamp,
    InvalidTopicName,
    OffsetOutOfRange,
    OutOfOrderSequence,
    PartitionNotFound,
    ProducerFenced,
    RecordTooLarge,
    RetriableError,
    StreamletError,
    TopicExists,
    TopicNotFound,
)

NONE = 0
UNKNOWN_SERVER_ERROR = -1
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
MESSAGE_TOO_LARGE = 10
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_TOPIC_EXCEPTION = 17
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
INVALID_TIMESTAMP = 32
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REQUEST = 42
INVALID_CONFIG = 40
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
KAFKA_STORAGE_ERROR = 56
SASL_AUTHENTICATION_FAILED = 58
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
INVALID_RECORD = 87
PRODUCER_FENCED = 90
TRANSACTION_ABORTABLE = 120

_BY_CLASS: tuple[tuple[type[StreamletError], int], ...] = (
    (AccessDenied, TOPIC_AUTHORIZATION_FAILED),
    (TopicNotFound, UNKNOWN_TOPIC_OR_PARTITION),
    (PartitionNotFound, UNKNOWN_TOPIC_OR_PARTITION),
    (TopicExists, TOPIC_ALREADY_EXISTS),
    (InvalidTopicName, INVALID_TOPIC_EXCEPTION),
    (InvalidConfig, INVALID_CONFIG),
    (InvalidPartitions, INVALID_PARTITIONS),
    (CorruptRecord, CORRUPT_MESSAGE),
    (InvalidTimestamp, INVALID_TIMESTAMP),
    (RecordTooLarge, MESSAGE_TOO_LARGE),
    (InvalidRecord, INVALID_RECORD),
    (OffsetOutOfRange, OFFSET_OUT_OF_RANGE),
    (GroupNotFound, GROUP_ID_NOT_FOUND),
    (GroupActive, NON_EMPTY_GROUP),
    (DataUnavailable, KAFKA_STORAGE_ERROR),
    (AppendOutcomeUnknown, UNKNOWN_SERVER_ERROR),
    (OutOfOrderSequence, OUT_OF_ORDER_SEQUENCE_NUMBER),
    (ProducerFenced, INVALID_PRODUCER_EPOCH),
    (RetriableError, REQUEST_TIMED_OUT),
    (InvalidRequest, INVALID_REQUEST),
)


def code_for(error: StreamletError) -> int:
    """The Kafka error code a client understands for ``error``.

    Example:
        >>> code_for(TopicNotFound("orders"))
        3
    """
    for cls, code in _BY_CLASS:
        if isinstance(error, cls):
            return code
    return UNKNOWN_SERVER_ERROR
