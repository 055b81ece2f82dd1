"""Write cost per append, counted from the requests one writer's engine actually makes.

Batches are built as the SDK producer builds them (``BatchBuilder`` with the producer's
default batch size; idempotent: one producer id, epoch 0, running sequences) and
appended one by one through ``Engine.append`` by a single writer whose boto3 clients
carry a ``Ledger`` (bench/ledger.py): every DynamoDB and S3 request is booked as AWS
bills it. Only APIs that the old (transactional) and the current engine share are used,
so this module runs against either package (bench/append_side.py picks which).

- ``measure_matrix``: 100 B and 1 KiB values x zstd / none x 1, 10, 100 records per
  append, ``APPENDS`` appends per row after one warm-up append (not booked) that loads
  the topic metadata and the partition's tail (or, before, its head and producer state).
- ``measure_trickle``: single-record appends ``TRICKLE_GAP_S`` apart, beyond every cache
  an engine keeps (topic metadata 5 s; the current engine's tail 10 s).
- ``measure_naive``: one PutItem per record (bench/naive.py), the baseline.

Example::

    with LocalPlatform() as lp:
        rows = measure_matrix(lp)          # list[AppendCost]
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from streamlet.codec import BatchBuilder, decode_batch
from streamlet.engine import Engine
from streamlet.local import LocalPlatform

from .billing import KB
from .events import make_keys, make_values
from .ledger import Bill, Ledger
from .naive import create_naive_table, put_records

KINDS = ("100 B", "1 KiB")
CODECS = ("zstd", "none")
"""zstd: the producer's codec when neither it nor the topic names one."""
PER_APPEND = (1, 10, 100)
APPENDS = 20
NAIVE_RECORDS = 200
TRICKLE_APPENDS = 3
TRICKLE_GAP_S = 11.0
"""Longer than the current engine's tail cache (10 s) and the topic cache (5 s)."""
PRODUCER_BATCH_SIZE = 256 * 1024
"""The Producer's default ``batch_size``."""
PHASE = "append"
_topic_ids = itertools.count()


@dataclass
class AppendCost:
    """What ``appends`` appends of ``per_append`` records each were billed, in total."""

    label: str
    kind: str
    codec: str
    per_append: int
    appends: int
    records: int
    batch_bytes: int
    ceil_kb: int
    """Sum over appends of ceil(batch bytes / 1,024): the write-unit target inline."""
    kinesis_bytes: int
    """The same values as Kinesis on-demand bills them: each rounded up to 1 KiB."""
    wru: float
    rru: float
    s3_put: int
    s3_get: int
    usd: float
    requests: dict[str, int] = field(default_factory=dict)

    def per_append_of(self, amount: float) -> float:
        return amount / self.appends

    @property
    def usd_per_million(self) -> float:
        return self.usd * 1_000_000 / self.records


def new_ledger(lp: LocalPlatform) -> Ledger:
    """A ledger whose Update sizes are read through a client it does not hook."""
    probe = lp.client("dynamodb")
    return Ledger(lambda table, key: probe.get_item(
        TableName=table, Key=key, ConsistentRead=True).get("Item"), time.time)


def _row(label: str, kind: str, codec: str, per_append: int, sizes: list[int],
         values: list[bytes], bill: Bill) -> AppendCost:
    return AppendCost(
        label, kind, codec, per_append, len(sizes), len(values), sum(sizes),
        sum(max(1, math.ceil(size / KB)) for size in sizes),
        sum(KB * max(1, math.ceil(len(v) / KB)) for v in values),
        bill.wru, bill.rru, bill.s3_put + bill.s3_post + bill.s3_list, bill.s3_get, bill.usd,
        dict(bill.requests))


class Writer:
    """One idempotent producer's batches to partition 0 of ``topic``, in sequence."""

    def __init__(self, engine: Engine, topic: str, codec: str) -> None:
        self.engine, self.topic, self.codec = engine, topic, codec
        self.producer_id = engine.init_producer_id()
        self.sequence = 0

    def append(self, keys: list[bytes], values: list[bytes]) -> int:
        """Build one batch of these records, append it; returns its size in bytes."""
        builder = BatchBuilder(self.codec, PRODUCER_BATCH_SIZE)
        now = int(time.time() * 1000)
        for key, value in zip(keys, values, strict=True):
            builder.append(key, value, [], now)
        batch = builder.build(self.producer_id, 0, self.sequence)
        self.engine.append(self.topic, 0, batch)
        self.sequence += len(values)
        return len(batch)


def _chunks(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class CostBench:
    """One engine on the local platform, its requests booked by a ledger."""

    def __init__(self, lp: LocalPlatform) -> None:
        self.ledger = new_ledger(lp)
        ddb, s3 = lp.client("dynamodb"), lp.client("s3")
        self.ledger.attach(ddb, s3)
        self.engine = Engine(ddb, s3, lp.names)

    def row(self, kind: str, codec: str, per_append: int, appends: int, gap_s: float = 0.0,
            label: str = "") -> AppendCost:
        """Book ``appends`` appends of ``per_append`` records (after a warm-up append)."""
        values = make_values(kind, 1 + per_append * appends, seed=3)
        keys = make_keys(len(values), seed=5)
        topic = f"bench-append-{next(_topic_ids)}"
        self.ledger.reset()
        self.engine.create_topic(topic, 1, None)
        writer = Writer(self.engine, topic, codec)
        writer.append(keys[:1], values[:1])  # warm-up: metadata, tail (head), not booked
        sizes = self._booked(writer, keys[1:], values[1:], per_append, gap_s)
        self._check(topic, len(values))
        self.engine.delete_topic(topic)
        label = label or f"{kind}, {codec}, {per_append} rec"
        return _row(label, kind, codec, per_append, sizes, values[1:],
                    self.ledger.bills.get(PHASE, Bill()))

    def _booked(self, writer: Writer, keys: list[bytes], values: list[bytes],
                per_append: int, gap_s: float) -> list[int]:
        sizes = []
        for batch_keys, batch_values in zip(_chunks(keys, per_append),
                                            _chunks(values, per_append), strict=True):
            time.sleep(gap_s)
            self.ledger.phase = PHASE
            sizes.append(writer.append(batch_keys, batch_values))
            self.ledger.phase = None
        if self.ledger.errors:
            raise RuntimeError(f"failed requests while booking: {self.ledger.errors}")
        return sizes

    def _check(self, topic: str, expected: int) -> None:
        """Read everything back (not booked): every record appended is there."""
        offset = count = 0
        while True:
            result = self.engine.fetch(topic, 0, offset, max_bytes=16 * 1024 * 1024)
            for batch in result.batches:
                records = decode_batch(topic, 0, batch)
                count += len(records)
                offset = records[-1].offset + 1
            if offset >= result.high_watermark or not result.batches:
                break
        if count != expected:
            raise RuntimeError(f"{topic}: read back {count} records, appended {expected}")


def measure_matrix(lp: LocalPlatform, appends: int = APPENDS) -> list[AppendCost]:
    """Every value size x codec x records per append, ``appends`` appends each."""
    bench = CostBench(lp)
    return [bench.row(kind, codec, per_append, appends)
            for kind in KINDS for codec in CODECS for per_append in PER_APPEND]


def measure_trickle(lp: LocalPlatform, appends: int = TRICKLE_APPENDS,
                    gap_s: float = TRICKLE_GAP_S) -> AppendCost:
    """Single 100 B zstd records, ``gap_s`` apart: every append finds its caches expired."""
    return CostBench(lp).row("100 B", "zstd", 1, appends, gap_s,
                             label=f"trickle: 100 B, zstd, 1 rec, {gap_s:g} s apart")


def measure_naive(lp: LocalPlatform, kind: str, records: int = NAIVE_RECORDS) -> AppendCost:
    """One (non-transactional) PutItem per record, booked by the same ledger."""
    ledger, ddb = new_ledger(lp), lp.client("dynamodb")
    ledger.attach(ddb, lp.client("s3"))
    create_naive_table(ddb)
    values = make_values(kind, records, seed=3)
    ledger.phase = PHASE
    put_records(ddb, f"append-cost-{kind}/0", make_keys(records, seed=5), values,
                int(time.time() * 1000))
    ledger.phase = None
    if ledger.errors:
        raise RuntimeError(f"failed requests while booking: {ledger.errors}")
    sizes = [len(v) for v in values]
    return _row(f"naive PutItem per record, {kind}", kind, "none", 1, sizes, values,
                ledger.bills[PHASE])
