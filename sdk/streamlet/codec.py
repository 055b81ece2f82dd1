"""Kafka RecordBatch v2 bytes: build, inspect, patch and decode.

Encoding and decoding use aiokafka's C-accelerated record module. This module only
adds what a log server needs on top: header parsing and validation, and patching the
base offset (not covered by the CRC) or the LogAppendTime fields (CRC recomputed),
exactly as a Kafka broker does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from aiokafka.record.default_records import (
    DefaultRecordBatch,
    DefaultRecordBatchBuilder,
    calc_crc32c,
)

from .errors import InvalidRecord
from .records import Record, TimestampType

HEADER = struct.Struct(">qiibIhiqqqhii")
"""base_offset, length, leader_epoch, magic, crc, attributes, last_offset_delta,
first_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence, count."""
HEADER_SIZE = HEADER.size  # 61
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35
RECORD_COUNT_OFFSET = 57
LOG_OVERHEAD = 12  # base_offset + length: the bytes before the batch "length" counts
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20

COMPRESSION_CODES = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
NO_PRODUCER_ID = -1
INT32_MAX = 2**31 - 1


def increment_sequence(sequence: int, increment: int) -> int:
    """Kafka's producer sequence arithmetic: wraps from INT32_MAX to 0.

    Example:
        >>> increment_sequence(2**31 - 1, 1)
        0
    """
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The fixed 61-byte header of a RecordBatch v2."""

    base_offset: int
    length: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        return self.length + LOG_OVERHEAD

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType(1 if self.attributes & TIMESTAMP_TYPE_BIT else 0)

    @property
    def idempotent(self) -> bool:
        return self.producer_id >= 0


def parse_header(buf: bytes) -> BatchHeader:
    """Parse and validate one complete batch: size, magic, counts and CRC-32C.

    Raises:
        InvalidRecord: the bytes are not exactly one valid RecordBatch v2.
    """
    if len(buf) < HEADER_SIZE:
        raise InvalidRecord(f"Record batch of {len(buf)} bytes is shorter than the header.")
    (base, length, _epoch, magic, crc, attrs, delta, first_ts, max_ts, pid, pepoch, seq,
     count) = HEADER.unpack_from(buf)
    header = BatchHeader(base, length, magic, crc & 0xFFFFFFFF, attrs, delta, first_ts,
                         max_ts, pid, pepoch, seq, count)
    _validate(header, buf)
    return header


def _validate(header: BatchHeader, buf: bytes) -> None:
    if header.magic != 2:
        raise InvalidRecord(f"Record batch magic {header.magic} is not supported (need 2).")
    if header.size != len(buf):
        raise InvalidRecord(f"Record batch length field says {header.size} bytes, got {len(buf)}.")
    if header.record_count < 1 or header.record_count != header.last_offset_delta + 1:
        raise InvalidRecord(
            f"Record batch holds {header.record_count} records but its last offset delta "
            f"is {header.last_offset_delta}."
        )
    if header.attributes & CONTROL_BIT:
        raise InvalidRecord("Control batches are not accepted: Streamlet writes no "
                            "transaction markers.")
    if calc_crc32c(memoryview(buf)[ATTRIBUTES_OFFSET:]) != header.crc:
        raise InvalidRecord("Record batch CRC-32C does not match its contents (corrupt batch).")


def batch_span(buf: bytes) -> tuple[int, int]:
    """(base offset, last offset) of a stored batch, from its header alone (no CRC check:
    for bytes validated when they were appended)."""
    (base,) = struct.unpack_from(">q", buf, 0)
    (count,) = struct.unpack_from(">i", buf, RECORD_COUNT_OFFSET)
    return int(base), int(base) + int(count) - 1


def with_base_offset(buf: bytes, base_offset: int) -> bytes:
    """Return ``buf`` with its base offset set; the CRC does not cover it."""
    return struct.pack(">q", base_offset) + bytes(buf[8:])


def with_log_append_time(buf: bytes, timestamp_ms: int) -> bytes:
    """Mark a batch as LogAppendTime with ``timestamp_ms`` and recompute its CRC."""
    out = bytearray(buf)
    (attrs,) = struct.unpack_from(">h", out, ATTRIBUTES_OFFSET)
    struct.pack_into(">h", out, ATTRIBUTES_OFFSET, attrs | TIMESTAMP_TYPE_BIT)
    struct.pack_into(">q", out, MAX_TIMESTAMP_OFFSET, timestamp_ms)
    struct.pack_into(">I", out, CRC_OFFSET, calc_crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)


class BatchBuilder:
    """Accumulates records into one RecordBatch v2 (aiokafka's builder underneath).

    Example:
        >>> b = BatchBuilder("zstd", batch_size=16384)
        >>> b.append(b"key", b"value", [("h", b"1")], 1700000000000)
        True
        >>> parse_header(b.build(producer_id=-1, epoch=-1, base_sequence=-1)).record_count
        1
    """

    def __init__(self, compression_type: str, batch_size: int) -> None:
        self._builder: Any = DefaultRecordBatchBuilder(
            magic=2, compression_type=COMPRESSION_CODES[compression_type], is_transactional=0,
            producer_id=NO_PRODUCER_ID, producer_epoch=-1, base_sequence=-1,
            batch_size=batch_size,
        )
        self.count = 0
        self.timestamps: list[int] = []

    def append(self, key: bytes | None, value: bytes | None,
               headers: list[tuple[str, bytes | None]], timestamp: int) -> bool:
        """Add a record; False when the batch is full (an empty batch takes anything)."""
        meta = self._builder.append(self.count, timestamp=timestamp, key=key, value=value,
                                    headers=headers)
        if meta is None:
            return False
        self.count += 1
        self.timestamps.append(timestamp)
        return True

    def size_in_bytes(self) -> int:
        return int(self._builder.size())

    def build(self, producer_id: int, epoch: int, base_sequence: int) -> bytes:
        self._builder.set_producer_state(producer_id, epoch, base_sequence)
        return bytes(self._builder.build())


def estimate_record_size(key: bytes | None, value: bytes | None,
                         headers: list[tuple[str, bytes | None]]) -> int:
    """Upper bound of one record's encoded size inside a batch, plus the batch header."""
    size = int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))
    return size + HEADER_SIZE


def decode_batch(topic: str, partition: int, buf: bytes) -> list[Record]:
    """Decode every record of one batch (decompressing it)."""
    batch: Any = DefaultRecordBatch(buf)
    log_append = bool(batch.timestamp_type)
    ts_type = TimestampType.LOG_APPEND_TIME if log_append else TimestampType.CREATE_TIME
    return [
        Record(topic, partition, r.offset, r.key, r.value, list(r.headers),
               batch.max_timestamp if log_append else r.timestamp, ts_type)
        for r in batch
    ]
