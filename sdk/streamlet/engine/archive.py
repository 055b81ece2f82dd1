"""The archiver and retention: hot batches roll into S3 segments; old segments expire.

Archiving one segment is four steps, each safe to crash after:

1. read the hot batches from the archive watermark (strongly consistent);
2. PUT the segment object with ``If-None-Match: *`` under a key made of its base offset
   (a 412 means an earlier run wrote it: that object, read back from its trailer, is used);
3. one transaction: raise the head's archive watermark (condition: unchanged) and put the
   manifest item. Readers route below the watermark to S3 from this moment;
4. delete the S3 blobs of archived batches. The batch items themselves leave by DynamoDB
   TTL (set at append, free), never by DeleteItem.

Retention advances the head's log start (the commit point) before it deletes a segment's
object and then its manifest item, so no reader is ever sent to a deleted segment.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .._values import is_int
from ..clock import SYSTEM, Clock
from ..errors import AppendConflict, DataUnavailable, OffsetOutOfRange, TopicNotFound
from ..records import ArchiveReport, RetentionReport
from ..topicconfig import config_int
from . import schema
from .aws import ObjectGone, conditional, error_code, translated
from .blobs import BlobStore
from .log import Head, PartitionLog, last_offset
from .manifest import Manifest
from .segments import ArchivedBatch, Segment, SegmentStore, build
from .topics import TopicMeta, TopicStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

BLOB_GRACE_S = 600
"""A blob is deleted only when it is this much older than the oldest unarchived batch:
an append writes its blob first and commits within seconds, never minutes."""
MAX_ROLL_RACES = 20


class Archiver:
    """Moves hot batches to S3 segments and enforces retention."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names, topics: TopicStore,
                 log: PartitionLog, manifest: Manifest, segments: SegmentStore, blobs: BlobStore,
                 clock: Clock = SYSTEM) -> None:
        self._ddb = dynamodb
        self._table = names.log_table
        self._topics = topics
        self._log = log
        self._manifest = manifest
        self._segments = segments
        self._blobs = blobs
        self._clock = clock

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
            meta, head = self._log.head(topic, partition)
            target = head.next_offset if target is None else target
            report.archived_offset, report.high_watermark = head.archived, head.next_offset
            start = max(head.archived, head.log_start)
            if start >= target:
                report.unarchived_age_ms = 0
                break
            if not force and head.hot_bytes < config_int(meta.config, "segment.bytes"):
                report.unarchived_age_ms = self._age_ms(meta, partition, head, start)
                if report.unarchived_age_ms < config_int(meta.config, "segment.ms"):
                    break
            segment = self._roll(meta, partition, head, start)
            if segment is None:  # another archiver (or an append) raced us: look again
                races += 1
                if races >= MAX_ROLL_RACES:
                    raise AppendConflict(f"Gave up archiving '{topic}' partition {partition}: "
                                         f"its head kept changing ({races} attempts).")
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**races)))
                continue
            report.segments.append(segment.info)
            report.archived_offset = segment.last_offset + 1
        if report.segments or force:
            report.blobs_deleted = self._delete_archived_blobs(topic, partition)
        return report

    def _age_ms(self, meta: TopicMeta, partition: int, head: Head, start: int) -> int:
        """How long ago the oldest hot batch (the one holding ``start``) was appended."""
        first = self._first_hot(meta, partition, start, head)
        return max(0, int(self._clock.time() * 1000)
                   - int(first.get(schema.A_APPEND_TIME, {"N": "0"})["N"]))

    def _first_hot(self, meta: TopicMeta, partition: int, start: int, head: Head
                   ) -> dict[str, Any]:
        for item in self._log.query(meta, partition, start, head.next_offset - 1, page=1):
            if int(item[schema.A_BASE]["N"]) > start:
                break
            return item
        raise DataUnavailable(f"'{meta.name}' partition {partition}: offset {start} is below "
                              "the high watermark but in no batch (expired before archiving?)")

    def _roll(self, meta: TopicMeta, partition: int, head: Head, start: int) -> Segment | None:
        batches = list(self._hot_batches(meta, partition, head, start))
        key = schema.segment_key(meta.topic_id, partition, batches[0].base_offset)
        body, segment = build(key, batches)
        segment = self._segments.put(body, segment)
        drained = segment.last_offset + 1 >= head.next_offset
        archived_bytes = head.bytes_appended if drained else head.archived_bytes + segment.size
        try:
            with translated(f"record segment {key}"):
                self._ddb.transact_write_items(TransactItems=[
                    self._raise_watermark(meta, partition, head, segment, archived_bytes),
                    self._manifest.put_action(meta.topic_id, partition, segment)])
        except ClientError as e:
            if error_code(e) in ("TransactionCanceledException", "TransactionConflictException"):
                return None
            raise
        return segment

    def _hot_batches(self, meta: TopicMeta, partition: int, head: Head, start: int
                     ) -> Iterator[ArchivedBatch]:
        limit, size, at = config_int(meta.config, "segment.bytes"), 0, start
        for item in self._log.query(meta, partition, start, head.next_offset - 1):
            base, last = int(item[schema.A_BASE]["N"]), last_offset(item)
            if base > at:
                raise DataUnavailable(f"'{meta.name}' partition {partition}: offsets "
                                      f"{at}..{base - 1} are in no batch; not archiving.")
            try:
                data = self._log.batch_bytes(item)
            except ObjectGone as gone:
                raise DataUnavailable(f"'{meta.name}' partition {partition}: batch {base}.."
                                      f"{last} cannot be read ({gone}).") from gone
            yield ArchivedBatch(data, base, last, int(item[schema.A_MAX_TS]["N"]))
            size, at = size + len(data), last + 1
            if size >= limit:
                return

    def _raise_watermark(self, meta: TopicMeta, partition: int, head: Head, segment: Segment,
                         archived_bytes: int) -> TransactWriteItemTypeDef:
        condition = "#a = :old"
        if head.archived == 0:
            condition = "attribute_not_exists(#a) OR #a = :old"
        return {"Update": {
            "TableName": self._table, "Key": schema.head_key(meta.topic_id, partition),
            "UpdateExpression": "SET #a = :new, #ab = :bytes",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#a": schema.A_ARCHIVED, "#ab": schema.A_ARCHIVED_BYTES},
            "ExpressionAttributeValues": {":old": {"N": str(head.archived)},
                                          ":new": {"N": str(segment.last_offset + 1)},
                                          ":bytes": {"N": str(archived_bytes)}}}}

    def _delete_archived_blobs(self, topic: str, partition: int) -> int:
        """Blobs older than the oldest unarchived batch (minus a grace): archived ones, and
        orphans of appends that failed after writing their blob."""
        meta, head = self._log.head(topic, partition)
        cutoff_s = self._clock.time()
        start = max(head.archived, head.log_start)
        if start < head.next_offset:
            first = self._first_hot(meta, partition, start, head)
            cutoff_s = min(cutoff_s, int(first.get(schema.A_APPEND_TIME, {"N": "0"})["N"]) / 1000)
        cutoff = datetime.fromtimestamp(cutoff_s - BLOB_GRACE_S, UTC)
        return self._blobs.delete_older_than(schema.blob_prefix(meta.topic_id, partition), cutoff)

    # ---- retention ----------------------------------------------------------------------

    def enforce_retention(self, topic: str, partition: int) -> RetentionReport:
        """Expire whole segments by retention.ms / retention.bytes (-1: keep forever)."""
        meta, head = self._log.head(topic, partition)
        live = [seg for seg in self._manifest.segments(meta.topic_id, partition)
                if seg.last_offset >= head.log_start]
        new_start = head.log_start
        retention_ms = config_int(meta.config, "retention.ms")
        retention_bytes = config_int(meta.config, "retention.bytes")
        oldest_kept = self._clock.time() * 1000 - retention_ms
        total = sum(seg.size for seg in live) + max(head.hot_bytes, 0)
        for seg in live:
            too_old = retention_ms >= 0 and seg.max_timestamp < oldest_kept
            too_big = retention_bytes >= 0 and total - seg.size >= retention_bytes
            if not (too_old or too_big):
                break
            new_start, total = seg.last_offset + 1, total - seg.size
        return self.trim(meta, partition, head, new_start)

    def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        """Kafka's DeleteRecords: make ``before_offset`` (-1: the high watermark) the log
        start; returns the new low watermark."""
        meta, head = self._log.head(topic, partition)
        if not is_int(before_offset):
            raise OffsetOutOfRange(topic, partition, -1, head.log_start, head.next_offset)
        target = head.next_offset if before_offset == -1 else before_offset
        if not 0 <= target <= head.next_offset:
            raise OffsetOutOfRange(topic, partition, before_offset, head.log_start,
                                   head.next_offset)
        return self.trim(meta, partition, head, target).log_start_after

    def trim(self, meta: TopicMeta, partition: int, head: Head, new_start: int
             ) -> RetentionReport:
        """Advance the log start to ``new_start`` (never backwards), then delete every
        segment wholly below the log start."""
        report = RetentionReport(meta.name, partition, head.log_start, head.log_start)
        if new_start > head.log_start:
            conditional(self._ddb.update_item, f"advance the log start of '{meta.name}' "
                        f"partition {partition}", TableName=self._table,
                        Key=schema.head_key(meta.topic_id, partition),
                        UpdateExpression="SET #ls = :new",
                        ConditionExpression="#ls < :new AND #n >= :new",
                        ExpressionAttributeNames={"#ls": schema.A_LOG_START,
                                                  "#n": schema.A_NEXT_OFFSET},
                        ExpressionAttributeValues={":new": {"N": str(new_start)}})
        _, head = self._log.head(meta.name, partition)
        report.log_start_after = head.log_start
        for seg in self._manifest.segments(meta.topic_id, partition):
            if seg.last_offset >= head.log_start:
                break
            self._segments.delete(seg.key)
            self._manifest.delete(meta.topic_id, partition, seg)
            report.segments_deleted += 1
        return report
