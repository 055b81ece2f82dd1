"""Section 4: record codec speed through streamlet.codec (aiokafka's C record module)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from streamlet.codec import BatchBuilder, decode_batch, parse_header

from .events import make_keys, make_values

TS0 = 1_718_000_000_000


@dataclass(frozen=True)
class CodecSpeed:
    """Median per-record times (seconds) over repeated batches of one kind and codec."""

    kind: str
    codec: str
    per_batch: int
    batch_bytes: int
    encode_s: float
    decode_s: float
    raw_decode_s: float
    validate_s: float


def implementation() -> str:
    """Which aiokafka record builder is in use (C extension or pure Python)."""
    return str(DefaultRecordBatchBuilder.__module__)


def encode(codec: str, keys: list[bytes], values: list[bytes]) -> bytes:
    builder = BatchBuilder(codec, 16 * 1024 * 1024)
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        builder.append(key, value, [], TS0 + i)
    return builder.build(-1, -1, -1)


def raw_decode(batch: bytes) -> int:
    """aiokafka alone: decompress and touch every record's value (no Record objects)."""
    return sum(1 for record in DefaultRecordBatch(batch) if record.value is not None)


def _timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure_codec(kind: str, codec: str, per_batch: int, repeats: int) -> CodecSpeed:
    """Encode (append + build), decode (decode_batch; raw aiokafka) and validate (CRC)."""
    values = make_values(kind, per_batch, seed=17)
    keys = make_keys(per_batch, seed=19)
    batch = encode(codec, keys, values)
    enc = [_timed(encode, codec, keys, values) for _ in range(repeats)]
    dec = [_timed(decode_batch, "t", 0, batch) for _ in range(repeats)]
    raw = [_timed(raw_decode, batch) for _ in range(repeats)]
    val = [_timed(parse_header, batch) for _ in range(repeats)]
    if len(decode_batch("t", 0, batch)) != per_batch:
        raise RuntimeError("decoded record count differs from encoded")
    med = statistics.median
    return CodecSpeed(kind, codec, per_batch, len(batch), med(enc) / per_batch,
                      med(dec) / per_batch, med(raw) / per_batch, med(val) / per_batch)
