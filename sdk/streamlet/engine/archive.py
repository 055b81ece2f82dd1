"""The archiver and retention: hot batches roll into S3 segments; old segments expire.

Archiving one segment is four steps, each safe to crash after:

1. read the hot batches from the archive watermark (strongly consistent);
2. PUT the segment object with ``If-None-Match: *`` under a key made of its base offset
   (a 412 means an earlier run wrote it: that object, read back from its trailer, is used);
3. one transaction: raise the partition item's archive watermark (condition: unchanged),
   carry the running values of the log to it (bytes, max timestamp, max append time), set
   ``safe_until`` and put the manifest item. Readers route below the watermark to S3
   from this moment;
4. delete the S3 blobs of archived batches. The batch items themselves leave by DynamoDB
   TTL (set at append, free), never by DeleteItem.

``safe_until`` is when the oldest batch not yet archived can first expire (its TTL), or,
with nothing left unarchived, when a batch appended from now on could (the last running
max append time + local.retention.ms). Writers rely on it only when the newest batch is
gone or about to expire (see :mod:`streamlet.engine.log`): then, if the archiver has not
vouched for the tail recently enough, appends fail closed instead of reusing offsets.

Transactions: a segment ends before the first batch of a transaction still open (one
past its timeout is aborted first), so only decided batches are archived; the ranges of
aborted transactions' batches go into the manifest item (the object keeps every batch
as it was appended) and read_committed readers skip them there.

Retention advances the partition item's log start (the commit point) before it deletes a
segment's object and then its manifest item, so no reader is ever sent to a deleted
segment. Deleted topics are purged here once no writer can still hold a view of them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._values import is_int
from ..clock import SYSTEM, Clock
from ..errors import AppendConflict, DataUnavailable, OffsetOutOfRange, TopicNotFound
from ..records import ArchiveReport, RetentionReport
from ..topicconfig import config_int
from . import schema
from .aws import ObjectGone, batch_write, conditional, items, transacted
from .blobs import BlobStore
from .log import NEVER, PartitionLog, PartitionState, StoredBatch, batch_from_item
from .manifest import Manifest
from .segments import ArchivedBatch, Segment, SegmentStore, build
from .topics import FOREVER_MS, DeletedTopic, TopicMeta, TopicStore
from .transactions import TransactionStore, Visibility

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

BLOB_GRACE_S = 600
"""A blob is deleted only when it is this much older than the oldest unarchived batch:
an append writes its blob first and commits within seconds, never minutes."""
MAX_ROLL_RACES = 20
PURGE_GRACE_MS = 15 * 60 * 1000
"""A deleted incarnation's items are purged this long after its partitions were sealed:
far beyond any cached tail (log.CACHE_SECONDS) and any request in flight, so no write can
land in a key the purge freed."""
PAGE = 50
VOUCH_STEP_MS = 3600 * 1000
MAX_SKIPPED_RANGES = 4000
"""Aborted ranges one segment's manifest item records at most (about 100 KB): a segment
ends early rather than grow its item toward DynamoDB's 400 KB."""
Skips = list[tuple[int, int]]


class _Blocked(Exception):
    """The oldest unarchived batch belongs to a transaction still open."""


class Archiver:
    """Moves hot batches to S3 segments, enforces retention and purges deleted topics."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names, topics: TopicStore,
                 log: PartitionLog, manifest: Manifest, segments: SegmentStore,
                 blobs: BlobStore, txns: TransactionStore, clock: Clock = SYSTEM) -> None:
        self._ddb = dynamodb
        self._table = names.log_table
        self._topics = topics
        self._log = log
        self._manifest = manifest
        self._segments = segments
        self._blobs = blobs
        self._txns = txns
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def partitions(self, topic: str | None) -> Iterator[tuple[str, int]]:
        """Every (topic, partition) of ``topic``, or of all topics."""
        for name in [topic] if topic is not None else self._topics.list():
            try:
                meta = self._topics.get(name, fresh=True)
            except TopicNotFound:
                if topic is not None:
                    raise
                continue  # deleted since it was listed
            for partition in range(meta.partitions):
                yield name, partition

    # ---- archiving ----------------------------------------------------------------------

    def archive(self, topic: str, partition: int, force: bool = False) -> ArchiveReport:
        """Roll every segment that is due (all hot batches if ``force``), up to the high
        watermark seen at the start: a busy partition's newer batches wait for the next
        pass instead of keeping this one going."""
        report = ArchiveReport(topic, partition)
        target, races = None, 0
        while True:
            meta, tail = self._log.snapshot(topic, partition)
            ref, state = meta.ref(partition), tail.state
            target = tail.chain.next_offset if target is None else target
            report.archived_offset, report.high_watermark = state.archived, tail.chain.next_offset
            start = max(state.archived, state.log_start)
            if start >= target:
                report.unarchived_age_ms = 0
                break
            if not force and not self._due(meta, ref, state, start, tail.chain.bytes, report):
                break
            try:
                segment = self._roll(meta, ref, state, start, target)
            except _Blocked:  # an open transaction: the next pass goes on
                break
            if segment is None:  # another archiver (or a trim) raced us: look again
                races += 1
                if races >= MAX_ROLL_RACES:
                    raise AppendConflict(f"Gave up archiving '{topic}' partition {partition}: "
                                         f"its partition item kept changing ({races} attempts).")
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**races)))
                continue
            report.segments.append(segment.info)
            report.archived_offset = segment.last_offset + 1
        if report.segments or force:
            report.blobs_deleted = self._delete_archived_blobs(topic, partition)
        self._vouch(topic, partition)
        return report

    def _vouch(self, topic: str, partition: int) -> None:
        """Renew ``safe_until`` while the tail can still be trusted (see the module
        docstring), so a quiet partition whose batches expired keeps accepting appends as
        long as passes run at least once per local.retention.ms. Written only when it
        moves by VOUCH_STEP_MS or more (a pass every 5 minutes writes about once an hour)."""
        meta, tail = self._log.snapshot(topic, partition)
        ref, state, now = meta.ref(partition), tail.state, self._now_ms()
        last_alive = tail.last is not None and (tail.last.chain.expiry == NEVER or
                                                tail.last.chain.expiry * 1000 > now)
        if not last_alive and state.safe_until <= now:
            return  # cannot vouch: writers stay refused (TailUnverified) and say why
        start = max(state.archived, state.log_start)
        if start < tail.chain.next_offset:
            expiry = self._first_hot(meta, ref, start).chain.expiry
            safe = FOREVER_MS if expiry == NEVER else expiry * 1000
        else:
            retention = config_int(meta.config, "local.retention.ms")
            safe = FOREVER_MS if retention < 0 else now + retention
        if safe - state.safe_until >= VOUCH_STEP_MS:
            conditional(self._ddb.update_item, f"vouch for '{topic}' partition {partition}",
                        TableName=self._table, Key=ref.state_key,
                        UpdateExpression="SET #su = :su",
                        ConditionExpression="#a = :a AND #su < :su",
                        ExpressionAttributeNames={"#su": schema.A_SAFE_UNTIL,
                                                  "#a": schema.A_ARCHIVED},
                        ExpressionAttributeValues={":su": {"N": str(safe)},
                                                   ":a": {"N": str(state.archived)}})

    def _due(self, meta: TopicMeta, ref: schema.PartitionRef, state: PartitionState,
             start: int, tail_bytes: int, report: ArchiveReport) -> bool:
        """A segment is due when the hot bytes reach segment.bytes or the oldest hot batch
        is segment.ms old (its age is reported either way)."""
        report.unarchived_age_ms = self._age_ms(self._first_hot(meta, ref, start))
        if tail_bytes - state.archived_bytes >= config_int(meta.config, "segment.bytes"):
            return True
        return report.unarchived_age_ms >= config_int(meta.config, "segment.ms")

    def _age_ms(self, first: StoredBatch) -> int:
        return max(0, self._now_ms() - first.chain.append_max)

    def _first_hot(self, meta: TopicMeta, ref: schema.PartitionRef, start: int) -> StoredBatch:
        found = self._log.holding(meta, ref, start)
        if found is None or found.sealed or found.end <= start:
            after = self._log.query(meta, ref, schema.batch_sk(start),
                                    schema.batch_sk(schema.MAX_OFFSET), 1)
            gap = f"{start}..{batch_from_item(after[0]).base - 1}" if after else f"{start}.."
            raise DataUnavailable(f"'{meta.name}' partition {ref.partition}: offsets {gap} are "
                                  "below the high watermark but in no batch (expired before "
                                  "archiving?); not archiving.")
        return found

    def _roll(self, meta: TopicMeta, ref: schema.PartitionRef, state: PartitionState,
              start: int, target: int) -> Segment | None:
        batches, last, after, skips = self._hot_batches(meta, ref, start, target)
        key = ref.segment_key(batches[0].base_offset)
        body, segment = build(key, batches)
        segment = self._segments.put(body, segment)
        if segment.last_offset != last.end - 1:  # an earlier run wrote a different cut
            last = self._first_hot(meta, ref, segment.last_offset)
            after = self._log.holding(meta, ref, segment.last_offset + 1)
            skips = self._skips_until(meta, ref, segment.base_offset, segment.last_offset + 1)
        segment = replace(segment, skipped=tuple(skips))
        safe = self._safe_until(meta, last, after)
        if not transacted(self._ddb.transact_write_items, f"record segment {key}",
                          TransactItems=[self._raise_watermark(ref, state, last, safe),
                                         self._manifest.put_action(ref, segment)]):
            return None
        self._log.forget_partition(ref)
        return segment

    def _hot_batches(self, meta: TopicMeta, ref: schema.PartitionRef, start: int, target: int
                     ) -> tuple[list[ArchivedBatch], StoredBatch, StoredBatch | None, Skips]:
        """Whole batches from the one holding ``start``, up to segment.bytes, ``target`` or
        the first batch of an open transaction (_Blocked if that is the first); the last
        one taken, the first one after it if this read saw it, and the aborted ranges."""
        limit, size = config_int(meta.config, "segment.bytes"), 0
        out: list[ArchivedBatch] = []
        skips: Skips = []
        last: StoredBatch | None = None
        for found in self._from(meta, ref, start):
            if last is not None and (size >= limit or found.base >= target
                                     or len(skips) >= MAX_SKIPPED_RANGES):
                return out, last, found, skips
            if found.base > (last.end if last else start):
                raise DataUnavailable(f"'{meta.name}' partition {ref.partition}: offsets "
                                      f"{last.end if last else start}..{found.base - 1} are in "
                                      "no batch; not archiving.")
            if not self._decided(meta, ref, found, skips):
                if last is None:
                    raise _Blocked(found.base)
                return out, last, found, skips
            out.append(ArchivedBatch(self._bytes(meta, found), found.base, found.end - 1,
                                     found.chain.ts_max))
            size, last = size + found.size, found
        if last is None:
            raise DataUnavailable(f"'{meta.name}' partition {ref.partition}: no batch holds "
                                  f"offset {start}; not archiving.")
        return out, last, None, skips

    def _decided(self, meta: TopicMeta, ref: schema.PartitionRef, found: StoredBatch,
                 skips: Skips) -> bool:
        """False for a batch of an open transaction; a skipped one extends ``skips``."""
        if found.txn is None:
            return True
        seen = self._txns.visibility(found.txn, meta.topic_id, ref.partition, found.base)
        if seen is Visibility.WAIT:
            return False
        if seen is Visibility.SKIP:
            if skips and skips[-1][1] == found.base:
                skips[-1] = (skips[-1][0], found.end)
            else:
                skips.append((found.base, found.end))
        return True

    def _skips_until(self, meta: TopicMeta, ref: schema.PartitionRef, start: int, end: int
                     ) -> Skips:
        """The aborted ranges among the batches from ``start`` to ``end`` (all decided:
        an earlier run archived them)."""
        skips: Skips = []
        for found in self._from(meta, ref, start):
            if found.base >= end:
                break
            self._decided(meta, ref, found, skips)
        return skips

    def _from(self, meta: TopicMeta, ref: schema.PartitionRef, start: int
              ) -> Iterator[StoredBatch]:
        """The batch holding ``start``, then every later one, in order (sealing stops it)."""
        first = self._first_hot(meta, ref, start)
        yield first
        found = items(self._ddb.query, f"read '{meta.name}' partition {ref.partition}",
                      TableName=self._table, ConsistentRead=True, Limit=PAGE,
                      KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi",
                      ExpressionAttributeNames={"#pk": schema.PK, "#sk": schema.SK},
                      ExpressionAttributeValues={
                          ":pk": {"S": ref.pk}, ":lo": {"S": schema.batch_sk(first.end)},
                          ":hi": {"S": schema.batch_sk(schema.MAX_OFFSET)}})
        for item in found:
            batch = batch_from_item(item)
            if batch.sealed:
                return
            yield batch

    def _bytes(self, meta: TopicMeta, found: StoredBatch) -> bytes:
        try:
            return self._log.batch_bytes(found)
        except ObjectGone as gone:
            raise DataUnavailable(f"'{meta.name}' batch {found.base}..{found.end - 1} cannot "
                                  f"be read ({gone}).") from gone

    def _safe_until(self, meta: TopicMeta, last: StoredBatch, after: StoredBatch | None) -> int:
        """When the oldest batch left unarchived can first expire (ms), or with none left,
        the earliest a batch appended from now on could."""
        if after is not None and not after.sealed:
            return FOREVER_MS if after.chain.expiry == NEVER else after.chain.expiry * 1000
        retention = config_int(meta.config, "local.retention.ms")
        if retention < 0 or last.chain.expiry == NEVER:
            return FOREVER_MS
        return last.chain.append_max + retention

    def _raise_watermark(self, ref: schema.PartitionRef, state: PartitionState,
                         last: StoredBatch, safe_until: int) -> TransactWriteItemTypeDef:
        return {"Update": {
            "TableName": self._table, "Key": ref.state_key,
            "UpdateExpression": "SET #a = :new, #ab = :bytes, #am = :ts, #aa = :append, "
                                "#su = :safe",
            "ConditionExpression": "#a = :old",
            "ExpressionAttributeNames": {"#a": schema.A_ARCHIVED,
                                         "#ab": schema.A_ARCHIVED_BYTES,
                                         "#am": schema.A_ARCHIVED_TS_MAX,
                                         "#aa": schema.A_ARCHIVED_APPEND_MAX,
                                         "#su": schema.A_SAFE_UNTIL},
            "ExpressionAttributeValues": {
                ":old": {"N": str(state.archived)}, ":new": {"N": str(last.end)},
                ":bytes": {"N": str(last.chain.bytes)}, ":ts": {"N": str(last.chain.ts_max)},
                ":append": {"N": str(last.chain.append_max)}, ":safe": {"N": str(safe_until)}}}}

    def _delete_archived_blobs(self, topic: str, partition: int) -> int:
        """Blobs older than the oldest unarchived batch (minus a grace): archived ones, and
        orphans of appends that failed after writing their blob."""
        meta, tail = self._log.snapshot(topic, partition)
        ref, state = meta.ref(partition), tail.state
        cutoff_s = self._clock.time()
        start = max(state.archived, state.log_start)
        if start < tail.chain.next_offset:
            cutoff_s = min(cutoff_s, self._first_hot(meta, ref, start).chain.append_max / 1000)
        cutoff = datetime.fromtimestamp(cutoff_s - BLOB_GRACE_S, UTC)
        return self._blobs.delete_older_than(ref.blob_prefix, cutoff)

    # ---- retention ----------------------------------------------------------------------

    def enforce_retention(self, topic: str, partition: int) -> RetentionReport:
        """Expire whole segments by retention.ms / retention.bytes (-1: keep forever)."""
        meta, tail = self._log.snapshot(topic, partition)
        ref, state = meta.ref(partition), tail.state
        live = [seg for seg in self._manifest.segments(ref) if seg.last_offset >= state.log_start]
        new_start = state.log_start
        retention_ms = config_int(meta.config, "retention.ms")
        retention_bytes = config_int(meta.config, "retention.bytes")
        oldest_kept = self._clock.time() * 1000 - retention_ms
        total = sum(seg.size for seg in live) + max(tail.chain.bytes - state.archived_bytes, 0)
        for seg in live:
            too_old = retention_ms >= 0 and seg.max_timestamp < oldest_kept
            too_big = retention_bytes >= 0 and total - seg.size >= retention_bytes
            if not (too_old or too_big):
                break
            new_start, total = seg.last_offset + 1, total - seg.size
        return self.trim(meta, partition, state, new_start)

    def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        """Kafka's DeleteRecords: make ``before_offset`` (-1: the high watermark) the log
        start; returns the new low watermark."""
        meta, tail = self._log.snapshot(topic, partition)
        state, high = tail.state, tail.chain.next_offset
        if not is_int(before_offset):
            raise OffsetOutOfRange(topic, partition, -1, state.log_start, high)
        target = high if before_offset == -1 else before_offset
        if not 0 <= target <= high:
            raise OffsetOutOfRange(topic, partition, before_offset, state.log_start, high)
        return self.trim(meta, partition, state, target).log_start_after

    def trim(self, meta: TopicMeta, partition: int, state: PartitionState, new_start: int
             ) -> RetentionReport:
        """Advance the log start to ``new_start`` (never backwards), then delete every
        segment wholly below the log start."""
        ref = meta.ref(partition)
        report = RetentionReport(meta.name, partition, state.log_start, state.log_start)
        if new_start > state.log_start:
            conditional(self._ddb.update_item, f"advance the log start of '{meta.name}' "
                        f"partition {partition}", TableName=self._table, Key=ref.state_key,
                        UpdateExpression="SET #ls = :new", ConditionExpression="#ls < :new",
                        ExpressionAttributeNames={"#ls": schema.A_LOG_START},
                        ExpressionAttributeValues={":new": {"N": str(new_start)}})
        state = self._log.state(meta, ref)
        report.log_start_after = state.log_start
        for seg in self._manifest.segments(ref):
            if seg.last_offset >= state.log_start:
                break
            self._segments.delete(seg.key)
            self._manifest.delete(ref, seg)
            report.segments_deleted += 1
        return report

    # ---- purging deleted topics ---------------------------------------------------------

    def purge(self, force: bool = False) -> int:
        """Remove the items and objects of incarnations deleted PURGE_GRACE_MS ago (all of
        them with ``force``, for tests and operators who know no writer is left)."""
        purged = 0
        for deleted in self._topics.deleted():
            if force or self._now_ms() - deleted.sealed_ms >= PURGE_GRACE_MS:
                self._purge(deleted)
                purged += 1
        return purged

    def _purge(self, deleted: DeletedTopic) -> None:
        for ref in deleted.refs():
            keys = items(self._ddb.query, "purge a deleted partition", TableName=self._table,
                         ProjectionExpression="#pk, #sk",
                         KeyConditionExpression="#pk = :pk",
                         ExpressionAttributeNames={"#pk": schema.PK, "#sk": schema.SK},
                         ExpressionAttributeValues={":pk": {"S": ref.pk}})
            requests: list[dict[str, Any]] = [{"DeleteRequest": {"Key": key}} for key in keys]
            batch_write(self._ddb, self._table, requests, "purge a deleted partition")
        for root in (schema.BLOB_PREFIX, schema.SEGMENT_PREFIX):
            self._blobs.delete_prefix(schema.topic_prefix(root, deleted.name, deleted.topic_id))
        self._topics.forget_deleted(deleted.topic_id)
