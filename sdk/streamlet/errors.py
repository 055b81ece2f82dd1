"""Errors raised by Streamlet, on both sides of the wire.

::

    StreamletError
     ├── InvalidRequest            400  40002  (bad input; nothing was written)
     │    ├── InvalidTopicName
     │    ├── InvalidConfig
     │    │    └── ConfigNotFound  404  40405  (a configs/{name} path no topic has)
     │    ├── InvalidPartitions
     │    └── InvalidRecord
     │         ├── CorruptRecord        (corrupt_message: the batch does not decode as it says)
     │         └── InvalidTimestamp     (a record timestamp outside the topic's window)
     ├── AccessDenied              403  40301  (credentials, signature or grant refused)
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
     ├── ConsumerInstanceNotFound  404  40403  (REST Proxy v2 instance gone or expired)
     ├── ConsumerInstanceExists    409  40902
     ├── ConsumerIllegalState      409  40903  (subscription and assignment mixed)
     ├── RecordNotJson             422  42201  (a json v2 instance met a non-JSON record)
     ├── ClusterNotFound           404  404    (a v3 path names another cluster)
     ├── ResourceNotFound          404  404    (a v3 consumer, assignment or lag that is not there)
     ├── UnsupportedLayout         409  40905  (a topic of another storage layout)
     ├── AppendOutcomeUnknown      409  40906  (a retry could not tell if it was written)
     ├── TransactionAborted        409  40907  (timed out, fenced or aborted: none of it is visible)
     ├── InvalidTxnState           409  40908  (a transactional call out of order)
     ├── TransactionTooLarge       413  41302  (past DynamoDB's 100 items per transaction)
     ├── DataUnavailable           500  50003  (records inside the log are missing)
     ├── BufferExhausted           503  50305  (send() waited max_block_ms for buffer_memory;
     │                                          retriable; raised by the SDK only)
     └── RetriableError            503  50302  (retried by the SDK with backoff)
          ├── Throttled            429  42901
          ├── RequestTimedOut      504  50401  (outcome unknown: may have been applied)
          ├── AppendConflict       503  50303  (the partition's tail kept moving)
          └── TailUnverified       503  50304  (the tail may have expired unarchived)

Every class carries a stable ``code`` (used on the wire), an HTTP ``status``, a
REST Proxy style ``error_code`` and ``retriable``, and registers itself by ``code``: an
error body from the HTTP API becomes the same class again with
:meth:`StreamletError.from_wire`.

Example:
    >>> error = StreamletError.from_wire(404, {"code": "topic_not_found", "message": "gone"})
    >>> type(error).__name__, error.message
    ('TopicNotFound', 'gone')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol


class TopicPartitionLike(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


_BY_CODE: dict[str, type[StreamletError]] = {}
_BY_ERROR_CODE: dict[int, type[StreamletError]] = {}


class StreamletError(Exception):
    """Base class of every Streamlet error."""

    code: ClassVar[str] = "streamlet_error"
    status: ClassVar[int] = 500
    error_code: ClassVar[int] = 50001
    retriable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:  # a shared base without a code of its own is not sent
            _register(cls)

    @classmethod
    def from_wire(cls, status: int, body: Mapping[str, Any]) -> StreamletError:
        """The error an HTTP error response stands for: by its ``code``, else its REST
        Proxy ``error_code``, else the HTTP status (429 throttled, 5xx outcome unknown).

        The instance carries the server's message; class-specific attributes (a
        TopicNotFound's ``topic``...) are not on the wire and are left unset.
        """
        message = str(body.get("message") or body.get("Message") or f"HTTP {status}")
        number = body.get("error_code")
        found = _BY_CODE.get(str(body.get("code"))) or (
            _BY_ERROR_CODE.get(number) if isinstance(number, int) else None)
        error_class = found or _class_for_status(status)
        error = error_class.__new__(error_class)
        StreamletError.__init__(error, message)
        return error


def _register(cls: type[StreamletError]) -> None:
    """Index a class by its wire ``code`` (unique) and its ``error_code`` (first wins)."""
    if cls.code in _BY_CODE:
        raise TypeError(f"Two error classes use code {cls.code!r}.")
    _BY_CODE[cls.code] = cls
    _BY_ERROR_CODE.setdefault(cls.error_code, cls)


_register(StreamletError)


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


class AccessDenied(StreamletError):
    """The API refused the request's credentials, signature or grant (HTTP 403)."""

    code = "access_denied"
    status = 403
    error_code = 40301


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
    """A producer with a newer epoch has taken over this producer id (or transactional id):
    this instance is a zombie and nothing it sends or commits becomes visible."""

    code = "producer_fenced"
    status = 409
    error_code = 40901

    def __init__(self, topic: str, partition: int, producer_id: int, epoch: int, current: int):
        super().__init__(
            f"Producer {producer_id} epoch {epoch} is fenced on '{topic}' partition "
            f"{partition}: epoch {current} is current."
        )
        self.producer_id, self.epoch, self.current_epoch = producer_id, epoch, current

    @classmethod
    def transactional(cls, transactional_id: str, epoch: int, current: int) -> ProducerFenced:
        """Fenced by ``init_transactions`` of a newer instance with the same id."""
        error = cls.__new__(cls)
        StreamletError.__init__(
            error, f"Transactional id '{transactional_id}' epoch {epoch} is fenced: another "
                   f"producer called init_transactions (epoch {current} is current). Nothing "
                   "this producer sends or commits becomes visible; close it.")
        error.producer_id, error.epoch, error.current_epoch = -1, epoch, current
        return error


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


class ConsumerInstanceNotFound(StreamletError):
    """No such REST Proxy v2 consumer instance (never created, deleted or expired)."""

    code = "consumer_instance_not_found"
    status = 404
    error_code = 40403

    def __init__(self, group: str, name: str) -> None:
        super().__init__(f"Consumer instance '{name}' of group '{group}' does not exist "
                         "(it may have expired after being idle).")
        self.group, self.name = group, name


class ConsumerInstanceExists(StreamletError):
    """Creating a consumer instance with a name the group already uses."""

    code = "consumer_instance_exists"
    status = 409
    error_code = 40902

    def __init__(self, group: str, name: str) -> None:
        super().__init__(f"Consumer instance '{name}' already exists in group '{group}'.")
        self.group, self.name = group, name


class ConsumerIllegalState(StreamletError):
    """Subscription and manual assignment mixed, or a commit without a subscription.

    REST Proxy answers Kafka's IllegalStateException with 409 and error_code 40903.
    """

    code = "illegal_state"
    status = 409
    error_code = 40903


class ClusterNotFound(StreamletError):
    """A REST Proxy v3 path names a cluster other than this deployment's."""

    code = "cluster_not_found"
    status = 404
    error_code = 404

    def __init__(self, cluster: str, expected: str) -> None:
        super().__init__(f"Cluster '{cluster}' does not exist; this deployment's cluster "
                         f"is '{expected}'.")
        self.cluster = cluster


class ResourceNotFound(StreamletError):
    """A REST Proxy v3 resource that does not exist: a group's consumer, a consumer's
    assignment, a partition's lag before any commit (REST Proxy v3's 404 body)."""

    code = "resource_not_found"
    status = 404
    error_code = 404


class RecordNotJson(StreamletError):
    """A ``json`` consumer instance met a record whose key or value is not JSON."""

    code = "record_not_json"
    status = 422
    error_code = 42201


class DataUnavailable(StreamletError):
    """Offsets between the log start and the high watermark could not be read from either
    tier (a hot batch expired before it was archived, or a segment object is missing)."""

    code = "data_unavailable"
    error_code = 50003


class UnsupportedLayout(StreamletError):
    """A topic written in a storage layout this version does not read."""

    code = "unsupported_layout"
    status = 409
    error_code = 40905

    def __init__(self, topic: str, layout: int, supported: int) -> None:
        super().__init__(
            f"Topic '{topic}' uses storage layout {layout}; this Streamlet reads layout "
            f"{supported} only. Recreate the topic (its old items cannot be read).")
        self.topic, self.layout = topic, layout


class AppendOutcomeUnknown(StreamletError):
    """A retried batch's earlier attempt may or may not have been written, and the log has
    moved too far since then to tell within the read budget; nothing was written now."""

    code = "append_outcome_unknown"
    status = 409
    error_code = 40906


class TransactionAborted(StreamletError):
    """The transaction was aborted (it outlived transaction_timeout_ms, a consumer-group
    lease it committed offsets for moved, or it was aborted explicitly): none of its
    records or offsets are visible, ever. Begin a new transaction."""

    code = "transaction_aborted"
    status = 409
    error_code = 40907


class InvalidTxnState(StreamletError):
    """A transactional call out of order (a send outside a transaction on a transactional
    producer, begin twice, commit without begin...); nothing was written."""

    code = "invalid_txn_state"
    status = 409
    error_code = 40908


class TransactionTooLarge(StreamletError):
    """A transaction would need more than one DynamoDB transaction (100 items) to commit,
    or lists more batches than its record holds; refused when the part that crosses the
    limit is added, never split."""

    code = "transaction_too_large"
    status = 413
    error_code = 41302


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


class TailUnverified(RetriableError):
    """The partition's tail cannot be vouched for: its newest batches may have expired from
    DynamoDB before they were archived. Appends are refused (never at a reused offset)
    until an archiver pass vouches for the tail again; an alarm should be raised."""

    code = "tail_unverified"
    error_code = 50304


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


class BufferExhausted(StreamletError):
    """``Producer.send`` waited ``max_block_ms`` for room in its ``buffer_memory`` and got
    none: the records queued before it are still unacknowledged (a slow or failing
    deployment). Nothing was queued; sending again later may succeed (Kafka's
    BufferExhaustedException, a TimeoutException). Raised by the SDK only, never sent."""

    code = "buffer_exhausted"
    status = 503
    error_code = 50305
    retriable = True

    def __init__(self, size: int, buffer_memory: int, max_block_ms: float) -> None:
        super().__init__(
            f"Could not queue a record of {size} bytes: the producer's buffer_memory="
            f"{buffer_memory} bytes stayed full for max_block_ms={max_block_ms:g} (records "
            "sent earlier are still waiting for the deployment). Slow down, or raise "
            "buffer_memory or max_block_ms.")
        self.size, self.buffer_memory, self.max_block_ms = size, buffer_memory, max_block_ms


class ConfigNotFound(InvalidConfig):
    """A topic config named in a path (``.../configs/{name}``) that topics do not have
    (REST Proxy v3 answers 404)."""

    code = "config_not_found"
    status = 404
    error_code = 40405

    def __init__(self, topic: str, name: str) -> None:
        super().__init__(f"Config '{name}' cannot be found for topic '{topic}'.")
        self.topic, self.name = topic, name


def _class_for_status(status: int) -> type[StreamletError]:
    if status == 429:
        return Throttled
    if status >= 500:
        return RequestTimedOut  # the API or its function failed: the outcome is unknown
    return {401: AccessDenied, 403: AccessDenied, 413: RecordTooLarge}.get(status, InvalidRequest)


def error_classes() -> dict[str, type[StreamletError]]:
    """Every error class by its wire ``code`` (each class registers itself)."""
    return dict(_BY_CODE)
