"""Produce-time validation and bounded decoding (streamlet.validation), attack by attack."""

from __future__ import annotations

import ast
import os
import pickle
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import cramjam
import lz4.frame
import pytest
from aiokafka import codec as akcodec
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streamlet import validation
from streamlet.codec import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_CODES,
    CRC_OFFSET,
    HEADER,
    HEADER_SIZE,
    MAX_TIMESTAMP_OFFSET,
    RECORD_COUNT_OFFSET,
    BatchBuilder,
    calc_crc32c,
    decode_batch,
    with_base_offset,
    with_log_append_time,
)
from streamlet.errors import (
    CorruptRecord,
    InvalidRecord,
    InvalidTimestamp,
    RecordTooLarge,
    StreamletError,
)
from streamlet.records import TimestampType
from streamlet.validation import (
    HARD_CAP_BYTES,
    BatchLimits,
    decode_records,
    first_offset_at_or_after,
    validate_batch,
)

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

NOW = 1_718_000_000_000
HOUR = 3_600_000
INT64_MAX = 2**63 - 1
LIMITS = BatchLimits()
CODECS = list(COMPRESSION_CODES)
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "none": bytes, "gzip": akcodec.gzip_encode, "snappy": akcodec.snappy_encode,
    "lz4": akcodec.lz4_encode, "zstd": akcodec.zstd_encode,
}
LAST_OFFSET_DELTA_OFFSET = ATTRIBUTES_OFFSET + 2
FIRST_TIMESTAMP_OFFSET = LAST_OFFSET_DELTA_OFFSET + 4
LENGTH_OFFSET = 8
MiB = 1024 * 1024


# ---- building batches, by the builder and by hand ----------------------------------------

def built(codec: str = "none", n: int = 3, ts: int = NOW, value: bytes | None = b"v" * 20,
          headers: list[tuple[str, bytes | None]] | None = None) -> bytes:
    """A batch from streamlet's own builder: keys k0.., every 4th key None."""
    builder = BatchBuilder(codec, 64 * MiB)
    for i in range(n):
        builder.append(None if i % 4 == 3 else b"k%d" % i, value, headers or [], ts + i)
    return builder.build(producer_id=-1, epoch=-1, base_sequence=-1)


def varint(n: int) -> bytes:
    """Kafka's zigzag varint, minimal."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def field(data: bytes | None) -> bytes:
    return varint(-1) if data is None else varint(len(data)) + data


def record(offset_delta: int, ts_delta: int = 0, key: bytes | None = b"k",
           value: bytes | None = b"v", headers: Sequence[tuple[str, bytes | None]] = (),
           attributes: bytes = b"\0") -> bytes:
    body = (attributes + varint(ts_delta) + varint(offset_delta) + field(key) + field(value)
            + varint(len(headers))
            + b"".join(field(k.encode()) + field(v) for k, v in headers))
    return varint(len(body)) + body


NULL_KEY_AND_VALUE = b"\0" + varint(0) + varint(0) + varint(-1) + varint(-1)
"""A record body's start: attributes, timestamp and offset deltas 0, null key and value."""


def records(n: int, ts_deltas: Sequence[int] | None = None, **kwargs: Any) -> bytes:
    deltas = ts_deltas if ts_deltas is not None else range(n)
    return b"".join(record(i, deltas[i], **kwargs) for i in range(n))


def batch(section: bytes, count: int, codec: str = "none", first_ts: int = NOW,
          max_ts: int | None = None, attributes: int = 0, compressed: bytes | None = None,
          producer_id: int = -1, sequence: int = -1) -> bytes:
    """A batch around a raw records section (compressed here unless given compressed)."""
    payload = COMPRESS[codec](section) if compressed is None else compressed
    attrs = attributes | COMPRESSION_CODES[codec]
    max_ts = first_ts + count - 1 if max_ts is None else max_ts
    head = HEADER.pack(0, HEADER_SIZE - 12 + len(payload), -1, 2, 0, attrs, count - 1,
                       first_ts, max_ts, producer_id, -1, sequence, count)
    return recrc(head + payload)


def recrc(buf: bytes | bytearray) -> bytes:
    out = bytearray(buf)
    struct.pack_into(">I", out, CRC_OFFSET, calc_crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)


def patched(buf: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(buf)
    struct.pack_into(fmt, out, offset, value)
    return recrc(out)


def relabelled(buf: bytes, count: int) -> bytes:
    """The attack: another record count (and last offset delta), CRC recomputed."""
    out = bytearray(buf)
    struct.pack_into(">i", out, RECORD_COUNT_OFFSET, count)
    struct.pack_into(">i", out, LAST_OFFSET_DELTA_OFFSET, (count - 1 + 2**31) % 2**32 - 2**31)
    return recrc(out)


def with_codec(buf: bytes, code: int) -> bytes:
    (attrs,) = struct.unpack_from(">h", buf, ATTRIBUTES_OFFSET)
    return patched(buf, ATTRIBUTES_OFFSET, ">h", attrs & ~0x07 | code)


def refused(buf: bytes, error: type[InvalidRecord] = CorruptRecord,
            limits: BatchLimits = LIMITS, now: int = NOW) -> str:
    with pytest.raises(error) as caught:
        validate_batch(buf, limits, now, "orders", 7)
    assert "'orders' partition 7" in caught.value.message
    return caught.value.message


def test_the_hand_encoder_writes_what_the_builder_writes() -> None:
    builder = BatchBuilder("none", MiB)
    for i in range(3):
        builder.append(b"k", b"v", [("h", b"1")] if i == 1 else [], NOW + i)
    expected = builder.build(producer_id=-1, epoch=-1, base_sequence=-1)
    section = record(0) + record(1, 1, headers=[("h", b"1")]) + record(2, 2)
    assert batch(section, 3) == expected


# ---- valid batches pass -------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("n", "value", "headers"), [
    (1, b"x" * 100, None),
    (3, None, [("trace", b"abc"), ("empty", None)]),
    (100, b"v" * 1024, [("h", b"1")]),
    (2000, b"", [("ünï", b"\x00\xff")]),
])
def test_valid_batches_of_every_codec_pass(codec: str, n: int, value: bytes | None,
                                           headers: list[tuple[str, bytes | None]]) -> None:
    buf = built(codec, n, value=value, headers=headers)
    header = validate_batch(buf, LIMITS, NOW + n, "orders", 0)
    assert (header.record_count, header.attributes & 0x07) == (n, COMPRESSION_CODES[codec])
    records, more = decode_records("orders", 0, buf, max_bytes=HARD_CAP_BYTES)
    assert records == decode_batch("orders", 0, buf) and not more


def test_idempotent_and_offset_patched_batches_pass() -> None:
    builder = BatchBuilder("zstd", MiB)
    builder.append(b"k", b"v", [], NOW)
    buf = with_base_offset(builder.build(producer_id=42, epoch=3, base_sequence=17), 1234)
    assert validate_batch(buf, LIMITS, NOW, "t", 0).producer_id == 42
    assert decode_records("t", 0, buf, 10)[0][0].offset == 1234


def test_a_batch_as_large_as_max_message_bytes_passes_and_one_byte_more_does_not() -> None:
    buf = built("none", 10, value=b"v" * 1000)
    assert validate_batch(buf, BatchLimits(len(buf), len(buf)), NOW + 10, "t", 0)
    with pytest.raises(RecordTooLarge):
        validate_batch(buf, BatchLimits(len(buf) - 1, len(buf)), NOW + 10, "t", 0)


# ---- header, codec and producer fields ----------------------------------------------------

@pytest.mark.parametrize("damage", [
    lambda b: b[:-1],                                             # shorter than its length
    lambda b: b[:40],                                             # shorter than a header
    lambda b: b[:CRC_OFFSET] + b"\0\0\0\0" + b[CRC_OFFSET + 4:],  # CRC
    lambda b: patched(b, 16, ">b", 1),                            # magic 1
    lambda b: patched(b, LENGTH_OFFSET, ">i", 10**6),             # length field
    lambda b: patched(b, ATTRIBUTES_OFFSET, ">h", 0x20),          # control batch
])
def test_header_damage_is_refused_as_corrupt(damage: Callable[[bytes], bytes]) -> None:
    refused(damage(built()))


@pytest.mark.parametrize("code", [5, 6, 7])
def test_unknown_codecs_are_refused(code: int) -> None:
    assert f"codec {code} is unknown" in refused(with_codec(built(), code))


@pytest.mark.parametrize("code", [1, 2, 3, 4])
def test_a_codec_flag_on_raw_records_is_refused(code: int) -> None:
    refused(with_codec(built("none", 3), code))


def test_an_idempotent_batch_without_a_sequence_is_refused() -> None:
    assert "base sequence -1" in refused(batch(records(1), 1, producer_id=5, sequence=-1))


def test_a_batch_over_max_message_bytes_is_too_large_not_corrupt() -> None:
    buf = built("none", 3)
    with pytest.raises(RecordTooLarge):
        validate_batch(buf, BatchLimits(max_batch_bytes=len(buf) - 1), NOW, "t", 0)


# ---- record count and offset deltas -------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("count", [1_000, 2**31 - 1, 4, 2, 1])
def test_a_relabelled_record_count_is_refused(codec: str, count: int) -> None:
    start = time.perf_counter()
    refused(relabelled(built(codec, 3), count))
    assert time.perf_counter() - start < 0.5


def test_a_count_relabelled_without_the_last_offset_delta_is_refused() -> None:
    refused(patched(built(), RECORD_COUNT_OFFSET, ">i", 1000))


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("deltas", [(0, 2, 3), (0, 0, 1), (1, 2, 3), (0, 2, 1), (0, 1, -1),
                                    (0, 1, 2**31)])
def test_offset_delta_gaps_duplicates_and_disorder_are_refused(
        codec: str, deltas: tuple[int, ...]) -> None:
    section = b"".join(record(d, i) for i, d in enumerate(deltas))
    assert "offset delta" in refused(batch(section, 3, codec))


# ---- records that do not parse ------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("section", [
    records(3)[:-1],                                 # truncated inside the last record
    records(3)[:-9],                                 # the last record is missing
    records(3) + b"\0",                              # a trailing byte
    records(3) + record(3),                          # a trailing record
    records(3) + b"garbage" * 100,                   # trailing garbage
    record(0) + record(1, 1)[:-1] + b"\x02" + record(2, 2),  # a header count off by one
    record(0) + b"\x7f" + record(1, 1)[1:] + record(2, 2),  # a negative record length
    record(0) + varint(100) + record(1, 1)[1:] + record(2, 2),  # a length past the end
])
def test_records_that_do_not_parse_are_refused(codec: str, section: bytes) -> None:
    refused(batch(section, 3, codec))


@pytest.mark.parametrize("bad", [
    varint(10) + b"\0" + varint(0) + varint(0) + varint(2**40) + b"x",  # key beyond data
    varint(6) + NULL_KEY_AND_VALUE + varint(-1),                # header count -1
    varint(8) + NULL_KEY_AND_VALUE + varint(1) + varint(-1) + varint(-1),  # header key -1
    varint(9) + NULL_KEY_AND_VALUE + varint(1) + varint(1) + b"\xff" + varint(-1),  # UTF-8
    b"\xff" * 11,                                               # an 11-byte varint
    varint(2**62) + b"\0" * 10,                                 # an absurd record length
    varint(20) + b"\0" + varint(0) + varint(0) + varint(INT64_MAX) + b"\0" * 12,  # key
    varint(20) + b"\0" + varint(INT64_MAX) + varint(INT64_MAX) + b"\0" * 12,  # deltas
])
def test_malformed_fields_are_refused_never_leaking_another_error(bad: bytes) -> None:
    for codec in CODECS:
        refused(batch(bad, 1, codec))


def test_a_multi_byte_record_attribute_is_refused() -> None:
    """aiokafka reads the attribute byte as a varint, Java and librdkafka as one byte: a
    batch they would read differently never gets in."""
    section = record(0, attributes=b"\x80\x00")
    assert len(list(DefaultRecordBatch(batch(section, 1)))) == 1  # aiokafka reads it
    assert "not encoded as Kafka's readers expect" in refused(batch(section, 1))


def test_a_varint_longer_than_needed_is_refused() -> None:
    """Java's readVarint refuses int32 varints of more than 5 bytes; aiokafka does not."""
    long_key_length = b"\x82\x80\x80\x80\x80\x00"  # 1, in 6 bytes
    body = b"\0" + varint(0) + varint(0) + long_key_length + b"k" + field(b"v") + varint(0)
    section = varint(len(body)) + body
    assert next(iter(DefaultRecordBatch(batch(section, 1)))).key == b"k"
    refused(batch(section, 1))


def test_a_negative_key_length_other_than_minus_one_reads_as_null_everywhere() -> None:
    """Kafka's readers (Java's and aiokafka's) take any negative length as null."""
    body = b"\0" + varint(0) + varint(0) + varint(-5) + field(b"v") + varint(0)
    buf = batch(varint(len(body)) + body, 1)
    validate_batch(buf, LIMITS, NOW, "t", 0)
    assert decode_records("t", 0, buf, 10)[0][0].key is None


# ---- what aiokafka's reader catches, and what it does not ---------------------------------

READER_CATCHES = {
    "more records claimed than present": batch(records(2), 3),
    "fewer records claimed than present": batch(records(3), 2),
    "a record length that does not match its fields": batch(
        varint(len(record(0)) - 1 + 1) + record(0)[1:] + b"\0", 1),
    "a key running past the end": batch(record(0)[:-4], 1),
    "a negative header count": batch(varint(6) + NULL_KEY_AND_VALUE + varint(-2), 1),
    "a negative header key length": batch(
        varint(8) + NULL_KEY_AND_VALUE + varint(1) + varint(-1) + varint(-1), 1),
    "a varint of more than 10 bytes": batch(b"\xff" * 11, 1),
}
READER_MISSES = {
    "offset delta gaps": batch(record(0) + record(5, 1), 2),
    "duplicate offset deltas": batch(record(0) + record(0, 1), 2),
    "a max timestamp unlike the records": batch(records(2), 2, max_ts=INT64_MAX),
    "a far-future timestamp": batch(records(1), 1, first_ts=INT64_MAX - 1, max_ts=INT64_MAX - 1),
    "a wrong CRC": batch(records(1), 1)[:CRC_OFFSET] + b"\0\0\0\0" + batch(records(1), 1)[21:],
    "a two-byte record attribute": batch(record(0, attributes=b"\x81\x00"), 1),
}


@pytest.mark.parametrize("name", READER_CATCHES)
def test_aiokafkas_reader_catches(name: str) -> None:
    buf = READER_CATCHES[name]
    with pytest.raises(CorruptRecordException):
        list(DefaultRecordBatch(buf))
    refused(buf)


@pytest.mark.parametrize("name", READER_MISSES)
def test_aiokafkas_reader_misses_what_validation_catches(name: str) -> None:
    buf = READER_MISSES[name]
    assert list(DefaultRecordBatch(buf))  # aiokafka decodes it without complaint
    with pytest.raises(InvalidRecord):
        validate_batch(buf, LIMITS, NOW, "orders", 7)


def test_aiokafkas_reader_raises_unicode_and_overflow_errors_of_its_own() -> None:
    """Not CorruptRecordException: validation must catch these too."""
    bad_utf8 = varint(9) + NULL_KEY_AND_VALUE + varint(1) + varint(1) + b"\xff" + varint(-1)
    with pytest.raises(UnicodeDecodeError):
        list(DefaultRecordBatch(batch(bad_utf8, 1)))
    refused(batch(bad_utf8, 1))
    huge_key = varint(20) + b"\0" + varint(0) + varint(0) + varint(INT64_MAX) + b"\0" * 16
    with pytest.raises((OverflowError, MemoryError)):
        list(DefaultRecordBatch(batch(huge_key, 1)))
    refused(batch(huge_key, 1))


# ---- timestamps ---------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("ts", [NOW + HOUR + 1, 253_402_300_799_000, INT64_MAX, -(2**63)])
def test_far_future_and_far_past_timestamps_are_refused(codec: str, ts: int) -> None:
    buf = batch(records(1, [0]), 1, codec, first_ts=ts, max_ts=ts)
    assert "outside" in refused(buf, InvalidTimestamp)


def test_the_window_edges_are_inclusive() -> None:
    validate_batch(batch(records(1, [0]), 1, first_ts=NOW + HOUR, max_ts=NOW + HOUR),
                   LIMITS, NOW, "t", 0)
    week = 7 * 24 * HOUR
    limits = BatchLimits(timestamp_before_ms=week)
    validate_batch(batch(records(1, [0]), 1, first_ts=NOW - week, max_ts=NOW - week),
                   limits, NOW, "t", 0)
    old = batch(records(1, [0]), 1, first_ts=NOW - week - 1, max_ts=NOW - week - 1)
    refused(old, InvalidTimestamp, limits)
    validate_batch(old, LIMITS, NOW, "t", 0)  # before.max.ms is unbounded by default


def test_one_far_future_record_among_good_ones_is_refused_even_with_a_matching_max() -> None:
    deltas = [0, 1, 10 * HOUR, 2]
    buf = batch(records(4, deltas), 4, first_ts=NOW, max_ts=NOW + 10 * HOUR)
    assert "record 2's timestamp" in refused(buf, InvalidTimestamp)


def test_no_timestamp_is_exempt_as_in_kafka() -> None:
    limits = BatchLimits(timestamp_before_ms=HOUR)
    buf = batch(records(2, [-1 - NOW, 0]), 2, first_ts=NOW, max_ts=NOW)
    validate_batch(buf, limits, NOW, "t", 0)
    assert [r.timestamp for r in decode_records("t", 0, buf, 100)[0]] == [-1, NOW]


@pytest.mark.parametrize("max_ts", [NOW + 1, NOW + 3, NOW - 1, INT64_MAX, -1])
def test_a_max_timestamp_unlike_the_records_is_refused(max_ts: int) -> None:
    buf = batch(records(3), 3, first_ts=NOW, max_ts=max_ts)
    refused(buf, InvalidTimestamp, now=NOW)


def test_log_append_time_batches_are_judged_by_their_max_timestamp() -> None:
    future = batch(records(2), 2, first_ts=INT64_MAX - 5)
    restamped = with_log_append_time(future, NOW)
    validate_batch(restamped, LIMITS, NOW, "t", 0)
    forged = patched(restamped, MAX_TIMESTAMP_OFFSET, ">q", INT64_MAX)
    assert "LogAppendTime" in refused(forged, InvalidTimestamp)


# ---- decompression bombs ------------------------------------------------------------------

def snappy_raw_claiming(size: int) -> bytes:
    """A raw snappy block whose preamble (an unsigned varint) claims ``size`` bytes, followed
    by one literal byte."""
    preamble = bytearray()
    while size >= 0x80:
        preamble.append(size & 0x7F | 0x80)
        size >>= 7
    return bytes(preamble) + bytes([size]) + b"\x00x"


@cache
def zero_bombs() -> dict[str, bytes]:
    """64 MiB of zeros, compressed every way a batch can be."""
    zeros = bytes(64 * MiB)
    bombs = {codec: COMPRESS[codec](zeros) for codec in ("gzip", "snappy", "zstd", "lz4")}
    bombs["lz4 with content size"] = lz4.frame.compress(zeros, store_size=True)
    bombs["zstd multi-frame"] = akcodec.zstd_encode(zeros[:MiB]) * 64
    bombs["gzip multi-member"] = akcodec.gzip_encode(zeros[:MiB]) * 64
    bombs["snappy raw block claiming 64 MiB"] = snappy_raw_claiming(64 * MiB)
    bombs["snappy raw block"] = bytes(cramjam.snappy.compress_raw(zeros[: 8 * MiB]))
    return bombs


def codec_of(bomb: str) -> str:
    return bomb.split(maxsplit=1)[0]


@pytest.mark.parametrize("bomb", ["gzip", "snappy", "zstd", "lz4", "lz4 with content size",
                                  "zstd multi-frame", "gzip multi-member",
                                  "snappy raw block claiming 64 MiB", "snappy raw block"])
def test_a_64_mib_bomb_is_refused_quickly_without_allocating_it(bomb: str) -> None:
    buf = batch(b"", 1, codec_of(bomb), compressed=zero_bombs()[bomb])
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = refused(buf, limits=BatchLimits(max_batch_bytes=8 * MiB))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert "expand beyond" in message
    assert time.perf_counter() - start < 1.0
    assert peak < 3 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_a_zstd_frame_needing_a_window_over_8_mib_is_refused() -> None:
    """Such a frame (here: window log 27, no content size) makes libzstd reserve its window
    before producing a byte; aiokafka (cramjam) would decode it."""
    compressor = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 27})
    frame = compressor.compress(records(3), zstd.ZstdCompressor.CONTINUE)
    frame += compressor.flush(zstd.ZstdCompressor.FLUSH_FRAME)
    buf = batch(b"", 3, "zstd", compressed=frame)
    assert len(list(DefaultRecordBatch(buf))) == 3
    assert "it does not decode" in refused(buf)


RSS_PROBE = """
import pickle, resource, sys
from streamlet.errors import CorruptRecord
from streamlet.validation import BatchLimits, decode_records, validate_batch
refuse, read = pickle.load(open(sys.argv[1], "rb"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for buf in refuse:
    try:
        validate_batch(buf, BatchLimits(8 << 20), 1718000000000, "t", 0)
    except CorruptRecord:
        pass
    else:
        sys.exit("a bomb was accepted")
for buf in read:
    assert decode_records("t", 0, buf, 1024)[1]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_rss_stays_small_while_bombs_are_refused_and_read(tmp_path: Path) -> None:
    """tracemalloc does not see what the codec libraries allocate themselves (libzstd's
    window, say): measure a fresh process's peak RSS instead."""
    refuse = [batch(b"", 1, codec_of(name), compressed=payload)
              for name, payload in zero_bombs().items()]
    read = list(record_bombs().values())
    (tmp_path / "bombs").write_bytes(pickle.dumps((refuse, read)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", RSS_PROBE, str(tmp_path / "bombs")],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    grown_kib = int(done.stdout.split()[-1])
    assert grown_kib < 16 * 1024, f"peak RSS grew {grown_kib} KiB"


def test_records_that_decompress_to_more_than_max_message_bytes_are_refused() -> None:
    buf = built("zstd", 100, value=b"\0" * 1024)
    validate_batch(buf, BatchLimits(max_uncompressed_bytes=200 * 1024), NOW + 100, "t", 0)
    limits = BatchLimits(max_uncompressed_bytes=100 * 1024)
    assert "expand beyond" in refused(buf, limits=limits, now=NOW + 100)


# ---- compressed streams that aiokafka would choke on --------------------------------------

def frames_for(codec: str, section: bytes) -> dict[str, bytes]:
    """Ways to damage a compressed records section."""
    good = COMPRESS[codec](section)
    return {"truncated": good[:-3], "cut short": good[: len(good) // 2],
            "garbage after": good + b"junk", "empty": b"", "zeros after": good + b"\0" * 8,
            "garbage": b"\x01" * 50}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_damaged_compressed_streams_are_refused_or_read_like_aiokafka(codec: str) -> None:
    section = records(5)
    for name, payload in frames_for(codec, section).items():
        buf = batch(b"", 5, codec, compressed=payload)
        try:
            validate_batch(buf, LIMITS, NOW, "t", 0)
        except CorruptRecord:
            continue
        assert name == "zeros after" and codec == "gzip"  # GzipFile skips zero padding
        assert len(list(DefaultRecordBatch(buf))) == 5


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
def test_concatenated_frames_decode_as_aiokafka_decodes_them(codec: str) -> None:
    first, second = record(0) + record(1, 1), record(2, 2)
    payload = COMPRESS[codec](first) + COMPRESS[codec](second)
    buf = batch(b"", 3, codec, compressed=payload)
    validate_batch(buf, LIMITS, NOW, "t", 0)
    assert [r.offset for r in DefaultRecordBatch(buf)] == [0, 1, 2]


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_skippable_frames_are_skipped_as_aiokafka_skips_them(codec: str) -> None:
    skippable = struct.pack("<II", 0x184D2A50, 3) + b"abc"
    payload = skippable + COMPRESS[codec](records(2)) + skippable
    buf = batch(b"", 2, codec, compressed=payload)
    validate_batch(buf, LIMITS, NOW, "t", 0)
    assert len(list(DefaultRecordBatch(buf))) == 2


@pytest.mark.parametrize("blocks", [
    [b"\0\0\0\0"],                       # a zero-length block
    [b"\xff\xff\xff\xfc"],               # a negative block length
    [b"\0\0\0\x40" + b"x"],              # a block length beyond the data
    [b"\0\0"],                           # a block length cut short (aiokafka: struct.error)
])
def test_malformed_xerial_snappy_blocks_are_refused(blocks: list[bytes]) -> None:
    good = akcodec.snappy_encode(records(2))
    refused(batch(b"", 2, "snappy", compressed=good + b"".join(blocks)))


def test_snappy_without_the_exact_xerial_header_is_read_as_one_raw_block() -> None:
    raw = bytes(cramjam.snappy.compress_raw(records(2)))
    validate_batch(batch(b"", 2, "snappy", compressed=raw), LIMITS, NOW, "t", 0)
    other_version = b"\x82SNAPPY\x00" + struct.pack(">ii", 2, 1) + raw
    refused(batch(b"", 2, "snappy", compressed=other_version))


# ---- property tests -----------------------------------------------------------------------

def accepted_or_refused(buf: bytes) -> bool:
    """Validate ``buf``: if it is accepted, aiokafka must decode every record of it as it
    is stored (through aiokafka's own decompression). Only InvalidRecord may be raised."""
    try:
        header = validate_batch(buf, LIMITS, NOW, "t", 0)
    except InvalidRecord as error:
        event(f"refused: {type(error).__name__}")
        return False
    event("accepted")
    decoded = list(DefaultRecordBatch(buf))
    assert len(decoded) == header.record_count
    deltas = [(r.offset - header.base_offset) % 2**64 for r in decoded]
    assert deltas == list(range(header.record_count))
    return True


def sample_batches() -> Iterator[bytes]:
    for codec in CODECS:
        yield built(codec, 5, headers=[("h", b"1")])
        yield built(codec, 1, value=None)


SAMPLES = list(sample_batches())
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                          min_size=1, max_size=4), st.booleans())
def test_byte_mutations_are_accepted_readable_or_refused(
        buf: bytes, flips: list[tuple[int, int]], fix_crc: bool) -> None:
    out = bytearray(buf)
    for where, byte in flips:
        out[where % len(out)] = byte
    accepted_or_refused(recrc(out) if fix_crc else bytes(out))


@FAST
@given(st.sampled_from(SAMPLES), st.integers(-70, 70), st.binary(min_size=1, max_size=1))
def test_truncated_and_extended_batches_are_accepted_readable_or_refused(
        buf: bytes, cut: int, pad: bytes) -> None:
    out = buf[:cut] if cut < 0 else buf + pad * cut
    out = out[:8] + struct.pack(">i", len(out) - 12) + out[12:] if len(out) >= 12 else out
    accepted_or_refused(recrc(out) if len(out) > ATTRIBUTES_OFFSET else out)


SECTIONS = [(records(5, headers=[("h", b"1")]), 5), (record(0, key=None, value=None), 1),
            (records(3, key=b"", value=b"x" * 200), 3)]


@FAST
@given(st.sampled_from(SECTIONS), st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)),
                                           min_size=1, max_size=3), st.sampled_from(CODECS))
def test_mutated_records_inside_compression_are_accepted_readable_or_refused(
        section_count: tuple[bytes, int], flips: list[tuple[int, int]], codec: str) -> None:
    section, count = section_count
    out = bytearray(section)
    for where, byte in flips:
        out[where % len(out)] = byte
    accepted_or_refused(batch(bytes(out), count, codec))


HEADER_FIELDS = {  # name: (offset, struct format)
    "length": (LENGTH_OFFSET, ">i"), "attributes": (ATTRIBUTES_OFFSET, ">h"),
    "last offset delta": (LAST_OFFSET_DELTA_OFFSET, ">i"),
    "first timestamp": (FIRST_TIMESTAMP_OFFSET, ">q"),
    "max timestamp": (MAX_TIMESTAMP_OFFSET, ">q"),
    "count": (RECORD_COUNT_OFFSET, ">i"),
}
FIELD_VALUES = {">i": st.integers(-(2**31), 2**31 - 1), ">h": st.integers(-(2**15), 2**15 - 1),
                ">q": st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(NOW - 10, NOW + 10))}


@FAST
@given(st.sampled_from(SAMPLES), st.sampled_from(sorted(HEADER_FIELDS)), st.data())
def test_header_field_mutations_are_accepted_readable_or_refused(
        buf: bytes, name: str, data: st.DataObject) -> None:
    offset, fmt = HEADER_FIELDS[name]
    value = data.draw(FIELD_VALUES[fmt])
    accepted_or_refused(patched(buf, offset, fmt, value))
    if name == "count":
        accepted_or_refused(relabelled(buf, value))


RECORD = st.tuples(
    st.sampled_from([0, 0, 0, 0, 1, -1, 5]),  # the offset delta's distance from dense
    st.one_of(st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1)),
    st.one_of(st.none(), st.binary(max_size=8)), st.one_of(st.none(), st.binary(max_size=40)),
    st.lists(st.tuples(st.text(max_size=3), st.one_of(st.none(), st.binary(max_size=4))),
             max_size=2),
    st.sampled_from([b"\0", b"\0", b"\0", b"\x01", b"\x80\x00"]))


@FAST
@given(st.lists(RECORD, min_size=1, max_size=6), st.sampled_from([0, 0, 0, -1, 1, 4]),
       st.sampled_from(CODECS), st.sampled_from([0, 0, 0, -1, 1]), st.booleans())
def test_field_mutated_records_are_accepted_readable_or_refused(
        fields: list[tuple[Any, ...]], count_shift: int, codec: str, max_shift: int,
        log_append: bool) -> None:
    section = b"".join(record(i + o, t, k, v, h, a) for i, (o, t, k, v, h, a) in
                       enumerate(fields))
    count = max(1, len(fields) + count_shift)
    ts = [NOW + t for _, t, *_ in fields]
    max_ts = max(ts) + max_shift if -(2**63) <= max(ts) + max_shift < 2**63 else NOW
    buf = batch(section, count, codec, first_ts=NOW, max_ts=max_ts,
                attributes=0x08 if log_append else 0)
    if accepted_or_refused(buf):
        reference = list(DefaultRecordBatch(buf))
        mine, _ = decode_records("t", 0, buf, HARD_CAP_BYTES)
        assert [(r.key, r.value, r.headers) for r in mine] == \
            [(r.key, r.value, r.headers) for r in reference]


# ---- bounded reads ------------------------------------------------------------------------

@cache
def record_bombs() -> dict[str, bytes]:
    """64 MiB of valid records (65,536 values of 1 KiB zeros) in one batch, per codec."""
    value = bytes(1024)
    section = b"".join(record(i, 0, key=None, value=value) for i in range(65_536))
    return {codec: batch(b"", 65_536, codec, max_ts=NOW,
                         compressed=COMPRESS[codec](section) if codec != "gzip"
                         else akcodec.gzip_encode(section, 1))
            for codec in ("gzip", "snappy", "lz4", "zstd")}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_a_64_mib_batch_read_with_a_small_max_bytes_stays_small(codec: str) -> None:
    buf = record_bombs()[codec]
    tracemalloc.start()
    start = time.perf_counter()
    try:
        records, more = decode_records("t", 0, buf, max_bytes=1024)
        first = first_offset_at_or_after("t", 0, buf, NOW)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert len(records) >= 1 and more and first == 0
    assert records[0].value == bytes(1024)
    assert time.perf_counter() - start < 1.0
    assert peak < 3 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("max_bytes", [0, 1, 29, 30, 31, 100, 10**9])
def test_decode_records_returns_a_prefix_passing_max_bytes_by_one_record(
        codec: str, max_bytes: int) -> None:
    buf = built(codec, 10, value=b"v" * 20, headers=[("h", b"1")])  # 20 + 2 + 2-3 B each
    everything = decode_batch("t", 0, buf)
    records, more = decode_records("t", 0, buf, max_bytes)
    assert records == everything[:len(records)] and len(records) >= 1
    sizes = [len(r.key or b"") + 20 + 2 for r in everything]
    taken = next((i + 1 for i in range(10) if sum(sizes[:i + 1]) > max_bytes), 10)
    assert len(records) == taken and more == (taken < 10)


def test_decode_records_gives_absolute_offsets_and_log_append_times() -> None:
    buf = with_log_append_time(with_base_offset(built("lz4", 4), 500), NOW + 9)
    records, _ = decode_records("t", 3, buf, 10**6)
    assert [(r.partition, r.offset, r.timestamp) for r in records] == \
        [(3, 500 + i, NOW + 9) for i in range(4)]
    assert {r.timestamp_type for r in records} == {TimestampType.LOG_APPEND_TIME}


@pytest.mark.parametrize("codec", CODECS)
def test_first_offset_at_or_after_a_timestamp(codec: str) -> None:
    buf = with_base_offset(batch(records(5, [0, 5, 3, 9, 9]), 5, codec, max_ts=NOW + 9), 100)
    expected = {NOW - 1: 100, NOW: 100, NOW + 1: 101, NOW + 4: 101, NOW + 6: 103,
                NOW + 9: 103, NOW + 10: None}
    for timestamp, offset in expected.items():
        assert first_offset_at_or_after("t", 0, buf, timestamp) == offset
    appended = with_log_append_time(buf, NOW)
    assert first_offset_at_or_after("t", 0, appended, NOW) == 100
    assert first_offset_at_or_after("t", 0, appended, NOW + 1) is None


@pytest.mark.parametrize("section", [
    varint(HARD_CAP_BYTES + 1) + b"\0" * 10,   # a record longer than the hard cap
    b"\x80\x80\x80\x80\x80\x01",               # a length varint over 5 bytes
    varint(-3),                                # a negative length
    records(2),                                # fewer records than the count
])
def test_reads_refuse_what_they_cannot_bound(section: bytes) -> None:
    buf = batch(section, 3, "zstd")
    with pytest.raises(CorruptRecord):
        decode_records("t", 0, buf, 10**9)
    with pytest.raises(CorruptRecord):
        first_offset_at_or_after("t", 0, buf, INT64_MAX)


# ---- limits from topic config -------------------------------------------------------------

def test_limits_default_to_kafkas() -> None:
    assert BatchLimits.from_config({}) == BatchLimits(MiB, MiB, INT64_MAX, HOUR)


def test_limits_read_topic_config() -> None:
    limits = BatchLimits.from_config({"max.message.bytes": "5242880",
                                      "message.timestamp.before.max.ms": "86400000",
                                      "message.timestamp.after.max.ms": "0"})
    assert limits == BatchLimits(5 * MiB, 5 * MiB, 86_400_000, 0)
    assert BatchLimits.from_config({"max.message.bytes": str(2**40)}).max_uncompressed_bytes \
        == HARD_CAP_BYTES


@pytest.mark.parametrize("value", ["x", "-1", "1.5"])
def test_limits_refuse_bad_config(value: str) -> None:
    with pytest.raises(StreamletError):
        BatchLimits.from_config({"message.timestamp.after.max.ms": value})


def test_the_module_is_pure() -> None:
    tree = ast.parse(Path(validation.__file__).read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {"." * node.level + (node.module or "") for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom)}
    first_party = {n for n in names if n.startswith(".")}
    assert first_party <= {".codec", ".errors", ".records"}
    assert not {n for n in names if n.split(".")[0] in {"boto3", "botocore", "socket",
                                                        "urllib", "http", "os", "io"}}
