"""Partition logs: append with conditional offsets, fetch, watermarks and time lookups.

Append is ONE ``TransactWriteItems``: advance the head (condition: ``next_offset`` is
what we read), put the batch item (condition: absent) and, for idempotent producers,
put the producer's state. A failed head condition means someone else appended (or our
own earlier attempt landed and its reply was lost): re-read and decide again.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..clock import SYSTEM, Clock
from ..codec import (
    BatchHeader,
    parse_header,
    with_base_offset,
    with_log_append_time,
)
from ..errors import (
    AppendConflict,
    OffsetMismatch,
    RecordTooLarge,
    StreamletError,
)
from ..records import AppendResult
from ..topicconfig import MAX_INLINE_BYTES, config_int, config_str
from . import producers, schema
from .aws import cancellation_reasons, error_code, items, translated
from .blobs import BlobStore
from .topics import TopicMeta, TopicStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactGetItemTypeDef, TransactWriteItemTypeDef

MAX_APPEND_ATTEMPTS = 50
PRODUCER_STATE_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Head:
    """A partition head as read (strongly consistent)."""

    next_offset: int
    log_start: int
    max_timestamp: int
    archived: int = 0
    """The archive watermark: offsets below it are read from S3 segments."""
    bytes_appended: int = 0
    archived_bytes: int = 0

    @property
    def hot_bytes(self) -> int:
        return self.bytes_appended - self.archived_bytes


@dataclass(frozen=True, slots=True)
class _State:
    head: Head
    producer: producers.ProducerState | None


def _head_from_item(item: dict[str, Any]) -> Head:
    def number(name: str) -> int:
        return int(item[name]["N"]) if name in item else 0

    return Head(number(schema.A_NEXT_OFFSET), number(schema.A_LOG_START), number(schema.A_MAX_TS),
                number(schema.A_ARCHIVED), number(schema.A_BYTES), number(schema.A_ARCHIVED_BYTES))


class PartitionLog:
    """Appends to and reads from partition logs."""

    def __init__(self, dynamodb: DynamoDBClient, blobs: BlobStore, names: schema.Names,
                 topics: TopicStore, clock: Clock = SYSTEM) -> None:
        self._ddb = dynamodb
        self._blobs = blobs
        self._table = names.log_table
        self._topics = topics
        self._clock = clock
        self._cache: dict[tuple[str, int], _State] = {}
        self._lock = threading.Lock()

    # ---- append -------------------------------------------------------------------------

    def append(self, topic: str, partition: int, batch: bytes,
               expected_offset: int | None = None) -> AppendResult:
        """Append one RecordBatch v2; returns the offsets it was given."""
        header = parse_header(batch)
        meta = self._partition(topic, partition)
        limit = config_int(meta.config, "max.message.bytes")
        if header.size > limit:
            raise RecordTooLarge(topic, header.size, limit, what="record batch")
        append_time = -1
        if config_str(meta.config, "message.timestamp.type") == "LogAppendTime":
            append_time = int(self._clock.time() * 1000)
            batch = with_log_append_time(batch, append_time)
            header = parse_header(batch)
        return self._append_loop(meta, partition, header, batch, expected_offset, append_time)

    def _append_loop(self, meta: TopicMeta, partition: int, header: BatchHeader, batch: bytes,
                     expected: int | None, append_time: int) -> AppendResult:
        blob: str | None = None
        for attempt in range(MAX_APPEND_ATTEMPTS):
            state, done = self._state_and_decision(meta, partition, header, expected,
                                                   cached=attempt == 0)
            if done is not None:
                return done
            if blob is None and self._goes_to_s3(meta, header):
                blob = self._blobs.put(meta.topic_id, partition, batch)
            result = self._try_commit(meta, partition, header, batch, state, blob, append_time)
            if result is not None:
                return result
            meta = self._partition(meta.name, partition, fresh=True)
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
        raise AppendConflict(f"Gave up appending to '{meta.name}' partition {partition} after "
                             f"{MAX_APPEND_ATTEMPTS} conflicting attempts.")

    def _state_and_decision(self, meta: TopicMeta, partition: int, header: BatchHeader,
                            expected: int | None, cached: bool
                            ) -> tuple[_State, AppendResult | None]:
        """Decide on cached state; an error is only raised after a fresh, consistent read."""
        if cached:
            hit = self._cached(meta, partition, header.producer_id)
            if hit is not None:
                try:
                    return hit, self._decide(meta, partition, header, hit, expected)
                except StreamletError:
                    self._forget(meta, partition, header.producer_id)
        state = self._read_state(meta, partition, header.producer_id)
        return state, self._decide(meta, partition, header, state, expected)

    def _decide(self, meta: TopicMeta, partition: int, header: BatchHeader, state: _State,
                expected: int | None) -> AppendResult | None:
        """A result for a duplicate batch, an error, or None to go ahead and write."""
        if header.idempotent:
            dup = producers.find_duplicate(state.producer, header)
            if dup is not None:
                return AppendResult(dup.base_offset, dup.last_offset,
                                    dup.timestamp if header.timestamp_type else -1,
                                    state.head.log_start, duplicate=True)
            producers.check_sequence(state.producer, header, meta.name, partition)
        if expected is not None and expected != state.head.next_offset:
            raise OffsetMismatch(meta.name, partition, expected, state.head.next_offset)
        return None

    def _goes_to_s3(self, meta: TopicMeta, header: BatchHeader) -> bool:
        return header.size > min(config_int(meta.config, "inline.max.bytes"), MAX_INLINE_BYTES)

    def _try_commit(self, meta: TopicMeta, partition: int, header: BatchHeader, batch: bytes,
                    state: _State, blob: str | None, append_time: int) -> AppendResult | None:
        head = state.head
        base = head.next_offset
        last = base + header.record_count - 1
        running_max = max(head.max_timestamp, header.max_timestamp)
        items = [self._head_update(meta, partition, head, last + 1, running_max, header.size),
                 self._batch_put(meta, partition, header, batch, base, running_max, blob)]
        producer = None
        if header.idempotent:
            producer = producers.advance(state.producer, header, base, append_time)
            items.append(self._producer_put(meta, partition, header.producer_id, producer))
        try:
            with translated(f"append to '{meta.name}' partition {partition}"):
                self._ddb.transact_write_items(TransactItems=items)
        except ClientError as e:
            if error_code(e) in ("TransactionCanceledException", "TransactionConflictException"):
                self._forget(meta, partition, header.producer_id)
                self._note_missing_head(meta, e)
                return None
            raise
        new_head = Head(last + 1, head.log_start, running_max, head.archived,
                        head.bytes_appended + header.size, head.archived_bytes)
        self._remember(meta, partition, header.producer_id, _State(new_head, producer))
        return AppendResult(base, last, append_time, head.log_start)

    def _note_missing_head(self, meta: TopicMeta, error: ClientError) -> None:
        reasons = cancellation_reasons(error)
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed" \
                and not reasons[0].get("Item"):
            self._topics.forget(meta.name)  # head gone: topic deleted or recreated

    def _head_update(self, meta: TopicMeta, partition: int, head: Head, next_offset: int,
                     max_ts: int, size: int) -> TransactWriteItemTypeDef:
        return {"Update": {
            "TableName": self._table, "Key": schema.head_key(meta.topic_id, partition),
            "UpdateExpression":
                "SET #n = :next, #ts = :ts, #b = if_not_exists(#b, :zero) + :size",
            "ConditionExpression": "#n = :cur",
            "ExpressionAttributeNames": {"#n": schema.A_NEXT_OFFSET, "#ts": schema.A_MAX_TS,
                                         "#b": schema.A_BYTES},
            "ExpressionAttributeValues": {":next": {"N": str(next_offset)},
                                          ":cur": {"N": str(head.next_offset)},
                                          ":ts": {"N": str(max_ts)}, ":zero": {"N": "0"},
                                          ":size": {"N": str(size)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}

    def _batch_put(self, meta: TopicMeta, partition: int, header: BatchHeader, batch: bytes,
                   base: int, max_ts: int, blob: str | None) -> TransactWriteItemTypeDef:
        now_ms = int(self._clock.time() * 1000)
        item: dict[str, Any] = {
            schema.PK: {"S": schema.partition_pk(meta.topic_id, partition)},
            schema.SK: {"S": schema.batch_sk(base + header.record_count - 1)},
            schema.A_BASE: {"N": str(base)},
            schema.A_COUNT: {"N": str(header.record_count)},
            schema.A_SIZE: {"N": str(header.size)},
            schema.A_MAX_TS: {"N": str(max_ts)},
            schema.A_APPEND_TIME: {"N": str(now_ms)},
        }
        local_retention = config_int(meta.config, "local.retention.ms")
        if local_retention >= 0:
            item[schema.TTL] = {"N": str((now_ms + local_retention) // 1000)}
        if blob is None:
            item[schema.A_DATA] = {"B": with_base_offset(batch, base)}
        else:
            item[schema.A_BLOB] = {"S": blob}
        return {"Put": {"TableName": self._table, "Item": item,
                        "ConditionExpression": "attribute_not_exists(#sk)",
                        "ExpressionAttributeNames": {"#sk": schema.SK}}}

    def _producer_put(self, meta: TopicMeta, partition: int, producer_id: int,
                      state: producers.ProducerState) -> TransactWriteItemTypeDef:
        now = int(self._clock.time())
        item = {
            **schema.producer_key(meta.topic_id, partition, producer_id),
            schema.A_EPOCH: {"N": str(state.epoch)},
            schema.A_BATCHES: {"L": [b.as_attribute() for b in state.batches]},
            schema.A_UPDATED: {"N": str(now * 1000)},
            schema.TTL: {"N": str(now + PRODUCER_STATE_TTL_S)},
        }
        return {"Put": {"TableName": self._table, "Item": item}}

    # ---- state --------------------------------------------------------------------------

    def _partition(self, topic: str, partition: int, fresh: bool = False) -> TopicMeta:
        meta = self._topics.get(topic, fresh=fresh)
        if not fresh and not 0 <= partition < meta.partitions:
            meta = self._topics.get(topic, fresh=True)  # the topic may have grown
        meta.check_partition(partition)
        return meta

    def _cached(self, meta: TopicMeta, partition: int, producer_id: int) -> _State | None:
        with self._lock:
            return self._cache.get((schema.partition_pk(meta.topic_id, partition), producer_id))

    def _read_state(self, meta: TopicMeta, partition: int, producer_id: int,
                    retried: bool = False) -> _State:
        """Head and producer state in one serializable read (TransactGetItems).

        A missing head means the topic was deleted or recreated since ``meta`` was read
        (retried once with fresh metadata), or that its partitions are still being
        created or deleted: then a retriable AppendConflict.
        """
        gets: list[TransactGetItemTypeDef] = [
            {"Get": {"TableName": self._table, "Key": schema.head_key(meta.topic_id, partition)}}]
        if producer_id >= 0:
            gets.append({"Get": {"TableName": self._table,
                                 "Key": schema.producer_key(meta.topic_id, partition,
                                                             producer_id)}})
        with translated(f"read '{meta.name}' partition {partition}"):
            out = self._ddb.transact_get_items(TransactItems=gets)["Responses"]
        head_item = out[0].get("Item")
        if head_item is None:
            self._topics.forget(meta.name)
            if retried:
                raise AppendConflict(f"Partition {partition} of '{meta.name}' has no head "
                                     "(being created or deleted); retry.")
            meta = self._partition(meta.name, partition, fresh=True)
            return self._read_state(meta, partition, producer_id, retried=True)
        producer_item = out[1].get("Item") if len(out) > 1 else None
        producer = (producers.ProducerState.from_item(producer_item, schema.A_EPOCH,
                                                        schema.A_BATCHES)
                    if producer_item else None)
        return _State(_head_from_item(head_item), producer)

    def _remember(self, meta: TopicMeta, partition: int, producer_id: int,
                  state: _State) -> None:
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(schema.partition_pk(meta.topic_id, partition), producer_id)] = state

    def _forget(self, meta: TopicMeta, partition: int, producer_id: int) -> None:
        with self._lock:
            self._cache.pop((schema.partition_pk(meta.topic_id, partition), producer_id), None)

    # ---- reads --------------------------------------------------------------------------

    def head(self, topic: str, partition: int) -> tuple[TopicMeta, Head]:
        """The partition's head, read strongly consistent."""
        meta = self._partition(topic, partition)
        for fresh in (False, True):
            if fresh:
                meta = self._partition(topic, partition, fresh=True)
            with translated(f"read '{topic}' partition {partition}"):
                item = self._ddb.get_item(TableName=self._table, ConsistentRead=True,
                                          Key=schema.head_key(meta.topic_id, partition)).get("Item")
            if item is not None:
                return meta, _head_from_item(item)
        self._topics.forget(topic)
        self._topics.get(topic, fresh=True)  # raises TopicNotFound once it is gone
        raise AppendConflict(f"Partition {partition} of '{topic}' is being recreated; retry.")

    def query(self, meta: TopicMeta, partition: int, first: int, last: int,
              page: int = 50) -> Iterator[dict[str, Any]]:
        """Batch items whose last offset is in [first, last], in order (strongly consistent)."""
        return items(self._ddb.query, f"read '{meta.name}' partition {partition}",
                     **self._query_args(meta, partition, first, last, page))

    def query_page(self, meta: TopicMeta, partition: int, first: int, last: int,
                   limit: int) -> list[dict[str, Any]]:
        """Like :meth:`query`, one page only: at most ``limit`` items (and at most 1 MB)."""
        with translated(f"read '{meta.name}' partition {partition}"):
            page = self._ddb.query(**self._query_args(meta, partition, first, last, limit))
        found: list[dict[str, Any]] = page.get("Items", [])
        return found

    def _query_args(self, meta: TopicMeta, partition: int, first: int, last: int,
                    limit: int) -> dict[str, Any]:
        return {"TableName": self._table, "ConsistentRead": True, "Limit": limit,
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": {"#pk": schema.PK, "#sk": schema.SK},
                "ExpressionAttributeValues": {
                    ":pk": {"S": schema.partition_pk(meta.topic_id, partition)},
                    ":lo": {"S": schema.batch_sk(first)}, ":hi": {"S": schema.batch_sk(last)}}}

    def batch_bytes(self, item: dict[str, Any]) -> bytes:
        """A batch item's RecordBatch, as fetched (from the item or its S3 blob)."""
        if schema.A_DATA in item:
            return bytes(item[schema.A_DATA]["B"])
        return with_base_offset(self._blobs.get(item[schema.A_BLOB]["S"]),
                                int(item[schema.A_BASE]["N"]))


def last_offset(item: dict[str, Any]) -> int:
    return int(item[schema.SK]["S"][len(schema.BATCH_PREFIX):])
