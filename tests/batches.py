"""Building record batches for engine tests."""

from __future__ import annotations

from streamlet.codec import BatchBuilder


def make_batch(values: list[bytes], *, pid: int = -1, epoch: int = 0, seq: int = 0,
               codec: str = "none", ts: int = 1_000, key: bytes | None = None) -> bytes:
    """One RecordBatch v2; idempotent when ``pid >= 0``."""
    builder = BatchBuilder(codec, 1 << 24)
    for i, value in enumerate(values):
        builder.append(key, value, [], ts + i)
    if pid < 0:
        return builder.build(-1, -1, -1)
    return builder.build(pid, epoch, seq)


def values(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(n)]
