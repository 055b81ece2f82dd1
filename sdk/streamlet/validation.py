"""Validate a produced RecordBatch like a broker, and decode stored ones in bounded memory.

``validate_batch`` decodes a batch once, as Kafka's LogValidator does, and refuses it
unless every record parses, the count and offset deltas match the header, timestamps are
within the topic's window and decompression stays under a byte limit. Decompression is
streamed in chunks and stops at the limit: a size written in the data (zstd and lz4
content sizes, a snappy preamble) is never trusted for an allocation. ``decode_records``
and ``first_offset_at_or_after`` read a stored batch only as far as they need to.

Example:
    >>> from streamlet.codec import BatchBuilder
    >>> builder = BatchBuilder("zstd", batch_size=16384)
    >>> builder.append(b"k", b"v", [], 1_700_000_000_000)
    True
    >>> batch = builder.build(producer_id=-1, epoch=-1, base_sequence=-1)
    >>> limits = BatchLimits.from_config({"max.message.bytes": "1048576"})
    >>> validate_batch(batch, limits, 1_700_000_000_500, "orders", 0).record_count
    1
    >>> records, more = decode_records("orders", 0, batch, max_bytes=1024)
    >>> records[0].value, more
    (b'v', False)
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

import cramjam
import lz4.frame  # type: ignore[import-untyped]
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from .codec import HEADER, HEADER_SIZE, LOG_OVERHEAD, BatchHeader, parse_header
from .errors import CorruptRecord, InvalidConfig, InvalidRecord, InvalidTimestamp, RecordTooLarge
from .records import Record, TimestampType

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

__all__ = ["HARD_CAP_BYTES", "BatchLimits", "decode_records", "first_offset_at_or_after",
           "validate_batch"]

HARD_CAP_BYTES = 64 * 1024 * 1024
"""No path decompresses more than this from one batch, whatever a topic allows."""
CHUNK_BYTES = 256 * 1024
"""Decompressed output is produced (and can be given up) this much at a time."""
ZSTD_WINDOW_LOG_MAX = 23
"""zstd frames needing a window above 8 MiB are refused (libzstd's own default is 27, 128
MiB): producers at levels 1-19 stay within it; a bomb cannot make the decoder reserve more."""
MIN_RECORD_BYTES = 7  # length, attributes, timestamp delta, offset delta, key, value, headers
NO_TIMESTAMP = -1  # Kafka exempts it from the timestamp window
INT64_MAX = 2**63 - 1
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # streamlet.topicconfig's default (Kafka: 1048588)
DEFAULT_TIMESTAMP_BEFORE_MS = INT64_MAX  # Kafka's message.timestamp.before.max.ms
DEFAULT_TIMESTAMP_AFTER_MS = 3_600_000  # Kafka's message.timestamp.after.max.ms (KIP-937)
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)  # as aiokafka detects it
GZIP_WBITS = 31  # zlib: gzip wrapper, checks the header CRC, CRC-32 and length trailer

_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    CorruptRecordException, zlib.error, zstd.ZstdError, cramjam.DecompressionError,
    RuntimeError, ValueError, EOFError, OverflowError, MemoryError, struct.error)
"""What aiokafka's reader and the codec libraries raise on bad input (lz4: RuntimeError)."""
_OFFSET, _TIMESTAMP = attrgetter("offset"), attrgetter("timestamp")
_KEY, _VALUE, _HEADERS = attrgetter("key"), attrgetter("value"), attrgetter("headers")
_SIZER: Any = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 30)
"""Sizes a record as every Kafka client encodes it (minimal varints, one attribute byte);
its first timestamp is 0, so a record's timestamp delta is passed as its timestamp."""
_SIZER.append(0, timestamp=0, key=None, value=None, headers=[])

_Buffer = bytes | bytearray | memoryview


class _Refused(Exception):
    """Internal: the batch is corrupt; the public error needs the topic and partition."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """What one produced batch may be: a topic's max.message.bytes (stored, and its
    records once decompressed) and its timestamp window around the broker's clock."""

    max_batch_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_uncompressed_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    timestamp_before_ms: int = DEFAULT_TIMESTAMP_BEFORE_MS
    timestamp_after_ms: int = DEFAULT_TIMESTAMP_AFTER_MS

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> BatchLimits:
        """Limits from topic config, Kafka's defaults for absent keys. A batch must fit
        max.message.bytes both as sent and decompressed (capped at HARD_CAP_BYTES).

        Example:
            >>> BatchLimits.from_config({}).timestamp_after_ms
            3600000
        """
        max_bytes = _config_int(config, "max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES)
        return cls(max_bytes, min(max_bytes, HARD_CAP_BYTES),
                   _config_int(config, "message.timestamp.before.max.ms",
                               DEFAULT_TIMESTAMP_BEFORE_MS),
                   _config_int(config, "message.timestamp.after.max.ms",
                               DEFAULT_TIMESTAMP_AFTER_MS))


def _config_int(config: Mapping[str, str], key: str, default: int) -> int:
    raw = config.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidConfig(f"Config {key}={raw!r} is not an integer.") from None
    if value < 0:
        raise InvalidConfig(f"Config {key}={value} must not be negative.")
    return value


# ---- validation ---------------------------------------------------------------------------

def validate_batch(buf: bytes, limits: BatchLimits, now_ms: int, topic: str,
                   partition: int) -> BatchHeader:
    """Decode ``buf`` once and refuse it unless it is one well-formed RecordBatch v2.

    On a LogAppendTime topic, validate the restamped batch (after
    ``codec.with_log_append_time``): a LogAppendTime batch is checked by its max timestamp
    only, which is what every reader sees as its records' timestamp.

    Raises:
        RecordTooLarge: ``buf`` is longer than ``limits.max_batch_bytes``.
        CorruptRecord: header, CRC, codec, compressed data or records are wrong.
        InvalidTimestamp: a timestamp is outside the window, or max_timestamp is wrong.
    """
    if len(buf) > limits.max_batch_bytes:
        raise RecordTooLarge(topic, len(buf), limits.max_batch_bytes, what="record batch")
    with _refusing(topic, partition):
        header = _header(buf)
        _check_producer(header)
        chunks = _records_section(header, buf, limits.max_uncompressed_bytes - HEADER_SIZE)
        deltas = _decode_and_check(header, chunks)
    _check_timestamps(header, deltas, limits, now_ms, topic, partition)
    return header


@contextmanager
def _refusing(topic: str, partition: int) -> Iterator[None]:
    """Turn every decoding failure inside into CorruptRecord naming the partition."""
    try:
        yield
    except _Refused as refused:
        raise CorruptRecord(topic, partition, str(refused)) from None
    except _DECODE_ERRORS as error:
        raise CorruptRecord(topic, partition,
                            f"it does not decode ({type(error).__name__}: {error})") from error


def _header(buf: bytes) -> BatchHeader:
    try:
        header = parse_header(buf)
    except InvalidRecord as bad:
        raise _Refused(bad.message) from None
    if header.attributes & 0x07 not in CODECS:
        raise _Refused(f"its compression codec {header.attributes & 0x07} is unknown")
    return header


def _check_producer(header: BatchHeader) -> None:
    """Kafka's rule: an idempotent batch (producer id set) carries a sequence."""
    if header.producer_id >= 0 and header.base_sequence < 0:
        raise _Refused(f"producer {header.producer_id} sent base sequence "
                       f"{header.base_sequence}")


def _records_section(header: BatchHeader, buf: bytes, limit: int) -> list[_Buffer]:
    """The decompressed records in chunks, refused past ``limit`` bytes or when too few
    bytes for the header's record count."""
    payload = memoryview(buf)[HEADER_SIZE:]
    chunks = list(_decompressed(header.attributes & 0x07, payload, limit))
    size = sum(map(len, chunks))
    if header.record_count > size // MIN_RECORD_BYTES:
        raise _Refused(f"it claims {header.record_count} records in {size} bytes")
    return chunks


def _decode_and_check(header: BatchHeader, chunks: list[_Buffer]) -> list[int]:
    """Every record through aiokafka's C reader (it checks each record's fields and length,
    the count, and that no bytes trail), then what it does not check. Returns the
    timestamp deltas."""
    plain = _plain_batch(header, chunks, header.record_count)
    decoded = list(DefaultRecordBatch(plain))
    count = len(decoded)
    offsets = list(map(_OFFSET, decoded))
    if offsets != list(range(count)):
        at = next(i for i, delta in enumerate(offsets) if delta != i)
        raise _Refused(f"record {at} has offset delta {offsets[at]}, expected {at}")
    deltas = _timestamp_deltas(decoded)
    canonical = sum(map(_SIZER.size_in_bytes, range(count), deltas, map(_KEY, decoded),
                        map(_VALUE, decoded), map(_HEADERS, decoded)))
    if canonical != len(plain) - HEADER_SIZE:
        raise _Refused("its records are not encoded as Kafka's readers expect (a record "
                       "attribute byte above 0x7f or a varint longer than needed)")
    return deltas


def _plain_batch(header: BatchHeader, chunks: Sequence[_Buffer], count: int) -> bytes:
    """An uncompressed batch of ``count`` records for aiokafka's reader (which trusts its
    header; a bytes object, whose trailing NUL stops its varint reads at the end): base
    offset and first timestamp 0, so each record reports its own deltas; attributes 0, so
    codec and LogAppendTime bits do not apply."""
    size = sum(map(len, chunks))
    head = HEADER.pack(0, HEADER_SIZE - LOG_OVERHEAD + size, -1, 2, 0, 0, count - 1, 0, 0,
                       header.producer_id, header.producer_epoch, header.base_sequence, count)
    return b"".join([head, *chunks])


def _timestamp_deltas(decoded: list[Any]) -> list[int]:
    """The records' timestamp deltas (first timestamp 0 in the plain batch). Older aiokafka
    releases report a timestamp of -1 as None: that is a delta of -1."""
    deltas = list(map(_TIMESTAMP, decoded))
    if None in deltas:
        return [NO_TIMESTAMP if d is None else d for d in deltas]
    return deltas


def _check_timestamps(header: BatchHeader, deltas: list[int], limits: BatchLimits,
                      now_ms: int, topic: str, partition: int) -> None:
    low, high = now_ms - limits.timestamp_before_ms, now_ms + limits.timestamp_after_ms
    if header.timestamp_type == TimestampType.LOG_APPEND_TIME:
        if not low <= header.max_timestamp <= high:
            raise InvalidTimestamp(topic, partition, _outside("its LogAppendTime max timestamp",
                                                              header.max_timestamp, low, high))
        return
    first, largest = header.first_timestamp, max(deltas)
    if not (low <= first + min(deltas) and first + largest <= high):
        _find_outside(first, deltas, low, high, topic, partition)
    if header.max_timestamp != first + largest:
        raise InvalidTimestamp(topic, partition, f"its max timestamp {header.max_timestamp} "
                               f"is not its records' largest, {first + largest}")


def _find_outside(first: int, deltas: list[int], low: int, high: int, topic: str,
                  partition: int) -> None:
    """Raise for the first record outside [low, high]; -1 (no timestamp) is exempt."""
    for i, delta in enumerate(deltas):
        timestamp = first + delta
        if timestamp != NO_TIMESTAMP and not low <= timestamp <= high:
            raise InvalidTimestamp(topic, partition,
                                   _outside(f"record {i}'s timestamp", timestamp, low, high))


def _outside(what: str, timestamp: int, low: int, high: int) -> str:
    return (f"{what} {timestamp} is outside [{low}, {high}] (now minus "
            f"message.timestamp.before.max.ms, now plus message.timestamp.after.max.ms)")


# ---- bounded decompression ----------------------------------------------------------------

def _decompressed(codec: int, payload: memoryview, limit: int) -> Iterator[_Buffer]:
    """The records section in chunks; refused once it passes ``limit`` bytes, so at most
    ``limit`` plus one chunk is ever produced."""
    chunks: Iterator[_Buffer]
    if codec == 0:
        chunks = iter((payload,))
    elif codec == 1:
        chunks = _gzip_chunks(payload)
    elif codec == 2:
        chunks = _snappy_chunks(payload, limit)
    elif codec == 3:
        chunks = _frame_chunks(payload, lz4.frame.LZ4FrameDecompressor, "lz4")
    else:
        chunks = _frame_chunks(payload, _zstd_decoder, "zstd")
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise _Refused(f"its records expand beyond {limit} bytes uncompressed")
        yield chunk


def _gzip_chunks(payload: memoryview) -> Iterator[bytes]:
    """gzip members back to back, zero padding between them allowed (as Python's GzipFile,
    which aiokafka reads with)."""
    rest: bytes | memoryview = payload
    while True:
        inflater = zlib.decompressobj(GZIP_WBITS)
        pending: bytes | memoryview = rest
        while not inflater.eof:
            out = inflater.decompress(pending, CHUNK_BYTES)
            pending = inflater.unconsumed_tail
            if not (out or pending or inflater.eof):
                raise _Refused("its gzip stream is truncated")
            yield out
        rest = inflater.unused_data.lstrip(b"\0")
        if not rest:
            return


class _FrameDecoder(Protocol):
    """lzma-style incremental decoders: python-lz4's and compression.zstd's."""

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes | memoryview, max_length: int = -1) -> bytes: ...


def _frame_chunks(payload: memoryview, new_decoder: Callable[[], _FrameDecoder],
                  name: str) -> Iterator[bytes]:
    """Frames back to back (skippable ones included), each decoded CHUNK_BYTES at a time."""
    rest: bytes | memoryview = payload
    while rest:
        decoder = new_decoder()
        out = decoder.decompress(rest, CHUNK_BYTES)
        while True:
            yield out
            if decoder.eof:
                break
            if decoder.needs_input:
                raise _Refused(f"its {name} frame is truncated")
            out = decoder.decompress(b"", CHUNK_BYTES)
        rest = decoder.unused_data


def _zstd_decoder() -> _FrameDecoder:
    options: dict[int, int] = {zstd.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX}
    decoder: _FrameDecoder = zstd.ZstdDecompressor(options=options)
    return decoder


def _snappy_chunks(payload: memoryview, limit: int) -> Iterator[bytes]:
    """xerial framing (its exact v1 header, as aiokafka detects it) or one raw block."""
    if len(payload) > len(XERIAL_HEADER) and payload[:len(XERIAL_HEADER)] == XERIAL_HEADER:
        yield from _xerial_blocks(payload, limit)
    else:
        yield _snappy_block(payload, limit)


def _xerial_blocks(payload: memoryview, limit: int) -> Iterator[bytes]:
    """Blocks of a big-endian int32 length and a raw snappy block each."""
    pos, left = len(XERIAL_HEADER), limit
    while pos < len(payload):
        if len(payload) - pos < 4:
            raise _Refused("its snappy stream ends inside a block length")
        (size,) = struct.unpack_from(">i", payload, pos)
        if not 0 < size <= len(payload) - pos - 4:
            raise _Refused(f"its snappy block length {size} is out of bounds")
        block = _snappy_block(payload[pos + 4:pos + 4 + size], left)
        pos, left = pos + 4 + size, left - len(block)
        yield block


def _snappy_block(block: memoryview, room: int) -> bytes:
    """One raw snappy block; its preamble (the length it claims) is checked before the
    decoder allocates that much, and the decoder checks the output matches it."""
    claimed = cramjam.snappy.decompress_raw_len(block)
    if claimed > room:
        raise _Refused(f"its records expand beyond the limit: a snappy block claims "
                       f"{claimed} bytes, {room} are left")
    return bytes(cramjam.snappy.decompress_raw(block))


# ---- bounded reads ------------------------------------------------------------------------

def decode_records(topic: str, partition: int, buf: bytes,
                   max_bytes: int) -> tuple[list[Record], bool]:
    """The records of one stored batch until their key, value and header bytes pass
    ``max_bytes`` (at least one record), and whether records were left undecoded.

    Only what is needed is decompressed, and never more than HARD_CAP_BYTES.

    Raises:
        CorruptRecord: the batch does not decode.
    """
    with _refusing(topic, partition):
        header, cutter = _open(buf)
        records: list[Record] = []
        size = 0
        while len(records) < header.record_count and size <= max_bytes:
            for raw in cutter.take(header, header.record_count - len(records),
                                   max_bytes - size):
                records.append(_record(topic, partition, header, raw))
                size += _payload_bytes(raw)
                if size > max_bytes:
                    break
        return records, len(records) < header.record_count


def first_offset_at_or_after(topic: str, partition: int, buf: bytes,
                             timestamp: int) -> int | None:
    """The offset of the first record of a stored batch whose timestamp is >= ``timestamp``
    (None if there is none), decoding CHUNK_BYTES of records at a time."""
    with _refusing(topic, partition):
        header, cutter = _open(buf)
        if header.timestamp_type == TimestampType.LOG_APPEND_TIME:
            return header.base_offset if header.max_timestamp >= timestamp else None
        left = header.record_count
        while left > 0:
            group = cutter.take(header, left, CHUNK_BYTES)
            for raw in group:
                if _record(topic, partition, header, raw).timestamp >= timestamp:
                    return int(header.base_offset + raw.offset)
            left -= len(group)
        return None


def _open(buf: bytes) -> tuple[BatchHeader, _Cutter]:
    header = _header(buf)
    payload = memoryview(buf)[HEADER_SIZE:]
    chunks = _decompressed(header.attributes & 0x07, payload, HARD_CAP_BYTES - HEADER_SIZE)
    return header, _Cutter(chunks)


def _record(topic: str, partition: int, header: BatchHeader, raw: Any) -> Record:
    if header.timestamp_type == TimestampType.LOG_APPEND_TIME:
        timestamp, ts_type = header.max_timestamp, TimestampType.LOG_APPEND_TIME
    else:
        delta = NO_TIMESTAMP if raw.timestamp is None else raw.timestamp
        timestamp, ts_type = header.first_timestamp + delta, TimestampType.CREATE_TIME
    return Record(topic, partition, header.base_offset + raw.offset, raw.key, raw.value,
                  list(raw.headers), timestamp, ts_type)


def _payload_bytes(raw: Any) -> int:
    """Key, value and header bytes of a decoded record (header names in characters)."""
    size = len(raw.key or b"") + len(raw.value or b"")
    for name, value in raw.headers:
        size += len(name) + len(value or b"")
    return size


class _Cutter:
    """Complete records cut from a stream of decompressed chunks, a group at a time: a
    record's length comes first, so only the chunks reaching its end are pulled."""

    def __init__(self, chunks: Iterator[_Buffer]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    def take(self, header: BatchHeader, most: int, budget: int) -> list[Any]:
        """At least one record, more while their encoded bytes stay within ``budget``;
        decoded by aiokafka's reader."""
        count = end = 0
        while count < most and (count == 0 or end <= budget):
            end, count = self._record_end(end), count + 1
        plain = _plain_batch(header, [self._buf[:end]], count)
        del self._buf[:end]
        return list(DefaultRecordBatch(plain))

    def _record_end(self, start: int) -> int:
        while True:
            end = _record_end(self._buf, start)
            if end is not None and end <= len(self._buf):
                return end
            chunk = next(self._chunks, None)
            if chunk is None:
                raise _Refused("its records end before the count in its header")
            self._buf += chunk


def _record_end(buf: bytearray, pos: int) -> int | None:
    """Where the record starting at ``pos`` ends, or None while ``buf`` does not yet hold
    its length varint (at most 5 bytes, as Kafka's)."""
    value = shift = 0
    for i in range(pos, min(pos + 5, len(buf))):
        value |= (buf[i] & 0x7F) << shift
        if buf[i] < 0x80:
            length = (value >> 1) ^ -(value & 1)
            if not 0 < length <= HARD_CAP_BYTES:
                raise _Refused(f"a record claims a length of {length} bytes")
            return i + 1 + length
        shift += 7
    if len(buf) - pos >= 5:
        raise _Refused("a record length varint is longer than 5 bytes")
    return None

