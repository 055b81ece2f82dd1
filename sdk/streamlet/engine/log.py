"""Partition logs: an append is ONE conditional PutItem, keyed by the batch's base offset.

Why offsets stay dense without a head item (the argument of docs/architecture.md):

- The batch item holding offsets ``[b, b + n)`` is written at key ``b/{b}`` with
  ``attribute_not_exists``, where ``b`` is the end of the partition's tail (the batch
  item with the greatest key) read strongly consistent, or cached from our own last
  write. Two writers that read the same tail compute the same key, so exactly one wins;
  a writer with an older view targets a key that is already taken. By induction every
  successful write sits exactly at the true tail + 1: no overlap, no hole, and an item
  present was written whole by one request, so readers never see a partial batch.
- Items leave the table (TTL deletes hot batches in any order, up to ~48 h late). TTL is
  a running maximum along the log, so a batch never expires before one written earlier.
  Hence if the newest batch present has not expired, nothing after it can have expired:
  the tail read is exact. Otherwise the partition item's ``safe_until`` must vouch for
  it (the archiver writes it: when the oldest unarchived batch can first expire), or the
  append fails closed with the retriable :class:`TailUnverified`: reusing an
  acknowledged offset is corruption, refusing an append is not.
- A cached tail is trusted until a wall-clock deadline (``CACHE_SECONDS``, never past the
  expiry it relies on), not on a monotonic clock that stops while a machine sleeps.
- A write whose outcome is unknown (a timeout, a 500, botocore's own resend of a request
  that was applied) can only have landed at the key it targeted, so it is resolved there:
  the retry writes the same item at the same key, and a failed condition returns the item
  that holds the key (``ReturnValuesOnConditionCheckFailure=ALL_OLD``); if it carries our
  producer id, epoch and base sequence (or, without idempotence, our very bytes), it is
  our own earlier attempt. A caller that retries a whole append (the SDK producer, or a
  client of the HTTP API whose first attempt another Lambda served) passes ``since_ms``,
  the wall time of its first attempt: the engine looks back from one consistent snapshot
  of the tail only as far as that attempt could have reached (``LOOKBACK_MAX_BYTES`` at
  most; past that :class:`AppendOutcomeUnknown`, never a duplicate).
- Attempts of one batch can overlap (a client retries while its first attempt still runs
  in another Lambda). Before every write, an attempt searches the batches that landed
  since it last looked (above its lookback, its first tail or the rival that beat it):
  a copy that landed after it learnt a tail sits at or above that tail. Only a first
  attempt's first tail is unsearched; the HTTP API's deadline (``deadline_ms``: no write
  starts after it, and the SDK retries a request left without a reply only after it)
  makes sure no retry has landed by then.
- A deleted topic's partitions are sealed (a seal item at the tail): a writer holding a
  cached view of the old incarnation finds its key taken by the seal and is told the
  topic does not exist; the items are purged only after every such view has expired.
"""

from __future__ import annotations

import itertools
import random
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..clock import SYSTEM, Clock
from ..codec import (
    HEADER_SIZE,
    RECORD_COUNT_OFFSET,
    TRANSACTIONAL_BIT,
    BatchHeader,
    increment_sequence,
    parse_header,
    with_base_offset,
    with_log_append_time,
)
from ..errors import (
    AppendConflict,
    AppendOutcomeUnknown,
    InvalidRecord,
    OffsetMismatch,
    OutOfOrderSequence,
    ProducerFenced,
    RequestTimedOut,
    StreamletError,
    TailUnverified,
    TopicNotFound,
)
from ..records import AppendResult
from ..topicconfig import MAX_INLINE_BYTES, config_int, config_str
from ..validation import INT64_MAX, BatchLimits, validate_batch
from . import schema
from .aws import error_code, translated
from .blobs import BlobStore
from .topics import FOREVER_MS, TRUST_MARGIN_MS, TopicMeta, TopicStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_APPEND_ATTEMPTS = 50
SAME_KEY_ATTEMPTS = 3
"""How often an attempt whose outcome is unknown is retried at its own key in one call."""
CACHE_SECONDS = 10.0
"""A tail this process wrote or read is trusted this long (wall clock) without a read."""
LOOKBACK_MAX_BYTES = 4 * 1024 * 1024
"""How much of a partition's tail a retried append may read to find its first attempt."""
LOOKBACK_PAGES = (2, 8, 32, 64)
"""Items per Query page of a lookback, growing: most retries find their batch at once."""
MEMORY = 10_000
"""Attempts with an unknown outcome remembered in this process (their keys)."""
NEVER = -1
"""An expiry that never comes (local.retention.ms = -1)."""
SEQUENCE_MEMORY = 5
"""A batch may repeat one of its producer's last this many batches (a broker's
max.in.flight.requests.per.connection bound for idempotence); older ones are gaps."""


@dataclass(frozen=True, slots=True)
class Chain:
    """The running values of a log up to its tail: what the next batch item extends."""

    next_offset: int
    append_max: int = 0
    ts_max: int = -1
    bytes: int = 0
    expiry: int = 0
    """Running max TTL (epoch seconds) of the batches so far; NEVER once one never expires."""


@dataclass(frozen=True, slots=True)
class PartitionState:
    """The partition item: written only by topic creation, the archiver and retention."""

    log_start: int
    archived: int
    archived_bytes: int
    archived_ts_max: int
    archived_append_max: int
    safe_until: int

    @property
    def archived_chain(self) -> Chain:
        return Chain(max(self.archived, self.log_start), self.archived_append_max,
                     self.archived_ts_max, self.archived_bytes)


def state_from_item(item: Mapping[str, Any]) -> PartitionState:
    def number(name: str, default: int = 0) -> int:
        return int(item[name]["N"]) if name in item else default

    return PartitionState(number(schema.A_LOG_START), number(schema.A_ARCHIVED),
                          number(schema.A_ARCHIVED_BYTES), number(schema.A_ARCHIVED_TS_MAX, -1),
                          number(schema.A_ARCHIVED_APPEND_MAX),
                          number(schema.A_SAFE_UNTIL, FOREVER_MS))


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch item as read from the log table."""

    base: int
    count: int
    size: int
    chain: Chain
    producer: tuple[int, int, int] | None
    item: Mapping[str, Any]

    @property
    def end(self) -> int:
        return self.base + self.count

    @property
    def sealed(self) -> bool:
        return schema.SEAL in self.item

    @property
    def txn(self) -> tuple[str, int] | None:
        """The transaction (transactional id, number) this batch was sent in, if any."""
        if schema.A_TXN not in self.item:
            return None
        return self.item[schema.A_TXN]["S"], int(self.item[schema.A_TXN_NUMBER]["N"])


def batch_from_item(item: Mapping[str, Any]) -> StoredBatch:
    base = int(item[schema.SK]["S"][len(schema.BATCH_PREFIX):])
    count = int(item[schema.A_COUNT]["N"]) if schema.A_COUNT in item else 0
    expiry = int(item[schema.TTL]["N"]) if schema.TTL in item else NEVER
    chain = Chain(base + count, int(item.get(schema.A_APPEND_MAX, {"N": "0"})["N"]),
                  int(item.get(schema.A_TS_MAX, {"N": "-1"})["N"]),
                  int(item.get(schema.A_BYTES, {"N": "0"})["N"]), expiry)
    producer = None
    if schema.A_PRODUCER in item:
        producer = (int(item[schema.A_PRODUCER]["N"]), int(item[schema.A_EPOCH]["N"]),
                    int(item[schema.A_SEQUENCE]["N"]))
    return StoredBatch(base, count, int(item.get(schema.A_SIZE, {"N": "0"})["N"]), chain,
                       producer, item)


def is_batch(item: Mapping[str, Any]) -> bool:
    return str(item[schema.SK]["S"]).startswith(schema.BATCH_PREFIX)


@dataclass(frozen=True, slots=True)
class Tail:
    """What one consistent read (or our own last write) says about a partition's end."""

    state: PartitionState
    chain: Chain
    trusted_until_ms: int
    last: StoredBatch | None = None


class _Gone(LookupError):
    """The partition item is missing: the incarnation was deleted (or is being created)."""


class Moved(Exception):
    """The topic was deleted and recreated: go on with the new incarnation (``meta``)."""

    def __init__(self, meta: TopicMeta) -> None:
        super().__init__(meta.topic_id)
        self.meta = meta


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One append's item, and the result to answer once it is written."""

    key: int
    item: dict[str, Any]
    result: AppendResult
    chain: Chain


class PartitionLog:
    """Appends to partition logs; reads their tails and partition items."""

    def __init__(self, dynamodb: DynamoDBClient, blobs: BlobStore, names: schema.Names,
                 topics: TopicStore, clock: Clock = SYSTEM) -> None:
        self._ddb = dynamodb
        self._blobs = blobs
        self._table = names.log_table
        self._topics = topics
        self._clock = clock
        self._cache: dict[str, Tail] = {}
        self._attempts: OrderedDict[tuple[str, tuple[object, ...]], int] = OrderedDict()
        self._lock = threading.Lock()

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    # ---- append ---------------------------------------------------------------------------

    def append(self, topic: str, partition: int, batch: bytes,
               expected_offset: int | None = None, since_ms: int | None = None,
               txn: tuple[str, int] | None = None, *,
               deadline_ms: int | None = None, check_sequence: bool = False
               ) -> AppendResult:
        """Append one RecordBatch v2; returns the offsets it was given.

        ``since_ms``: this batch was first sent at that wall time and its outcome is
        unknown (a retry): if an earlier attempt landed, its offsets are answered.
        ``check_sequence`` (with ``since_ms``, for an idempotent batch): the look-back
        also holds the batch to its producer's newest batch in that window, as a Kafka
        broker holds it to its producer state: an older epoch raises
        :class:`ProducerFenced`, a sequence that neither repeats one of the producer's
        last ``SEQUENCE_MEMORY`` batches nor follows the newest raises
        :class:`OutOfOrderSequence` (nothing written). No batch of the producer in the
        window: any sequence is taken, as a broker takes it once the producer's state
        expired.
        ``txn``: the (transactional id, number) of the transaction it belongs to (the
        caller checked that transaction is open).
        ``deadline_ms``: no write is started after this wall time (the caller may retry
        from then on); the request fails with :class:`RequestTimedOut`, nothing written.
        """
        meta = self.meta(topic, partition)
        header = self._validate(meta, partition, batch)
        if header.attributes & TRANSACTIONAL_BIT and txn is None:
            raise InvalidRecord("A transactional batch (attribute bit 4) is appended only "
                                "inside its transaction.")
        ref = meta.ref(partition)
        earlier, checked = self._earlier_attempt(meta, ref, header, batch, since_ms,
                                                 check_sequence)
        if earlier is not None:
            return earlier
        return self._append_loop(meta, ref, header, batch, expected_offset, txn, checked,
                                 deadline_ms)

    def _validate(self, meta: TopicMeta, partition: int, batch: bytes) -> BatchHeader:
        """Decode the batch once, as a broker does, and refuse it unless every record is
        well formed, within max.message.bytes and the timestamp window (a LogAppendTime
        topic stamps its own time, so record times are not checked there)."""
        limits = BatchLimits.from_config(meta.config)
        if config_str(meta.config, "message.timestamp.type") == "LogAppendTime":
            limits = replace(limits, timestamp_before_ms=INT64_MAX, timestamp_after_ms=INT64_MAX)
        return validate_batch(batch, limits, self._now_ms(), meta.name, partition)

    def _append_loop(self, meta: TopicMeta, ref: schema.PartitionRef, header: BatchHeader,
                     batch: bytes, expected: int | None, txn: tuple[str, int] | None,
                     checked: int | None, deadline_ms: int | None = None) -> AppendResult:
        """Write at the tail until a write lands. ``checked``: no copy of this batch sits
        below that offset, and every tail above it is searched for one before a write
        (``_search``). A first attempt (None) sets it at its first fresh tail read, after
        a lost race, having checked the newest batch that read returned; a copy of its
        retry that landed under that is kept out by the request's deadline instead."""
        blob: str | None = None
        identity = _identity(header, batch) if header.idempotent else None
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                tail = self._tail_for(meta, ref, expected, fresh=attempt > 0)
                if identity is not None and (attempt > 0 or checked is not None):
                    low = checked
                    if low is None:  # a first attempt's first fresh read
                        low = tail.last.base if tail.last is not None else tail.chain.next_offset
                    found = self._search(meta, ref, identity, low, tail)
                    if found is not None:
                        return found
                    checked = max(low, tail.chain.next_offset)
                if blob is None and self._goes_to_s3(meta, header):
                    blob = self._blobs.put(ref, batch)
                self._check_deadline(meta, ref, deadline_ms)
                outcome = self._put(meta, ref, header, batch,
                                    self._prepare(meta, ref, header, batch, blob, tail, txn))
            except Moved as moved:  # deleted and recreated: the new incarnation's tail
                meta, ref, blob = moved.meta, moved.meta.ref(ref.partition), None
                checked = None
                continue
            if isinstance(outcome, AppendResult):
                return outcome
            if checked is not None:
                checked = max(checked, outcome)  # the rival at our key: seen, not ours
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
        raise AppendConflict(f"Gave up appending to '{meta.name}' partition {ref.partition} "
                             f"after {MAX_APPEND_ATTEMPTS} conflicting attempts.")

    def _check_deadline(self, meta: TopicMeta, ref: schema.PartitionRef,
                        deadline_ms: int | None) -> None:
        """Refuse to start a write past the request's deadline: the client retries only
        after it, so no attempt of a batch can write after a retry began."""
        if deadline_ms is not None and self._now_ms() > deadline_ms:
            raise RequestTimedOut(
                f"Appending to '{meta.name}' partition {ref.partition}: the request's "
                "deadline passed before its batch could be written; nothing was written.")

    def _tail_for(self, meta: TopicMeta, ref: schema.PartitionRef, expected: int | None,
                  fresh: bool) -> Tail:
        """The trusted tail; an expected offset is refused only after a fresh read."""
        tail = self.tail(meta, ref, fresh=fresh)
        if expected is not None and expected != tail.chain.next_offset and not fresh:
            tail = self.tail(meta, ref, fresh=True)
        if expected is not None and expected != tail.chain.next_offset:
            raise OffsetMismatch(meta.name, ref.partition, expected, tail.chain.next_offset)
        return tail

    def _goes_to_s3(self, meta: TopicMeta, header: BatchHeader) -> bool:
        return header.size > min(config_int(meta.config, "inline.max.bytes"), MAX_INLINE_BYTES)

    def _prepare(self, meta: TopicMeta, ref: schema.PartitionRef, header: BatchHeader,
                 batch: bytes, blob: str | None, tail: Tail, txn: tuple[str, int] | None
                 ) -> _Prepared:
        """The batch item extending ``tail``'s chain, and the result to answer for it."""
        base, prev = tail.chain.next_offset, tail.chain
        append_max = max(prev.append_max, self._now_ms())
        log_append_time = config_str(meta.config, "message.timestamp.type") == "LogAppendTime"
        if log_append_time:
            batch = with_log_append_time(batch, append_max)
            header = parse_header(batch)
        chain = Chain(base + header.record_count, append_max,
                      max(prev.ts_max, header.max_timestamp), prev.bytes + header.size,
                      _expiry(prev.expiry, append_max, meta.config))
        item = _batch_item(ref, base, header, batch, blob, chain)
        if txn is not None:
            item[schema.A_TXN] = {"S": txn[0]}
            item[schema.A_TXN_NUMBER] = {"N": str(txn[1])}
        result = AppendResult(base, chain.next_offset - 1,
                              append_max if log_append_time else -1, tail.state.log_start)
        return _Prepared(base, item, result, chain)

    def _put(self, meta: TopicMeta, ref: schema.PartitionRef, header: BatchHeader,
             batch: bytes, prepared: _Prepared) -> AppendResult | int:
        """Write ``prepared`` at its key: the result, or, if a rival holds the key, where
        the rival's batch ends.

        An attempt whose outcome is unknown is retried at the same key; if that stays
        unknown (or storage throttles), the key is remembered and the error raised: the
        caller's retry checks that key first.
        """
        remembered = _identity(header, batch)
        for attempt in range(SAME_KEY_ATTEMPTS):
            try:
                with translated(f"append to '{meta.name}' partition {ref.partition}"):
                    self._ddb.put_item(
                        TableName=self._table, Item=prepared.item,
                        ConditionExpression="attribute_not_exists(#sk)",
                        ExpressionAttributeNames={"#sk": schema.SK},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
            except StreamletError as error:
                self._remember(ref, remembered, prepared.key)
                if not isinstance(error, RequestTimedOut) or attempt + 1 == SAME_KEY_ATTEMPTS:
                    raise
                continue
            except ClientError as e:
                if error_code(e) != "ConditionalCheckFailedException":
                    raise
                old: Mapping[str, Any] = e.response.get("Item") or {}  # type: ignore[assignment]
                return self._taken(meta, ref, remembered, prepared, old)
            self._written(ref, remembered, prepared)
            return prepared.result
        raise AssertionError("unreachable")

    def _taken(self, meta: TopicMeta, ref: schema.PartitionRef, remembered: tuple[object, ...],
               prepared: _Prepared, old: Mapping[str, Any]) -> AppendResult | int:
        """The key holds ``old``: our own earlier attempt, a seal, or a rival's batch
        (then where it ends)."""
        if old and _identity_of(old) == _identity_of(prepared.item):
            self._written(ref, remembered, prepared)
            return _duplicate(batch_from_item(old), prepared.result)
        self._forget_attempt(ref, remembered)
        self._forget(ref)
        if old and schema.SEAL in old:
            raise Moved(self.moved(meta))
        return batch_from_item(old).end if old and is_batch(old) else prepared.key

    def moved(self, meta: TopicMeta, partition: int | None = None) -> TopicMeta:
        """The topic's current incarnation, after ours was sealed or purged (TopicNotFound
        if there is none)."""
        self._topics.forget(meta.name)
        fresh = self._topics.get(meta.name, fresh=True)
        if fresh.topic_id == meta.topic_id:
            which = "" if partition is None else f" partition {partition}"
            raise AppendConflict(f"'{meta.name}'{which} is being created or deleted; retry.")
        return fresh

    def _written(self, ref: schema.PartitionRef, identity: tuple[object, ...],
                 prepared: _Prepared) -> None:
        self._forget_attempt(ref, identity)
        now = self._now_ms()
        until = now + int(CACHE_SECONDS * 1000)
        if prepared.chain.expiry != NEVER:
            until = min(until, prepared.chain.expiry * 1000 - TRUST_MARGIN_MS)
        with self._lock:
            cached = self._cache.get(ref.pk)
            state = cached.state if cached else PartitionState(0, 0, 0, -1, 0, FOREVER_MS)
            self._cache[ref.pk] = Tail(state, prepared.chain, until)

    # ---- earlier attempts -----------------------------------------------------------------

    def _remember(self, ref: schema.PartitionRef, identity: tuple[object, ...], key: int
                  ) -> None:
        with self._lock:
            self._attempts[(ref.pk, identity)] = key
            self._attempts.move_to_end((ref.pk, identity))
            while len(self._attempts) > MEMORY:
                self._attempts.popitem(last=False)

    def _forget_attempt(self, ref: schema.PartitionRef, identity: tuple[object, ...]) -> None:
        with self._lock:
            self._attempts.pop((ref.pk, identity), None)

    def _earlier_attempt(self, meta: TopicMeta, ref: schema.PartitionRef, header: BatchHeader,
                         batch: bytes, since_ms: int | None, check_sequence: bool = False
                         ) -> tuple[AppendResult | None, int | None]:
        """The offsets of an earlier attempt of this very batch that landed, if any; else
        the offset below which no copy of it can sit (None: nothing known)."""
        identity = _identity(header, batch)
        with self._lock:
            key = self._attempts.get((ref.pk, identity))
        if key is not None:
            found = self._check_key(meta, ref, identity, key)
            if found is not None:
                return found, None
        if since_ms is not None and header.idempotent:
            if check_sequence:
                return self._look_back_in_sequence(meta, ref, header, identity, since_ms)
            return self._look_back(meta, ref, identity, since_ms)
        return None, None

    def _look_back_in_sequence(self, meta: TopicMeta, ref: schema.PartitionRef,
                               header: BatchHeader, identity: tuple[object, ...],
                               since_ms: int) -> tuple[AppendResult | None, int | None]:
        """The look-back of ``check_sequence``. The first batch of a producer's epoch
        (sequence 0) is claimed before it is written: a claim item records the tail then,
        below which no attempt of that batch can be. So a first batch the look-back cannot
        settle (over LOOKBACK_MAX_BYTES of other producers' batches: a new producer on a
        busy partition) is new if nobody claimed it, else searched for from the claim's
        mark, instead of answering AppendOutcomeUnknown."""
        sequence = _SequenceCheck(meta.name, ref.partition, header)
        first = header.base_sequence == 0
        try:
            found, checked = self._look_back(meta, ref, identity, since_ms, sequence)
        except AppendOutcomeUnknown:
            if not first or sequence.expected is not None:
                raise
            tail = self.read_tail(meta, ref)
            mark = self._claim(meta, ref, header, tail.chain.next_offset)
            if mark is None:
                return None, tail.chain.next_offset
            earlier = self._search(meta, ref, identity, mark, tail)
            return (earlier, None) if earlier is not None else (None, tail.chain.next_offset)
        if found is None and first:
            self._claim(meta, ref, header, checked or 0)
        return found, checked

    def _claim(self, meta: TopicMeta, ref: schema.PartitionRef, header: BatchHeader,
               mark: int) -> int | None:
        """Record that the first batch of the producer's epoch is being attempted from
        ``mark`` on (an earlier claim's mark is kept); the earlier mark, if any."""
        with translated(f"append to '{meta.name}' partition {ref.partition}"):
            old = self._ddb.update_item(
                TableName=self._table,
                Key=ref.key(schema.claim_sk(header.producer_id, header.producer_epoch)),
                UpdateExpression="SET #m = if_not_exists(#m, :m), #t = :t",
                ExpressionAttributeNames={"#m": schema.A_MARK, "#t": schema.TTL},
                ExpressionAttributeValues={
                    ":m": {"N": str(mark)},
                    ":t": {"N": str(self._now_ms() // 1000 + schema.CLAIM_SECONDS)}},
                ReturnValues="ALL_OLD").get("Attributes")
        return int(old[schema.A_MARK]["N"]) if old else None

    def _check_key(self, meta: TopicMeta, ref: schema.PartitionRef,
                   identity: tuple[object, ...], key: int) -> AppendResult | None:
        """What holds the key an earlier attempt of ours targeted (one GetItem)."""
        with translated(f"read '{meta.name}' partition {ref.partition}"):
            item = self._ddb.get_item(TableName=self._table, Key=ref.batch_key(key),
                                      ConsistentRead=True).get("Item")
        if item is not None and identity in (_identity_of(item), _identity_of_bytes(item)):
            self._forget_attempt(ref, identity)
            found = batch_from_item(item)
            return _duplicate(found, AppendResult(found.base, found.end - 1, -1, 0))
        return None  # not there: the next write targets that key again or a later one

    def _look_back(self, meta: TopicMeta, ref: schema.PartitionRef,
                   identity: tuple[object, ...], since_ms: int,
                   sequence: _SequenceCheck | None = None
                   ) -> tuple[AppendResult | None, int | None]:
        """Search the batches appended since ``since_ms`` (minus the clock margin), newest
        first, for this producer's batch; bounded by LOOKBACK_MAX_BYTES. Not found: the
        end of the newest batch seen, below which no copy of it sits. With ``sequence``
        the search ends at the producer's newest batch when the sequence follows it, and
        refuses a stale epoch or a sequence out of order."""
        floor, read, top = since_ms - TRUST_MARGIN_MS, 0, None
        for item in self._descending(meta, ref):
            found = batch_from_item(item)
            top = found.end if top is None else top
            if found.chain.append_max < floor:
                break
            if _identity_of(item) == identity:
                return _duplicate(found, AppendResult(found.base, found.end - 1, -1, 0)), None
            if sequence is not None and sequence.settled_by(found):
                return None, top
            read += found.size + 200
            if read > LOOKBACK_MAX_BYTES:
                raise _outcome_unknown(meta, ref, f"first sent at {since_ms} ms")
        if sequence is not None:
            sequence.at_floor()
        return None, 0 if top is None else top

    def _search(self, meta: TopicMeta, ref: schema.PartitionRef,
                identity: tuple[object, ...], low: int, tail: Tail) -> AppendResult | None:
        """Our batch among the batches in ``[low, tail end)``, if another attempt of it
        landed there since this request last looked (ascending Query pages; the newest
        batch of a fresh tail read is already in hand). Bounded by LOOKBACK_MAX_BYTES."""
        high, last = tail.chain.next_offset, tail.last
        if high <= low:
            return None
        if last is not None and last.base >= low:
            if _identity_of(last.item) == identity:
                return _duplicate(last, AppendResult(last.base, last.end - 1, -1, 0))
            high = last.base
        read = 0
        for page in itertools.chain(LOOKBACK_PAGES, itertools.repeat(LOOKBACK_PAGES[-1])):
            if high <= low:
                return None
            items = self.query(meta, ref, schema.batch_sk(low), schema.batch_sk(high - 1), page)
            for item in items:
                found = batch_from_item(item)
                if _identity_of(item) == identity:
                    return _duplicate(found, AppendResult(found.base, found.end - 1, -1, 0))
                read += found.size + 200
                low = found.base + 1
            if len(items) < page:
                return None
            if read > LOOKBACK_MAX_BYTES:
                raise _outcome_unknown(meta, ref, "while this request was writing it")
        return None

    def _descending(self, meta: TopicMeta, ref: schema.PartitionRef
                    ) -> Iterator[dict[str, Any]]:
        """Batch items newest first, in pages of growing size."""
        high = schema.MAX_OFFSET
        for page in itertools.chain(LOOKBACK_PAGES, itertools.repeat(LOOKBACK_PAGES[-1])):
            found = self.query(meta, ref, schema.batch_sk(0), schema.batch_sk(high), page,
                               forward=False)
            yield from found
            if len(found) < page or batch_from_item(found[-1]).base == 0:
                return
            high = batch_from_item(found[-1]).base - 1

    # ---- the tail -------------------------------------------------------------------------

    def meta(self, topic: str, partition: int, fresh: bool = False) -> TopicMeta:
        """The topic's metadata, checked to have ``partition`` (refreshed if it grew)."""
        meta = self._topics.get(topic, fresh=fresh)
        if not fresh and not 0 <= partition < meta.partitions:
            meta = self._topics.get(topic, fresh=True)
        meta.check_partition(partition)
        return meta

    def tail(self, meta: TopicMeta, ref: schema.PartitionRef, fresh: bool = False) -> Tail:
        """The partition's end, trusted now: from our cache until its deadline, else read."""
        if not fresh:
            with self._lock:
                cached = self._cache.get(ref.pk)
            if cached is not None and self._now_ms() < cached.trusted_until_ms:
                return cached
        tail = self.read_tail(meta, ref)
        trusted = self._trust(meta, ref, tail)
        with self._lock:
            self._cache[ref.pk] = trusted
        return trusted

    def read_tail(self, meta: TopicMeta, ref: schema.PartitionRef) -> Tail:
        """One strongly consistent Query: the partition item and the newest batch."""
        try:
            state, last = self._query_tail(meta, ref)
        except _Gone:
            raise Moved(self.moved(meta, ref.partition)) from None
        if last is not None and last.sealed:
            raise Moved(self.moved(meta, ref.partition))
        chain = state.archived_chain
        if last is not None and last.end >= chain.next_offset:
            chain = last.chain
        return Tail(state, chain, 0, last)

    def _query_tail(self, meta: TopicMeta, ref: schema.PartitionRef
                    ) -> tuple[PartitionState, StoredBatch | None]:
        with translated(f"read '{meta.name}' partition {ref.partition}"):
            found = self._ddb.query(
                TableName=self._table, ConsistentRead=True, ScanIndexForward=False, Limit=2,
                KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi",
                ExpressionAttributeNames={"#pk": schema.PK, "#sk": schema.SK},
                ExpressionAttributeValues={":pk": {"S": ref.pk},
                                           ":lo": {"S": schema.batch_sk(0)},
                                           ":hi": {"S": schema.STATE_SK}}).get("Items", [])
        if not found or found[0][schema.SK]["S"] != schema.STATE_SK:
            raise _Gone(ref.pk)
        last = batch_from_item(found[1]) if len(found) > 1 else None
        return state_from_item(found[0]), last

    def _trust(self, meta: TopicMeta, ref: schema.PartitionRef, tail: Tail) -> Tail:
        """Vouch for a tail just read, or refuse: see the module docstring."""
        now = self._now_ms()
        until = now + int(CACHE_SECONDS * 1000)
        last = tail.last
        if last is not None and last.chain.expiry == NEVER:
            return Tail(tail.state, tail.chain, until, last)
        if last is not None and last.chain.expiry * 1000 - TRUST_MARGIN_MS > now:
            return Tail(tail.state, tail.chain, min(until, last.chain.expiry * 1000
                                                    - TRUST_MARGIN_MS), last)
        if tail.state.safe_until - TRUST_MARGIN_MS > now:
            return Tail(tail.state, tail.chain, min(until, tail.state.safe_until
                                                    - TRUST_MARGIN_MS), last)
        raise TailUnverified(
            f"'{meta.name}' partition {ref.partition}: its newest batches may have expired "
            "from DynamoDB before they were archived (the archiver has not vouched for the "
            "tail since); appends are refused until an archiver pass runs.")

    def _forget(self, ref: schema.PartitionRef) -> None:
        with self._lock:
            self._cache.pop(ref.pk, None)

    def forget_partition(self, ref: schema.PartitionRef) -> None:
        """Drop the cached tail (the archiver or a test changed the partition item)."""
        self._forget(ref)

    # ---- reads for others -----------------------------------------------------------------

    def snapshot(self, topic: str, partition: int) -> tuple[TopicMeta, Tail]:
        """The current incarnation's partition item and tail (one Query; not vouched for:
        what readers and the archiver need)."""
        meta = self.meta(topic, partition)
        try:
            return meta, self.read_tail(meta, meta.ref(partition))
        except Moved as moved:
            return moved.meta, self.read_tail(moved.meta, moved.meta.ref(partition))

    def state(self, meta: TopicMeta, ref: schema.PartitionRef) -> PartitionState:
        """The partition item, strongly consistent (Moved if the incarnation is gone)."""
        with translated(f"read '{meta.name}' partition {ref.partition}"):
            item = self._ddb.get_item(TableName=self._table, Key=ref.state_key,
                                      ConsistentRead=True).get("Item")
        if item is None:
            raise Moved(self.moved(meta))
        return state_from_item(item)

    def query(self, meta: TopicMeta, ref: schema.PartitionRef, low: str, high: str,
              limit: int, forward: bool = True) -> list[dict[str, Any]]:
        """One strongly consistent Query page of the partition's items in [low, high]."""
        with translated(f"read '{meta.name}' partition {ref.partition}"):
            page = self._ddb.query(
                TableName=self._table, ConsistentRead=True, Limit=limit,
                ScanIndexForward=forward,
                KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi",
                ExpressionAttributeNames={"#pk": schema.PK, "#sk": schema.SK},
                ExpressionAttributeValues={":pk": {"S": ref.pk}, ":lo": {"S": low},
                                           ":hi": {"S": high}})
        found: list[dict[str, Any]] = page.get("Items", [])
        return found

    def holding(self, meta: TopicMeta, ref: schema.PartitionRef, offset: int
                ) -> StoredBatch | None:
        """The batch with the greatest base offset at or below ``offset`` (a descending
        lookup: one item read), or None."""
        found = self.query(meta, ref, schema.batch_sk(0), schema.batch_sk(offset), 1,
                           forward=False)
        return batch_from_item(found[0]) if found else None

    def batch_bytes(self, found: StoredBatch) -> bytes:
        """A batch item's RecordBatch, as fetched (from the item or its S3 blob)."""
        if schema.A_DATA in found.item:
            return bytes(found.item[schema.A_DATA]["B"])
        return with_base_offset(self._blobs.get(found.item[schema.A_BLOB]["S"]), found.base)

    # ---- sealing a deleted incarnation ----------------------------------------------------

    def seal(self, meta: TopicMeta, partition: int) -> int:
        """Put a seal at the tail of a partition of a deleted topic; returns its key.

        Every writer holding an older view targets a key at or below the seal, all taken,
        and is told the topic is gone; the seal is written whatever the tail's trust.
        """
        ref = meta.ref(partition)
        for _ in range(MAX_APPEND_ATTEMPTS):
            try:
                tail = self.read_tail(meta, ref)
            except (Moved, TopicNotFound, AppendConflict):
                return -1  # already sealed (or purged)
            key = tail.chain.next_offset
            item = {**ref.batch_key(key), schema.SEAL: {"BOOL": True}}
            try:
                with translated(f"seal '{meta.name}' partition {partition}"):
                    self._ddb.put_item(TableName=self._table, Item=item,
                                       ConditionExpression="attribute_not_exists(#sk)",
                                       ExpressionAttributeNames={"#sk": schema.SK})
            except ClientError as e:
                if error_code(e) != "ConditionalCheckFailedException":
                    raise
                continue
            self._forget(ref)
            return key
        raise AppendConflict(f"Could not seal '{meta.name}' partition {partition}; retry.")


def _outcome_unknown(meta: TopicMeta, ref: schema.PartitionRef, when: str
                     ) -> AppendOutcomeUnknown:
    return AppendOutcomeUnknown(
        f"Cannot tell whether an earlier attempt of this batch to '{meta.name}' partition "
        f"{ref.partition} ({when}) was written: more than {LOOKBACK_MAX_BYTES} bytes were "
        "appended since. Nothing was written now; check the partition before producing it "
        "again.")


def _expiry(previous: int, append_max: int, config: Mapping[str, str]) -> int:
    """The batch's TTL (epoch seconds): never below the previous batch's, so batches
    expire in log order; NEVER once local.retention.ms is -1 or a batch never expires."""
    retention = config_int(config, "local.retention.ms")
    if retention < 0 or previous == NEVER:
        return NEVER
    return max(previous, (append_max + retention) // 1000)


def _batch_item(ref: schema.PartitionRef, base: int, header: BatchHeader, batch: bytes,
                blob: str | None, chain: Chain) -> dict[str, Any]:
    item: dict[str, Any] = {
        **ref.batch_key(base),
        schema.A_COUNT: {"N": str(header.record_count)},
        schema.A_SIZE: {"N": str(header.size)},
        schema.A_APPEND_MAX: {"N": str(chain.append_max)},
        schema.A_TS_MAX: {"N": str(chain.ts_max)},
        schema.A_BYTES: {"N": str(chain.bytes)},
    }
    if chain.expiry != NEVER:
        item[schema.TTL] = {"N": str(chain.expiry)}
    if header.idempotent:
        item[schema.A_PRODUCER] = {"N": str(header.producer_id)}
        item[schema.A_EPOCH] = {"N": str(header.producer_epoch)}
        item[schema.A_SEQUENCE] = {"N": str(header.base_sequence)}
    if blob is None:
        item[schema.A_DATA] = {"B": with_base_offset(batch, base)}
    else:
        item[schema.A_BLOB] = {"S": blob}
    return item


def _identity(header: BatchHeader, batch: bytes) -> tuple[object, ...]:
    """What makes two attempts the same batch: producer id, epoch and base sequence (and
    count); without idempotence, the records' bytes (a checksum of everything after the
    header, which LogAppendTime re-stamping does not change), their count and size."""
    if header.idempotent:
        return ("p", header.producer_id, header.producer_epoch, header.base_sequence,
                header.record_count)
    return _records_identity(batch)


def _records_identity(batch: bytes) -> tuple[object, ...]:
    (count,) = struct.unpack_from(">i", batch, RECORD_COUNT_OFFSET)
    return ("b", len(batch), count, zlib.crc32(memoryview(batch)[HEADER_SIZE:]))


def _identity_of(item: Mapping[str, Any]) -> tuple[object, ...] | None:
    """The identity of a stored batch item as its writer saw it (None for a seal)."""
    if schema.SEAL in item or schema.A_COUNT not in item:
        return None
    if schema.A_PRODUCER in item:
        return ("p", int(item[schema.A_PRODUCER]["N"]), int(item[schema.A_EPOCH]["N"]),
                int(item[schema.A_SEQUENCE]["N"]), int(item[schema.A_COUNT]["N"]))
    if schema.A_DATA in item:
        return _records_identity(bytes(item[schema.A_DATA]["B"]))
    return ("o", item[schema.A_BLOB]["S"])


def _identity_of_bytes(item: Mapping[str, Any]) -> tuple[object, ...] | None:
    """An inline item's records identity (what a non-idempotent retry remembers)."""
    if schema.A_DATA in item:
        return _records_identity(bytes(item[schema.A_DATA]["B"]))
    return None


class _SequenceCheck:
    """Kafka's producer-state rule, applied to a producer's batches newest first (those a
    look-back meets that are not the batch itself)."""

    def __init__(self, topic: str, partition: int, header: BatchHeader) -> None:
        self.topic, self.partition, self.header = topic, partition, header
        self.expected: int | None = None
        """The sequence after the producer's newest batch, once it was met."""
        self.older = 0

    def settled_by(self, found: StoredBatch) -> bool:
        """True when ``found`` shows the batch is new; raises when it shows the batch may
        not be appended; False to search on (an older batch it may repeat)."""
        h = self.header
        if found.producer is None or found.producer[0] != h.producer_id:
            return False
        _, epoch, base_sequence = found.producer
        if self.expected is None:
            if epoch > h.producer_epoch:
                raise ProducerFenced(self.topic, self.partition, h.producer_id,
                                     h.producer_epoch, epoch)
            self.expected = 0 if epoch < h.producer_epoch else \
                increment_sequence(base_sequence, found.count)
            if h.base_sequence == self.expected:
                return True
            if epoch < h.producer_epoch:
                self._refuse()
        self.older += 1
        if self.older >= SEQUENCE_MEMORY or epoch != h.producer_epoch:
            self._refuse()  # not among the producer's last batches: a gap
        return False

    def at_floor(self) -> None:
        """The window ended: a producer met in it holds the batch to its sequence."""
        if self.expected is not None:
            self._refuse()

    def _refuse(self) -> None:
        h = self.header
        raise OutOfOrderSequence(self.topic, self.partition, h.producer_id, h.base_sequence,
                                 self.expected if self.expected is not None else 0)


def _duplicate(found: StoredBatch, result: AppendResult) -> AppendResult:
    """The answer for a batch that was already written at ``found``."""
    log_append = result.log_append_time >= 0 or _log_append_time(found)
    return AppendResult(found.base, found.end - 1,
                        found.chain.append_max if log_append else -1,
                        result.log_start_offset, duplicate=True)


def _log_append_time(found: StoredBatch) -> bool:
    if schema.A_DATA not in found.item:
        return False
    return bool(parse_header(bytes(found.item[schema.A_DATA]["B"])).timestamp_type)
