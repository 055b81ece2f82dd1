"""Reads across both tiers: archived S3 segments below the archive watermark, batch items
in DynamoDB from there to the tail.

A fetch is one strongly consistent Query forward from the reader's position: it returns
the batches from there on and, after the last one, the partition item (its sort key comes
after every batch key). A reader that is caught up gets only the partition item back:
about one read unit, however large the tail batch is. The partition item routes offsets
below the archive watermark to S3 and refuses offsets below the log start.

Batch items are keyed by their base offset, so a position inside a batch (after a seek,
or a commit part-way through a poll) is found with one descending lookup. A reader that
says its position ends a batch it read from this incarnation of the topic
(``boundary_of``, the topic id) is spared that lookup when nothing follows. If something
a fetch was pointed at vanished meanwhile (the archiver deleted a blob, retention trimmed
a segment, TTL removed an archived batch), it starts over once: the offset is then in
the other tier or below the log start.

Transactions (:mod:`.transactions`): a read_committed fetch (the default) returns a
transactional batch only once its transaction committed it, skips the batches of aborted
transactions (their offsets stay spent: the fetch moves past them), and stops before the
first batch of a transaction still open (Kafka's last stable offset), aborting it if it
outlived its timeout. Archived segments carry the aborted ranges in their manifest item.
read_uncommitted returns every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._values import is_int
from ..codec import batch_span, parse_header
from ..errors import DataUnavailable, InvalidRequest, OffsetOutOfRange
from ..records import DEFAULT_FETCH_BYTES, FetchResult
from ..validation import first_offset_at_or_after
from . import schema
from .aws import ObjectGone
from .log import (
    Moved,
    PartitionLog,
    PartitionState,
    StoredBatch,
    batch_from_item,
    is_batch,
    state_from_item,
)
from .manifest import Manifest
from .segments import INDEX_INTERVAL, Segment, SegmentStore
from .topics import TopicMeta
from .transactions import TransactionStore, Visibility

QUERY_PAGE = 50
"""Batch items per Query at first; DynamoDB also stops a page at 1 MB."""
T = TypeVar("T")
Span = tuple[int, int, int]
"""(base offset, last offset, running max timestamp) of a batch or a segment."""
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")


def check_isolation(level: str) -> bool:
    """True for read_committed (the default, as in most Kafka clients); InvalidRequest
    for anything but Kafka's two levels."""
    if level not in ISOLATION_LEVELS:
        raise InvalidRequest(f"isolation_level={level!r}: expected read_committed or "
                             "read_uncommitted.")
    return level == "read_committed"


@dataclass
class _Fetch:
    """One fetch's budget and what it has gathered."""

    offset: int
    max_bytes: int
    max_records: int | None
    batches: list[bytes] = field(default_factory=list)
    size: int = 0
    records: int = 0
    at: int = -1
    """The offset after the last batch gathered or skipped (where the next read starts)."""
    reached_end: bool = False
    open_at: int | None = None
    """The first offset of an open transaction's batch a read_committed fetch stopped at."""

    def __post_init__(self) -> None:
        self.at = self.offset

    def add(self, data: bytes) -> bool:
        """Keep ``data``; True when another batch of its size would pass ``max_bytes``
        (a Query page or ranged GET past that point would be paid for and mostly thrown
        away) or ``max_records`` are in."""
        base, last = batch_span(data)
        self.batches.append(data)
        self.size += len(data)
        self.records += last - max(self.offset, base) + 1
        self.at = last + 1
        return self.size + len(data) > self.max_bytes or (
            self.max_records is not None and self.records >= self.max_records)

    def skip(self, end: int, size: int) -> bool:
        """Pass over a batch of an aborted transaction (its bytes count toward the budget,
        so a fetch over a long aborted run stays bounded); True when the fetch is full."""
        self.at = end
        self.size += size
        return self.size + size > self.max_bytes


class LogReader:
    """Fetches, watermarks and time lookups over the archived and the hot tier."""

    def __init__(self, log: PartitionLog, manifest: Manifest, segments: SegmentStore,
                 txns: TransactionStore) -> None:
        self._log = log
        self._manifest = manifest
        self._segments = segments
        self._txns = txns
        self._archived: dict[str, int] = {}
        """The archive watermark last seen per partition (it only rises within an
        incarnation, and the key names the incarnation)."""

    # ---- fetch ----------------------------------------------------------------------------

    def fetch(self, topic: str, partition: int, offset: int,
              max_bytes: int = DEFAULT_FETCH_BYTES, max_records: int | None = None,
              boundary_of: str | None = None, isolation_level: str = "read_committed"
              ) -> FetchResult:
        """Batches from the one containing ``offset`` up to about ``max_bytes``; the
        result's ``high_watermark`` is where the next fetch starts (after the last batch
        returned or skipped).

        ``boundary_of``: ``offset`` ends a batch the caller read from the incarnation with
        this topic id (so a caught-up reader costs one small read).
        """
        committed = check_isolation(isolation_level)
        if not is_int(offset):
            raise OffsetOutOfRange(topic, partition, -1, *self.watermarks(topic, partition))

        def attempt() -> FetchResult:
            meta = self._log.meta(topic, partition)
            gathered = _Fetch(offset, max_bytes, max_records)
            try:
                return self._fetch(meta, meta.ref(partition), gathered, boundary_of, committed)
            except Moved as moved:
                return self._fetch(moved.meta, moved.meta.ref(partition),
                                   _Fetch(offset, max_bytes, max_records), boundary_of,
                                   committed)

        return _twice(attempt, f"'{topic}' partition {partition}: offset {offset}")

    def _fetch(self, meta: TopicMeta, ref: schema.PartitionRef, gathered: _Fetch,
               boundary_of: str | None, committed: bool) -> FetchResult:
        offset = gathered.offset
        hot: list[StoredBatch] = []
        complete = False
        if offset < self._archived.get(ref.pk, 0):
            # known archived: one GetItem of the partition item, not a Query that would
            # read (and pay for) the hot copies of batches the segments hold
            state = self._log.state(meta, ref)
        else:
            hot, paged, complete = self._page(meta, ref, offset)
            state = paged or self._log.state(meta, ref)
        self._archived[ref.pk] = state.archived
        if offset < state.log_start:
            raise self._out_of_range(meta, ref, offset, state)
        if offset < state.archived and self._from_segments(meta, ref, gathered, state,
                                                           committed):
            return self._result(meta, gathered, state)
        if gathered.at != offset:  # crossed into the hot tier: read it from there
            hot, _, complete = self._page(meta, ref, gathered.at)
        caught_up = not hot and boundary_of == meta.topic_id
        first = None if caught_up else self._start_at(meta, ref, gathered.at, hot, state)
        if first is None:
            gathered.reached_end = True
        else:
            self._from_hot(meta, ref, gathered, first, complete, committed)
        return self._result(meta, gathered, state)

    def _page(self, meta: TopicMeta, ref: schema.PartitionRef, offset: int
              ) -> tuple[list[StoredBatch], PartitionState | None, bool]:
        """One forward Query from ``offset`` to the partition item: the batches, the
        partition state if the page reached it (then no batch follows), and whether it did."""
        found = self._log.query(meta, ref, schema.batch_sk(offset), schema.STATE_SK, QUERY_PAGE)
        state = state_from_item(found.pop()) if found and not is_batch(found[-1]) else None
        return self._batches(meta, found), state, state is not None

    def _result(self, meta: TopicMeta, gathered: _Fetch, state: PartitionState) -> FetchResult:
        """The batches; ``high_watermark`` is the end of the last batch this fetch knows of
        (the log may go on: ``watermarks`` reads the tail)."""
        return FetchResult(gathered.batches, gathered.at, state.log_start, meta.topic_id,
                           gathered.reached_end, gathered.open_at)

    def _batches(self, meta: TopicMeta, found: list[dict[str, Any]]) -> list[StoredBatch]:
        batches = [batch_from_item(i) for i in found if is_batch(i)]
        if any(b.sealed for b in batches):  # a deleted incarnation
            raise Moved(self._log.moved(meta))
        return batches

    def _start_at(self, meta: TopicMeta, ref: schema.PartitionRef, offset: int,
                  hot: list[StoredBatch], state: PartitionState) -> list[StoredBatch] | None:
        """The batches to read from (the first holds ``offset``), or None when caught up."""
        if hot and hot[0].base == offset:
            return hot
        holder = self._log.holding(meta, ref, offset)
        if holder is not None and holder.sealed:
            raise Moved(self._log.moved(meta))
        if holder is not None and holder.base <= offset < holder.end:
            return [holder, *hot]
        end = holder.end if holder is not None else state.archived_chain.next_offset
        if hot:  # nothing holds offsets end..first base - 1: expired before archiving?
            raise ObjectGone(f"no batch holds offsets {end}..{hot[0].base - 1}")
        if end == offset:
            return None
        raise OffsetOutOfRange(meta.name, ref.partition, offset, state.log_start, end)

    def _from_hot(self, meta: TopicMeta, ref: schema.PartitionRef, gathered: _Fetch,
                  first: list[StoredBatch], complete: bool, committed: bool) -> None:
        """Whole batches from ``first`` on, then further pages sized to what is left; a
        read_committed fetch stops before an open transaction's batch."""
        expected = first[0].base
        for found in self._pages(meta, ref, gathered, first, complete):
            if found.base > expected:
                raise ObjectGone(f"no batch holds offsets {expected}..{found.base - 1}")
            expected = found.end
            seen = Visibility.VISIBLE
            if committed and found.txn is not None:
                seen = self._txns.visibility(found.txn, meta.topic_id, ref.partition,
                                             found.base)
            if seen is Visibility.WAIT:
                gathered.open_at = found.base
                return
            if seen is Visibility.SKIP:
                if gathered.skip(found.end, found.size):
                    return
            elif gathered.add(self._log.batch_bytes(found)):
                return
        gathered.reached_end = True

    def _pages(self, meta: TopicMeta, ref: schema.PartitionRef, gathered: _Fetch,
               first: list[StoredBatch], complete: bool) -> Iterator[StoredBatch]:
        yield from first
        at, count, read = first[-1].end, len(first), sum(b.size for b in first)
        while not complete:
            left = max(gathered.max_bytes - gathered.size, 1)
            limit = max(1, min(QUERY_PAGE, left * count // max(read, 1)))
            page = self._batches(meta, self._log.query(
                meta, ref, schema.batch_sk(at), schema.batch_sk(schema.MAX_OFFSET), limit))
            yield from page
            if len(page) < limit:
                return
            at, count, read = page[-1].end, count + len(page), read + sum(b.size for b in page)

    # ---- the archived tier ----------------------------------------------------------------

    def _from_segments(self, meta: TopicMeta, ref: schema.PartitionRef, gathered: _Fetch,
                       state: PartitionState, committed: bool) -> bool:
        """Batches below the archive watermark, from S3 (a read_committed fetch skips the
        ranges of aborted transactions); True when the fetch is full."""
        end = min(state.archived, state.archived_chain.next_offset)
        segment: Segment | None = None
        position: int | None = None
        while gathered.at < end:
            at = gathered.at
            if segment is None or at > segment.last_offset:
                segment, position = self._segment_at(meta, ref, at), None
            batches, position = self._segments.read(
                segment, at, max(gathered.max_bytes - gathered.size, 1), position)
            for data in batches:
                base, last = batch_span(data)
                if committed and segment.skips(base):
                    if gathered.skip(last + 1, len(data)):
                        return True
                elif gathered.add(data):
                    return True
        return False

    def _segment_at(self, meta: TopicMeta, ref: schema.PartitionRef, offset: int) -> Segment:
        segment = self._manifest.containing(ref, offset, f"read '{meta.name}' partition "
                                                         f"{ref.partition}")
        if segment is None:
            raise ObjectGone(f"no archived segment holds offset {offset}")
        return segment

    # ---- watermarks -----------------------------------------------------------------------

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start, high watermark): one Query of the partition item and the tail."""
        _, tail = self._log.snapshot(topic, partition)
        return tail.state.log_start, tail.chain.next_offset

    def _out_of_range(self, meta: TopicMeta, ref: schema.PartitionRef, offset: int,
                      state: PartitionState) -> OffsetOutOfRange:
        tail = self._log.read_tail(meta, ref)
        return OffsetOutOfRange(meta.name, ref.partition, offset, state.log_start,
                                tail.chain.next_offset)

    # ---- time lookups ---------------------------------------------------------------------

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp`` (Kafka's offsetsForTimes).

        Timestamps are searched by the running maximum each batch and segment records,
        which never decreases along the log, in both tiers.
        """
        return _twice(lambda: self._offset_for_time(topic, partition, timestamp),
                      f"'{topic}' partition {partition}: timestamp {timestamp}")

    def _offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        meta, tail = self._log.snapshot(topic, partition)
        ref, state, hw = meta.ref(partition), tail.state, tail.chain.next_offset
        if hw <= state.log_start or tail.chain.ts_max < timestamp:
            return None
        archived_end = min(state.archived, hw)
        if state.log_start < archived_end and state.archived_ts_max >= timestamp:
            found = self._time_in_segments(meta, ref, state.log_start, archived_end, timestamp)
        else:
            found = self._time_in_hot(meta, ref, max(state.log_start, archived_end), hw,
                                      timestamp)
        return max(found, state.log_start)

    def _time_in_segments(self, meta: TopicMeta, ref: schema.PartitionRef, low: int,
                          archived_end: int, timestamp: int) -> int:
        def probe(at: int) -> Span:
            found = self._segment_at(meta, ref, at)
            return found.base_offset, found.last_offset, found.max_timestamp

        at = _search(low, archived_end - 1, timestamp, probe)
        return self._time_in_segment(meta, ref, self._segment_at(meta, ref, at), timestamp)

    def _time_in_hot(self, meta: TopicMeta, ref: schema.PartitionRef, low: int, hw: int,
                     timestamp: int) -> int:
        def holding(at: int) -> StoredBatch:
            found = self._log.holding(meta, ref, at)
            if found is None or found.sealed or found.end <= at:
                raise ObjectGone(f"no batch holds offset {at}")
            return found

        def probe(at: int) -> Span:
            found = holding(at)
            return found.base, found.end - 1, found.chain.ts_max

        at = _search(low, hw - 1, timestamp, probe)
        return _first_at_or_after(meta, ref.partition, self._log.batch_bytes(holding(at)),
                                  timestamp)

    def _time_in_segment(self, meta: TopicMeta, ref: schema.PartitionRef, segment: Segment,
                         timestamp: int) -> int:
        entries = self._segments.index(segment)
        before = [e for e in entries if e.max_timestamp < timestamp]
        at = before[-1].base_offset if before else segment.base_offset
        position: int | None = None
        while at <= segment.last_offset:
            batches, position = self._segments.read(segment, at, INDEX_INTERVAL, position)
            for data in batches:
                header = parse_header(data)
                if header.max_timestamp >= timestamp:
                    return _first_at_or_after(meta, ref.partition, data, timestamp)
                at = header.base_offset + header.record_count
        raise ObjectGone(f"segment {segment.key} has no timestamp >= {timestamp}")


def _twice(read: Callable[[], T], what: str) -> T:
    """Run ``read``; if what it was pointed at vanished, once more from a fresh start."""
    try:
        return read()
    except ObjectGone:
        pass
    try:
        return read()
    except ObjectGone as gone:
        raise DataUnavailable(f"{what} cannot be read ({gone}).") from gone


def _search(lo: int, hi: int, timestamp: int, probe: Callable[[int], Span]) -> int:
    """An offset of the first unit (batch or segment) whose running max is >= timestamp."""
    while lo < hi:
        mid = (lo + hi) // 2
        base, last, max_ts = probe(mid)
        if max_ts >= timestamp:
            hi = min(mid, base)
        else:
            lo = last + 1
    return lo


def _first_at_or_after(meta: TopicMeta, partition: int, batch: bytes, timestamp: int) -> int:
    """In one batch (whose running max reached ``timestamp``), decoded in bounded memory."""
    found = first_offset_at_or_after(meta.name, partition, batch, timestamp)
    if found is not None:
        return found
    header = parse_header(batch)
    return header.base_offset + header.record_count - 1
