"""RecordBatch v2 handling: parse, validate, patch, decode."""

from __future__ import annotations

import struct

import pytest
from aiokafka.record.default_records import calc_crc32c

from streamlet.codec import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    BatchBuilder,
    batch_span,
    decode_batch,
    increment_sequence,
    parse_header,
    with_base_offset,
    with_log_append_time,
)
from streamlet.errors import InvalidRecord
from streamlet.records import TimestampType


def build(n: int = 3, codec: str = "none", pid: int = -1, seq: int = -1) -> bytes:
    b = BatchBuilder(codec, 1 << 20)
    for i in range(n):
        assert b.append(f"k{i}".encode(), f"v{i}".encode(), [("h", b"x"), ("n", None)], 1000 + i)
    return b.build(pid, 0 if pid >= 0 else -1, seq)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_codec_round_trips(codec: str) -> None:
    records = decode_batch("t", 2, build(5, codec))
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(5)]
    assert records[0].headers == [("h", b"x"), ("n", None)]
    assert [r.offset for r in records] == list(range(5))
    assert {r.partition for r in records} == {2}


def test_header_fields_are_parsed() -> None:
    h = parse_header(build(4, pid=9, seq=17))
    assert (h.record_count, h.last_offset_delta, h.producer_id, h.base_sequence) == (4, 3, 9, 17)
    assert (h.first_timestamp, h.max_timestamp) == (1000, 1003)
    assert h.idempotent and h.timestamp_type is TimestampType.CREATE_TIME


def test_base_offset_patch_keeps_crc_valid() -> None:
    patched = with_base_offset(build(), 41)
    assert parse_header(patched).base_offset == 41  # parse_header validates the CRC
    assert [r.offset for r in decode_batch("t", 0, patched)] == [41, 42, 43]


def test_log_append_time_patch_recomputes_crc() -> None:
    patched = with_log_append_time(build(), 5555)
    header = parse_header(patched)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert {(r.timestamp, r.timestamp_type) for r in decode_batch("t", 0, patched)} == {
        (5555, TimestampType.LOG_APPEND_TIME)}


def test_corrupt_payload_is_rejected() -> None:
    data = bytearray(build())
    data[-1] ^= 0xFF
    with pytest.raises(InvalidRecord, match="CRC"):
        parse_header(bytes(data))


def test_changed_attributes_without_crc_are_rejected() -> None:
    data = bytearray(build())
    struct.pack_into(">h", data, ATTRIBUTES_OFFSET, 0x08)
    with pytest.raises(InvalidRecord, match="CRC"):
        parse_header(bytes(data))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda b: b[:30], "shorter than the header"),
    (lambda b: b + b"\x00", "length field"),
    (lambda b: b[:16] + b"\x01" + b[17:], "magic 1"),
])
def test_malformed_batches_are_rejected(mutate, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRecord, match=message):
        parse_header(mutate(build()))


def test_control_batches_are_rejected_and_transactional_ones_parse() -> None:
    data = bytearray(build())
    struct.pack_into(">h", data, ATTRIBUTES_OFFSET, 0x20)
    struct.pack_into(">I", data, CRC_OFFSET, calc_crc32c(bytes(data[ATTRIBUTES_OFFSET:])))
    with pytest.raises(InvalidRecord, match="Control"):
        parse_header(bytes(data))
    struct.pack_into(">h", data, ATTRIBUTES_OFFSET, 0x10)
    struct.pack_into(">I", data, CRC_OFFSET, calc_crc32c(bytes(data[ATTRIBUTES_OFFSET:])))
    assert parse_header(bytes(data)).attributes == 0x10


def test_sequence_numbers_wrap_like_kafka() -> None:
    assert increment_sequence(5, 3) == 8
    assert increment_sequence(2**31 - 1, 1) == 0
    assert increment_sequence(2**31 - 2, 4) == 2


def test_builder_reports_full_batches() -> None:
    b = BatchBuilder("none", 200)
    assert b.append(None, b"x" * 150, [], 1)
    assert not b.append(None, b"x" * 150, [], 2)
    assert b.count == 1


@pytest.mark.parametrize(("base", "count"), [(0, 1), (41, 3), (2**40, 500)])
def test_batch_span_reads_the_offsets_from_the_header(base: int, count: int) -> None:
    builder = BatchBuilder("zstd", 1 << 20)
    for i in range(count):
        builder.append(None, b"v%d" % i, [], 1_000 + i)
    batch = with_base_offset(builder.build(-1, -1, -1), base)
    header = parse_header(batch)
    assert batch_span(batch) == (header.base_offset, header.base_offset + header.record_count - 1)
    assert batch_span(batch) == (base, base + count - 1)
