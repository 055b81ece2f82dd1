"""Archived segments: immutable S3 objects holding a partition's batches back to back.

Layout of one object (all integers big-endian)::

    batch bytes        the RecordBatch v2 bytes exactly as fetched (base offsets patched)
    index              one 24-byte entry (base_offset, position, running max timestamp)
                       for the first batch and then every INDEX_INTERVAL bytes
    trailer            magic, version, base/last offset, data size, entry count, the
                       running max timestamp of the last batch, the smallest timestamp

The object describes itself, so a re-run that finds the key taken (``If-None-Match: *``
answered 412: an earlier run crashed after its PUT) learns the segment from the trailer
and records it instead of writing another. Readers fetch the index once (cached: the
object never changes) and then only the byte ranges they need.
"""

from __future__ import annotations

import bisect
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ..codec import batch_span, parse_header
from ..records import SegmentInfo
from . import schema
from .aws import error_code, gone_if_missing, translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAGIC = b"STRMSEG1"
VERSION = 1
INDEX_INTERVAL = 64 * 1024
_ENTRY = struct.Struct(">qqq")
_TRAILER = struct.Struct(">8sHqqqIqq")
TRAILER_SIZE = _TRAILER.size
_BATCH_LENGTH = struct.Struct(">qi")  # base offset, then the length of the rest
MIN_READ = 64 * 1024
INDEX_CACHE_SEGMENTS = 256
MAX_END = 2**63


class SegmentCorrupt(ValueError):
    """An object under segments/ does not have a valid trailer or index."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    base_offset: int
    position: int
    max_timestamp: int


@dataclass(frozen=True, slots=True)
class Segment(SegmentInfo):
    """One archived segment as the manifest records it (with its index's entry count)."""

    entries: int = 0
    skipped: tuple[tuple[int, int], ...] = ()
    """[base, end) ranges of batches read_committed readers skip (aborted transactions),
    in order; recorded in the manifest, not in the object (which holds the batches as
    they were appended)."""

    def skips(self, base: int) -> bool:
        """Whether the batch at ``base`` lies in a skipped range."""
        at = bisect.bisect_right(self.skipped, (base, MAX_END)) - 1
        return at >= 0 and self.skipped[at][0] <= base < self.skipped[at][1]

    @property
    def info(self) -> SegmentInfo:
        """What reports show (the public view, without index details)."""
        return SegmentInfo(self.key, self.base_offset, self.last_offset, self.size,
                           self.max_timestamp, self.min_timestamp)

    @property
    def object_size(self) -> int:
        return self.size + self.entries * _ENTRY.size + TRAILER_SIZE


@dataclass(frozen=True, slots=True)
class ArchivedBatch:
    """A batch going into a segment, with the partition's running max timestamp."""

    data: bytes
    base_offset: int
    last_offset: int
    max_timestamp: int


def build(key: str, batches: Iterable[ArchivedBatch]) -> tuple[bytes, Segment]:
    """The object bytes for ``batches`` (contiguous, in order) and its manifest record."""
    parts: list[bytes] = []
    index: list[bytes] = []
    position = next_index = 0
    first = last = max_ts = min_ts = -1
    for batch in batches:
        header = parse_header(batch.data)  # and its CRC: never archive a damaged batch
        earliest = (header.max_timestamp if header.timestamp_type else
                    header.first_timestamp)
        min_ts = earliest if min_ts < 0 else min(min_ts, earliest)
        if first < 0:
            first = batch.base_offset
        elif batch.base_offset != last + 1:
            raise ValueError(f"segment {key}: batch at {batch.base_offset} after {last}")
        if position >= next_index:
            index.append(_ENTRY.pack(batch.base_offset, position, batch.max_timestamp))
            next_index = position + INDEX_INTERVAL
        parts.append(batch.data)
        position += len(batch.data)
        last, max_ts = batch.last_offset, batch.max_timestamp
    if first < 0:
        raise ValueError(f"segment {key}: no batches")
    trailer = _TRAILER.pack(MAGIC, VERSION, first, last, position, len(index), max_ts, min_ts)
    segment = Segment(key=key, base_offset=first, last_offset=last, size=position,
                      max_timestamp=max_ts, min_timestamp=min_ts, entries=len(index))
    return b"".join(parts) + b"".join(index) + trailer, segment


def parse_trailer(key: str, data: bytes) -> Segment:
    if len(data) != TRAILER_SIZE:
        raise SegmentCorrupt(f"segment {key}: trailer of {len(data)} bytes")
    magic, version, first, last, size, entries, max_ts, min_ts = _TRAILER.unpack(data)
    if magic != MAGIC or version != VERSION:
        raise SegmentCorrupt(f"segment {key}: not a Streamlet segment (magic {magic!r})")
    return Segment(key=key, base_offset=first, last_offset=last, size=size,
                   max_timestamp=max_ts, min_timestamp=min_ts, entries=entries)


def parse_index(segment: Segment, data: bytes) -> list[IndexEntry]:
    if len(data) != segment.entries * _ENTRY.size:
        raise SegmentCorrupt(f"segment {segment.key}: index of {len(data)} bytes")
    return [IndexEntry(*_ENTRY.unpack_from(data, i * _ENTRY.size))
            for i in range(segment.entries)]


def split_batches(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(relative position, batch bytes) for every complete batch at the start of ``data``."""
    position = 0
    while position + _BATCH_LENGTH.size <= len(data):
        _, rest = _BATCH_LENGTH.unpack_from(data, position)
        end = position + _BATCH_LENGTH.size + rest
        if end > len(data):
            return
        yield position, data[position:end]
        position = end


def batch_length(prefix: bytes) -> int:
    """A batch's total length from its first 12 bytes."""
    _, rest = _BATCH_LENGTH.unpack_from(prefix, 0)
    return int(_BATCH_LENGTH.size + rest)


class SegmentStore:
    """Writes, reads and deletes segment objects; caches their (immutable) indexes."""

    def __init__(self, s3: S3Client, names: schema.Names) -> None:
        self._s3 = s3
        self._bucket = names.bucket
        self._indexes: OrderedDict[str, list[IndexEntry]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, body: bytes, segment: Segment) -> Segment:
        """Create the object; if the key is taken, the segment already there wins."""
        try:
            with translated(f"write segment {segment.key}"):
                self._s3.put_object(Bucket=self._bucket, Key=segment.key, Body=body,
                                    IfNoneMatch="*")
        except ClientError as e:
            if error_code(e) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            return self.describe(segment.key)
        return segment

    def describe(self, key: str) -> Segment:
        """The segment an existing object holds, from its trailer."""
        return parse_trailer(key, self._range(key, f"bytes=-{TRAILER_SIZE}"))

    def index(self, segment: Segment) -> list[IndexEntry]:
        with self._lock:
            hit = self._indexes.get(segment.key)
            if hit is not None:
                self._indexes.move_to_end(segment.key)
                return hit
        length = segment.entries * _ENTRY.size
        entries = parse_index(segment, self._range(
            segment.key, f"bytes={segment.size}-{segment.size + length - 1}"))
        with self._lock:
            self._indexes[segment.key] = entries
            while len(self._indexes) > INDEX_CACHE_SEGMENTS:
                self._indexes.popitem(last=False)
        return entries

    def read(self, segment: Segment, offset: int, max_bytes: int,
             position: int | None = None) -> tuple[list[bytes], int]:
        """Whole batches from the one containing ``offset``, about ``max_bytes`` of them
        (at least one), and the position after the last: one ranged GET, starting at
        ``position`` when the caller knows where that batch starts (it read the one
        before), else at the nearest index entry."""
        if position is None:
            entries = self.index(segment)
            at = bisect.bisect_right([e.base_offset for e in entries], offset) - 1
            start, length = entries[max(at, 0)].position, max(max_bytes, MIN_READ)
        else:
            start, length = position, max(max_bytes, 1)
        data = self._range(segment.key,
                           f"bytes={start}-{min(segment.size, start + length) - 1}")
        out: list[bytes] = []
        size, end = 0, start
        for relative, batch in split_batches(data):
            if _last_offset(batch) < offset:
                continue
            out.append(batch)
            size, end = size + len(batch), start + relative + len(batch)
            if size >= max_bytes:
                break
        if out:
            return out, end
        position = start + _tail(data)  # the batch holding ``offset`` runs past the read
        while True:
            batch = self._batch_at(segment, position)
            if _last_offset(batch) >= offset:
                return [batch], position + len(batch)
            position += len(batch)

    def _batch_at(self, segment: Segment, position: int) -> bytes:
        head = self._range(segment.key, f"bytes={position}-{position + _BATCH_LENGTH.size - 1}")
        length = batch_length(head)
        return self._range(segment.key, f"bytes={position}-{position + length - 1}")

    def delete(self, key: str) -> None:
        with translated(f"delete segment {key}"):
            self._s3.delete_object(Bucket=self._bucket, Key=key)
        with self._lock:
            self._indexes.pop(key, None)

    def _range(self, key: str, byte_range: str) -> bytes:
        with gone_if_missing(f"read segment {key}"):
            body = self._s3.get_object(Bucket=self._bucket, Key=key, Range=byte_range)["Body"]
            data: bytes = body.read()
        return data


def _last_offset(batch: bytes) -> int:
    return batch_span(batch)[1]


def _tail(data: bytes) -> int:
    """Position (in ``data``) where the first incomplete batch starts."""
    end = 0
    for position, batch in split_batches(data):
        end = position + len(batch)
    return end
