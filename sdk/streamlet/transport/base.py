"""The seam between the client API and a Streamlet deployment: the Transport protocol.

``Producer``, ``Consumer`` and ``Admin`` talk to a :class:`Transport` and nothing else.
Two implement it, as httpx's transports do: the storage engine itself, run in-process
over boto3 (:mod:`.direct`), and :class:`~streamlet.transport.http.HttpTransport`, which
speaks to the deployed HTTP API (which runs the same engine behind API Gateway).

Every method may raise the retriable ``Throttled`` (storage or API throttling) or
``RequestTimedOut`` (no answer in time: a write may or may not have been applied; each
one below is safe to repeat), ``AccessDenied`` (HTTP only), and ``InvalidRequest`` (or a
subclass) for malformed input, with nothing written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ..groups.ops import GroupOps
from ..records import (
    DEFAULT_FETCH_BYTES,
    AppendResult,
    ArchiveReport,
    FetchResult,
    ProducerIdentity,
    RetentionReport,
    TopicDescription,
    TransactionInfo,
    TxnOffsets,
)

__all__ = ["DEFAULT_FETCH_BYTES", "GroupOps", "Transport"]


class Transport(Protocol):
    """Everything the client API needs from a deployment."""

    @property
    def groups(self) -> GroupOps:
        """Consumer-group state (members, leases, committed offsets)."""
        ...

    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, object] | None = None) -> TopicDescription:
        """Create a topic. ``TopicExists``; ``InvalidTopicName``, ``InvalidPartitions`` or
        ``InvalidConfig`` (nothing created)."""
        ...

    def list_topics(self) -> list[str]:
        """Every topic name, sorted."""
        ...

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions, config and each partition's watermarks. ``TopicNotFound``."""
        ...

    def topic_metadata(self, name: str) -> TopicDescription:
        """Partitions and config only, possibly from a cache of a few seconds (what
        producers and consumers look up on their hot path). ``TopicNotFound``."""
        ...

    def delete_topic(self, name: str) -> None:
        """Delete a topic and every record of it. ``TopicNotFound``."""
        ...

    def create_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow ``name`` to ``total`` partitions. ``InvalidPartitions`` if not larger."""
        ...

    def alter_topic_config(self, name: str, updates: Mapping[str, object] | None = None,
                           deletes: Iterable[str] = (), validate_only: bool = False
                           ) -> TopicDescription:
        """Set config keys and reset ``deletes`` to their defaults, all or nothing,
        validated as at creation; returns the topic's config as it now is (with
        ``validate_only``: as it would be, nothing written) and its ``overrides``.
        Appends, fetches and the archiver pick the change up within seconds.
        ``TopicNotFound``; ``InvalidConfig`` (unknown key, bad value, or a concurrent
        alteration: retry)."""
        ...

    def append(self, topic: str, partition: int, batch: bytes,
               expected_offset: int | None = None, since_ms: int | None = None,
               transaction: tuple[str, int] | None = None) -> AppendResult:
        """Append one RecordBatch v2; when it returns, the batch is durable and readable.

        A retry of a batch whose earlier attempt may have landed passes ``since_ms``, the
        wall time (ms) of its first attempt: an idempotent batch (a producer id in the
        header) that landed is answered with its original offsets and ``duplicate=True``
        instead of being written again (``AppendOutcomeUnknown`` if the partition moved
        too far since to tell). With ``expected_offset`` the append happens only at that
        offset (``OffsetMismatch`` otherwise). ``TopicNotFound``, ``PartitionNotFound``,
        ``RecordTooLarge``, ``InvalidRecord``; the retriable ``TailUnverified`` while the
        partition's tail cannot be vouched for. ``transaction``: the (transactional id,
        number) of the open transaction the batch belongs to (its producer id and epoch
        are the transaction's): invisible to read_committed readers until it commits;
        ``ProducerFenced``, ``TransactionAborted`` or ``InvalidTxnState`` (nothing
        written) if that transaction is not open.
        """
        ...

    def fetch(self, topic: str, partition: int, offset: int,
              max_bytes: int = DEFAULT_FETCH_BYTES, max_records: int | None = None,
              boundary_of: str | None = None, isolation_level: str = "read_committed"
              ) -> FetchResult:
        """Whole stored batches from the one holding ``offset`` (at least one if any),
        about ``max_bytes`` in all, never past the high watermark; the result's
        ``high_watermark`` is where the next fetch starts. ``boundary_of``: the topic id
        of the incarnation in which ``offset`` ends a batch the caller read (so a
        caught-up fetch is one small read). ``read_committed`` (the default) stops before
        a transaction still open and skips aborted ones (their offsets are spent);
        ``read_uncommitted`` returns every batch. ``OffsetOutOfRange`` below the log
        start or above the high watermark; ``DataUnavailable`` if records below the high
        watermark cannot be read from either tier."""
        ...

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, high watermark), strongly consistent."""
        ...

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp`` ms, or None."""
        ...

    def init_producer_id(self) -> int:
        """A new idempotent producer id, unique in the deployment."""
        ...

    def init_transactions(self, transactional_id: str, timeout_ms: int = 60_000
                          ) -> ProducerIdentity:
        """Register ``transactional_id`` (or take it over): its producer id and a new
        epoch; every older instance is fenced (``ProducerFenced`` on its next send or
        commit) and the transaction it left open is aborted. ``InvalidRequest`` for an id
        or a timeout (1 s to 15 min) out of bounds."""
        ...

    def begin_transaction(self, who: ProducerIdentity) -> int:
        """Open the id's next transaction; its number (what transactional appends name).
        A retried begin whose first attempt landed gets the same number. ``ProducerFenced``
        if ``who`` is no longer the id's current epoch."""
        ...

    def commit_transaction(self, who: ProducerIdentity, number: int,
                           batches: Mapping[tuple[str, int], Sequence[int]],
                           offsets: TxnOffsets | None = None) -> TransactionInfo:
        """Make the transaction's batches (``{(topic, partition): [base offset, ...]}``,
        every batch it appended) and the group's offsets visible at once, in one
        DynamoDB transaction. Idempotent (a retry answers as the first attempt).
        ``ProducerFenced``; ``TransactionAborted`` if it timed out or was aborted;
        ``CommitFailed`` if a lease moved (the transaction is then aborted);
        ``TransactionTooLarge`` past 100 items (nothing written)."""
        ...

    def abort_transaction(self, who: ProducerIdentity, number: int) -> TransactionInfo:
        """None of the transaction becomes visible, ever. ``InvalidTxnState`` if it
        already committed."""
        ...

    def list_transactions(self, include_ended: bool = False) -> list[TransactionInfo]:
        """Open transactions (and with ``include_ended`` the records still kept)."""
        ...

    def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        """Kafka's DeleteRecords: offsets below ``before_offset`` (-1: all) become
        unreadable at once; returns the new log start offset. ``OffsetOutOfRange``."""
        ...

    def archive(self, topic: str | None = None, force: bool = False
                ) -> list[ArchiveReport]:
        """Roll due hot batches (all of them with ``force``) into S3 segments now."""
        ...

    def enforce_retention(self, topic: str | None = None) -> list[RetentionReport]:
        """Delete segments past retention.ms / retention.bytes now."""
        ...

    def close(self) -> None:
        """Release connections (idempotent). The clients close the transports they made."""
        ...
