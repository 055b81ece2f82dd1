"""Section 1: producer throughput, Streamlet Producer versus one PutItem per record."""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from streamlet import Admin, Producer
from streamlet.codec import parse_header
from streamlet.engine import Engine
from streamlet.local import LocalPlatform
from streamlet.topicconfig import DEFAULT_INLINE_BYTES

from .events import make_keys, make_values
from .naive import create_naive_table, put_records

PARTITIONS = 4
_topic_ids = itertools.count()


@dataclass
class Rate:
    """One configuration's runs: records per run, records/s per run, batches written."""

    label: str
    records: int
    rates: list[float] = field(default_factory=list)
    batches: list[tuple[int, int]] = field(default_factory=list)  # (records, bytes)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def s3_batches(self) -> int:
        return sum(1 for _, size in self.batches if size > DEFAULT_INLINE_BYTES)


def batch_shapes(engine: Engine, topic: str, partitions: int,
                 skip: tuple[int, int]) -> list[tuple[int, int]]:
    """(record count, bytes) of every batch written, read back; ``skip`` = (partition, base)."""
    shapes = []
    for partition in range(partitions):
        offset = 0
        while True:
            result = engine.fetch(topic, partition, offset, max_bytes=64 * 1024 * 1024)
            for batch in result.batches:
                header = parse_header(batch)
                if (partition, header.base_offset) != skip:
                    shapes.append((header.record_count, header.size))
                offset = header.base_offset + header.record_count
            if offset >= result.high_watermark:
                break
    return shapes


def streamlet_run(lp: LocalPlatform, keys: list[bytes], values: list[bytes],
                  options: dict[str, Any], rate: Rate) -> None:
    """Records/s from the first send() to flush() returning, on a fresh 4-partition topic."""
    topic = f"bench-tput-{next(_topic_ids)}"
    admin = Admin(lp.endpoint)
    admin.create_topic(topic, PARTITIONS)
    with Producer(lp.endpoint, **options) as producer:
        warm = producer.send(topic, b"warm-up", key=b"warm-up").result()  # metadata, pid
        start = time.perf_counter()
        futures = [producer.send(topic, v, key=k) for k, v in zip(keys, values, strict=True)]
        producer.flush()
        elapsed = time.perf_counter() - start
    acked = sum(1 for f in futures if f.exception() is None)
    if acked != len(values):
        raise RuntimeError(f"only {acked} of {len(values)} records were acknowledged")
    rate.rates.append(len(values) / elapsed)
    rate.batches += batch_shapes(lp.engine(), topic, PARTITIONS, (warm.partition, warm.offset))
    admin.delete_topic(topic)  # keep the log table small: moto copies it per transaction


def naive_run(ddb: Any, run: int, keys: list[bytes], values: list[bytes]) -> float:
    """Records/s writing each record with its own PutItem."""
    start = time.perf_counter()
    put_records(ddb, f"tput-{run}/0", keys, values, 1_718_000_000_000)
    return len(values) / (time.perf_counter() - start)


STREAMLET_CONFIGS: dict[str, dict[str, Any]] = {
    "Streamlet Producer, defaults (linger 5 ms, zstd, 256 KiB batches, idempotent)": {},
    "Streamlet Producer, linger 5 ms, compression none": {"linger_ms": 5,
                                                          "compression_type": "none"},
}


def measure_throughput(lp: LocalPlatform, streamlet_records: int, naive_records: int,
                       repeats: int) -> list[Rate]:
    """Median-of-``repeats`` rates for Streamlet configurations and the naive baseline."""
    values = make_values("100 B", streamlet_records)
    keys = make_keys(streamlet_records)
    results = []
    for label, options in STREAMLET_CONFIGS.items():
        rate = Rate(label, streamlet_records)
        for _ in range(repeats):
            streamlet_run(lp, keys, values, options, rate)
        results.append(rate)
    ddb = lp.client("dynamodb")
    create_naive_table(ddb)
    naive = Rate("Naive: one PutItem per record (boto3, sequential)", naive_records)
    naive.rates = [naive_run(ddb, r, keys[:naive_records], values[:naive_records])
                   for r in range(repeats)]
    return [*results, naive]
