"""The storage engine: the only code that knows Streamlet's table and bucket layouts.

The SDK's direct transport runs it in-process; the Lambda handlers run it behind the
HTTP API. Clients are injected, never created at import.

Example:
    >>> engine = Engine(boto3.client("dynamodb"), boto3.client("s3"))  # doctest: +SKIP
    >>> engine.create_topic("orders", partitions=3)                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..clock import SYSTEM, Clock
from ..codec import parse_header
from ..errors import StreamletError
from ..records import (
    DEFAULT_FETCH_BYTES,
    AppendResult,
    ArchiveReport,
    FetchResult,
    PartitionInfo,
    ProducerIdentity,
    RetentionReport,
    TopicDescription,
    TransactionInfo,
    TxnOffsets,
)
from ..txn import TIMEOUT_DEFAULT_MS
from . import schema
from .archive import Archiver
from .aws import ensure_storage
from .blobs import BlobStore
from .groups import GroupStore
from .instances import ConsumerInstances
from .kafka_groups import KafkaGroupStore
from .kafka_txn import KafkaTransactions
from .log import PartitionLog
from .manifest import Manifest
from .reads import LogReader
from .schema import Names
from .segments import SegmentStore
from .topics import TopicMeta, TopicStore
from .transactions import TransactionStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

__all__ = ["Engine", "Names", "ensure_storage", "schema"]


class Engine:
    """Topics and partition logs on DynamoDB, large batches and archived segments in S3."""

    def __init__(self, dynamodb: DynamoDBClient, s3: S3Client, names: Names | None = None,
                 clock: Clock = SYSTEM) -> None:
        self.names = names or Names()
        self._ddb = dynamodb
        self._s3 = s3
        self.blobs = BlobStore(s3, self.names)
        self.topics = TopicStore(dynamodb, self.names, clock)
        self.log = PartitionLog(dynamodb, self.blobs, self.names, self.topics, clock)
        self.segments = SegmentStore(s3, self.names)
        manifest = Manifest(dynamodb, self.names, clock)
        self.groups = GroupStore(dynamodb, self.names, clock)
        self.transactions = TransactionStore(dynamodb, self.names, self.topics, self.groups,
                                             clock)
        self.kafka_transactions = KafkaTransactions(dynamodb, self.names, self.transactions)
        """Kafka clients' transactions (the Kafka gateway)."""
        self.reader = LogReader(self.log, manifest, self.segments, self.transactions)
        self.archiver = Archiver(dynamodb, self.names, self.topics, self.log, manifest,
                                 self.segments, self.blobs, self.transactions, clock)

    def close(self) -> None:
        """Close the boto3 clients' connection pools (idempotent)."""
        self._ddb.close()
        self._s3.close()

    def provision(self, s3: S3Client) -> None:
        """Create the tables and bucket (local platform and tests; CDK does it on AWS)."""
        ensure_storage(self._ddb, s3, self.names)

    # ---- topics ---------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, object] | None = None) -> TopicDescription:
        return self._describe(self.topics.create(name, partitions, config), with_offsets=False)

    def list_topics(self) -> list[str]:
        return self.topics.list()

    def describe_topic(self, name: str) -> TopicDescription:
        return self._describe(self.topics.get(name, fresh=True), with_offsets=True)

    def topic_metadata(self, name: str) -> TopicDescription:
        """Partitions and config only, from a short-lived cache (the hot path's lookup)."""
        return self._describe(self.topics.get(name), with_offsets=False)

    def delete_topic(self, name: str) -> None:
        """Delete the topic: lookups fail at once, every partition is sealed (no write to
        it can be acknowledged any more), and a later archiver pass purges its items and
        objects (``purge_deleted``)."""
        meta = self.topics.delete(name)
        for partition in range(meta.partitions):
            self.log.seal(meta, partition)

    def purge_deleted(self, force: bool = False) -> int:
        """Remove what deleted topics left behind, once no writer can hold a view of them
        (``force``: now); returns how many incarnations were purged."""
        return self.archiver.purge(force)

    def alter_topic_config(self, name: str, updates: Mapping[str, object] | None = None,
                           deletes: Iterable[str] = (), validate_only: bool = False
                           ) -> TopicDescription:
        """Set config keys and delete others (back to their defaults), validated as at
        creation; picked up by appends, fetches and the archiver within seconds."""
        return self._describe(self.topics.alter(name, updates, deletes, validate_only),
                              with_offsets=False)

    def create_partitions(self, name: str, total: int) -> TopicDescription:
        return self._describe(self.topics.grow(name, total), with_offsets=False)

    def _describe(self, meta: TopicMeta, with_offsets: bool) -> TopicDescription:
        info = []
        if with_offsets:
            for p in range(meta.partitions):
                low, high = self.watermarks(meta.name, p)
                info.append(PartitionInfo(p, low, high))
        return TopicDescription(meta.name, meta.topic_id, meta.partitions, dict(meta.config),
                                info, meta.overrides)

    # ---- log ------------------------------------------------------------------------

    def append(self, topic: str, partition: int, batch: bytes,
               expected_offset: int | None = None, since_ms: int | None = None,
               transaction: tuple[str, int] | None = None, *,
               deadline_ms: int | None = None, check_sequence: bool = False
               ) -> AppendResult:
        """Append one batch. ``transaction``: (transactional id, number) of the open
        transaction it belongs to; the batch's producer id and epoch must be the
        transaction's (checked with one read: ProducerFenced, TransactionAborted or
        InvalidTxnState, nothing written). ``deadline_ms``: no write starts after it
        (RequestTimedOut, nothing written). ``check_sequence``: hold an idempotent
        retry (``since_ms``) to its producer's sequence, as a broker does
        (:meth:`PartitionLog.append`)."""
        if transaction is not None:
            header = parse_header(batch)
            who = ProducerIdentity(transaction[0], header.producer_id, header.producer_epoch)
            self.transactions.check(who, transaction[1])
        return self.log.append(topic, partition, batch, expected_offset, since_ms,
                               transaction, deadline_ms=deadline_ms,
                               check_sequence=check_sequence)

    def fetch(self, topic: str, partition: int, offset: int,
              max_bytes: int = DEFAULT_FETCH_BYTES, max_records: int | None = None,
              boundary_of: str | None = None, isolation_level: str = "read_committed"
              ) -> FetchResult:
        return self.reader.fetch(topic, partition, offset, max_bytes, max_records, boundary_of,
                                 isolation_level)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return self.reader.watermarks(topic, partition)

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        return self.reader.offset_for_time(topic, partition, timestamp)

    def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        """Kafka's DeleteRecords: records below ``before_offset`` (-1: all) become
        unreadable at once; returns the new low watermark."""
        return self.archiver.delete_records(topic, partition, before_offset)

    # ---- tiered storage -------------------------------------------------------------

    def archive(self, topic: str | None = None, force: bool = False) -> list[ArchiveReport]:
        """Roll due hot batches (all of them if ``force``) into S3 segments."""
        return [self.archiver.archive(t, p, force) for t, p in self.archiver.partitions(topic)]

    def scheduled_pass(self) -> tuple[list[ArchiveReport], list[RetentionReport], list[str]]:
        """Archive what is due and enforce retention on every partition (what the
        deployed schedule and the local timer run). A failing partition does not stop
        the others: its error is returned, one line each."""
        archived: list[ArchiveReport] = []
        expired: list[RetentionReport] = []
        failures: list[str] = []
        for topic, partition in self.archiver.partitions(None):
            try:
                archived.append(self.archiver.archive(topic, partition))
                expired.append(self.archiver.enforce_retention(topic, partition))
            except StreamletError as error:
                failures.append(f"{topic}/{partition}: {type(error).__name__}: {error}")
        try:
            self.archiver.purge()
        except StreamletError as error:
            failures.append(f"purging deleted topics: {type(error).__name__}: {error}")
        return archived, expired, failures

    def enforce_retention(self, topic: str | None = None) -> list[RetentionReport]:
        """Delete segments past retention.ms / retention.bytes; advance log starts."""
        return [self.archiver.enforce_retention(t, p)
                for t, p in self.archiver.partitions(topic)]

    def init_producer_id(self) -> int:
        return self.topics.next_producer_id()

    # ---- transactions ---------------------------------------------------------------

    def init_transactions(self, transactional_id: str,
                          timeout_ms: int = TIMEOUT_DEFAULT_MS) -> ProducerIdentity:
        """Fence older instances of ``transactional_id``; its producer id and new epoch."""
        return self.transactions.init(transactional_id, timeout_ms)

    def begin_transaction(self, who: ProducerIdentity) -> int:
        """Open the id's next transaction; its number (what appends name)."""
        return self.transactions.begin(who)

    def commit_transaction(self, who: ProducerIdentity, number: int,
                           batches: Mapping[tuple[str, int], Iterable[int]],
                           offsets: TxnOffsets | None = None,
                           groups: GroupStore | None = None) -> TransactionInfo:
        """Make the batches (``{(topic, partition): base offsets}``) and the group's
        offsets visible at once (``groups``: the store acting for the caller)."""
        return self.transactions.commit(who, number, batches, offsets, groups).info

    def abort_transaction(self, who: ProducerIdentity, number: int) -> TransactionInfo:
        return self.transactions.abort(who, number).info

    def list_transactions(self, include_ended: bool = False) -> list[TransactionInfo]:
        return self.transactions.listing(include_ended)

    # ---- REST Proxy v2 consumer instances -------------------------------------------

    @property
    def instances(self) -> ConsumerInstances:
        """REST Proxy v2 consumer instances, stored in the groups table."""
        return ConsumerInstances(self._ddb, self.names)

    @property
    def kafka_groups(self) -> KafkaGroupStore:
        """Kafka clients' classic groups (the Kafka gateway), stored in the groups table."""
        return KafkaGroupStore(self._ddb, self.names.groups_table)
