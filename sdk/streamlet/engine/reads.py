"""Reads across both tiers: archived S3 segments below the archive watermark, batch items
in DynamoDB from there to the high watermark.

A fetch reads the partition head first (strongly consistent) and routes by its archive
watermark, so it never depends on hot items that were archived (they may be expiring).
If something it was pointed at vanished meanwhile (the archiver deleted a blob it had
archived, retention trimmed a segment), the fetch starts over once from a fresh head:
the offset is then either in the other tier or below the log start (OffsetOutOfRange).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .._values import is_int
from ..codec import batch_span, decode_batch, parse_header
from ..errors import DataUnavailable, OffsetOutOfRange
from ..records import DEFAULT_FETCH_BYTES, FetchResult, TimestampType
from . import schema
from .aws import ObjectGone
from .log import Head, PartitionLog, last_offset
from .manifest import Manifest
from .segments import INDEX_INTERVAL, Segment, SegmentStore
from .topics import TopicMeta

QUERY_PAGE = 50
"""Batch items per Query at first; DynamoDB also stops a page at 1 MB."""
T = TypeVar("T")
Span = tuple[int, int, int]
"""(base offset, last offset, running max timestamp) of a batch or a segment."""


class LogReader:
    """Fetches and time lookups over the archived and the hot tier."""

    def __init__(self, log: PartitionLog, manifest: Manifest, segments: SegmentStore) -> None:
        self._log = log
        self._manifest = manifest
        self._segments = segments

    def fetch(self, topic: str, partition: int, offset: int,
              max_bytes: int = DEFAULT_FETCH_BYTES, max_records: int | None = None
              ) -> FetchResult:
        """Batches from the one containing ``offset`` up to the high watermark."""
        def attempt() -> FetchResult:
            meta, head = self._log.head(topic, partition)
            check_offset(topic, partition, offset, head)
            batches = self._collect(meta, partition, offset, head, max_bytes, max_records)
            return FetchResult(batches, head.next_offset, head.log_start)

        return _twice(attempt, f"'{topic}' partition {partition}: offset {offset}")

    def _collect(self, meta: TopicMeta, partition: int, offset: int, head: Head,
                 max_bytes: int, max_records: int | None) -> list[bytes]:
        """Whole batches, at least one, up to about ``max_bytes``.

        It stops when another batch of the last one's size would pass ``max_bytes``
        rather than reading the next one to find out: a DynamoDB Query page or a ranged
        GET past that point would be paid for and mostly thrown away.
        """
        batches: list[bytes] = []
        size = records = 0
        for data, base, last in self._batches(meta, partition, offset, head, max_bytes):
            batches.append(data)
            size += len(data)
            records += last - max(offset, base) + 1
            if size + len(data) > max_bytes or (max_records is not None
                                                and records >= max_records):
                break  # the next batch would likely not fit: do not read it (and pay)
        return batches

    def _batches(self, meta: TopicMeta, partition: int, offset: int, head: Head,
                 max_bytes: int) -> Iterator[tuple[bytes, int, int]]:
        """(batch, base, last) from ``offset`` on, read lazily: the caller stops when it
        has enough, so each read is sized to what is left of ``max_bytes``."""
        at, yielded, count = offset, 0, 0
        segment: Segment | None = None
        position: int | None = None
        while at < min(head.archived, head.next_offset):
            if segment is None or at > segment.last_offset:
                segment, position = self._segment_at(meta, partition, at), None
            batches, position = self._segments.read(segment, at, max(max_bytes - yielded, 1),
                                                    position)
            for data in batches:
                base, last = batch_span(data)
                yield data, base, last
                at, yielded, count = last + 1, yielded + len(data), count + 1
        while at < head.next_offset:
            limit = QUERY_PAGE
            if count:  # as many items as the average batch says still fit
                limit = max(1, min(QUERY_PAGE, (max_bytes - yielded) * count // yielded))
            found = 0
            for item in self._log.query_page(meta, partition, at, head.next_offset - 1, limit):
                base = int(item[schema.A_BASE]["N"])
                if base > at:
                    raise ObjectGone(f"no batch holds offsets {at}..{base - 1}")
                data = self._log.batch_bytes(item)
                yield data, base, last_offset(item)
                at, yielded, count, found = (last_offset(item) + 1, yielded + len(data),
                                             count + 1, found + 1)
            if not found:
                raise ObjectGone(f"no batch holds offsets {at}..{head.next_offset - 1}")

    def _segment_at(self, meta: TopicMeta, partition: int, offset: int) -> Segment:
        segment = self._manifest.containing(meta.topic_id, partition, offset,
                                            f"read '{meta.name}' partition {partition}")
        if segment is None:
            raise ObjectGone(f"no archived segment holds offset {offset}")
        return segment

    # ---- time lookups -------------------------------------------------------------------

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp`` (Kafka's offsetsForTimes).

        Timestamps are searched by the running maximum each batch and segment records,
        which never decreases along the log, in both tiers.
        """
        return _twice(lambda: self._offset_for_time(topic, partition, timestamp),
                      f"'{topic}' partition {partition}: timestamp {timestamp}")

    def _offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        meta, head = self._log.head(topic, partition)
        if head.next_offset == head.log_start or head.max_timestamp < timestamp:
            return None
        archived_end = min(head.archived, head.next_offset)
        if head.log_start < archived_end:
            last = self._segment_at(meta, partition, archived_end - 1)
            if last.max_timestamp >= timestamp:
                def probe(at: int) -> Span:
                    found = self._segment_at(meta, partition, at)
                    return found.base_offset, found.last_offset, found.max_timestamp

                at = _search(head.log_start, archived_end - 1, timestamp, probe)
                found = self._time_in_segment(self._segment_at(meta, partition, at), timestamp)
                return max(found, head.log_start)

        def hot(at: int) -> dict[str, Any]:
            return next(iter(self._log.query(meta, partition, at, head.next_offset - 1, page=1)))

        at = _search(max(head.log_start, archived_end), head.next_offset - 1, timestamp,
                     lambda at: _span(hot(at)))
        return max(_first_at_or_after(self._log.batch_bytes(hot(at)), timestamp), head.log_start)

    def _time_in_segment(self, segment: Segment, timestamp: int) -> int:
        entries = self._segments.index(segment)
        before = [e for e in entries if e.max_timestamp < timestamp]
        at = before[-1].base_offset if before else segment.base_offset
        position: int | None = None
        while at <= segment.last_offset:
            batches, position = self._segments.read(segment, at, INDEX_INTERVAL, position)
            for data in batches:
                header = parse_header(data)
                if header.max_timestamp >= timestamp:
                    return _first_at_or_after(data, timestamp)
                at = header.base_offset + header.record_count
        raise ObjectGone(f"segment {segment.key} has no timestamp >= {timestamp}")


def _twice(read: Callable[[], T], what: str) -> T:
    """Run ``read``; if what it was pointed at vanished, once more from a fresh head."""
    try:
        return read()
    except ObjectGone:
        pass
    try:
        return read()
    except ObjectGone as gone:
        raise DataUnavailable(f"{what} cannot be read ({gone}).") from gone


def _span(item: dict[str, Any]) -> Span:
    return int(item[schema.A_BASE]["N"]), last_offset(item), int(item[schema.A_MAX_TS]["N"])


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


def _first_at_or_after(batch: bytes, timestamp: int) -> int:
    header = parse_header(batch)
    if header.timestamp_type == TimestampType.LOG_APPEND_TIME:
        return header.base_offset
    for record in decode_batch("", 0, batch):
        if record.timestamp >= timestamp:
            return record.offset
    return header.base_offset + header.record_count - 1


def check_offset(topic: str, partition: int, offset: int, head: Head) -> None:
    if not is_int(offset) \
            or not head.log_start <= offset <= head.next_offset:
        raise OffsetOutOfRange(topic, partition, offset if isinstance(offset, int) else -1,
                               head.log_start, head.next_offset)
