"""Tiered-storage cost: ~1 KiB JSON records written once, read once, kept 7 days.

One topic per row (one partition, default config but for ``inline.max.bytes``) on the
LocalPlatform, served by an engine on an injected clock whose boto3 clients carry a
``Ledger``. The timeline of a row, in simulated time from T0:

- ``write`` (T0): producer-like batches (``BatchBuilder``, idempotent producer id,
  running sequences) appended one by one, every record stamped T0;
- ``read`` (T0): a tail consumer reading shortly after the write, so from the hot tier:
  ``engine.fetch`` from offset 0 to the high watermark with the default ``max_bytes``;
- ``archive`` (T0 + segment.ms + 1 min): one archiver pass rolls every hot batch into
  segments and deletes the archived blobs;
- ``replay`` (T0 + segment.ms + 2 min, not in the total): the same read again, now
  served by the segments;
- ``retention`` (T0 + retention.ms + 1 min): one retention pass deletes the segments.

Both reads must return exactly the records written (count and checksum).
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from streamlet.codec import BatchBuilder, decode_batch
from streamlet.engine import Engine
from streamlet.local import LocalPlatform
from streamlet.producer import Producer
from streamlet.topicconfig import config_int

from .billing import DYNAMODB_GB_MONTH, GB, HOURS_PER_MONTH, S3_GB_MONTH, gb_months
from .ledger import Bill, Ledger

MILLION = 1_000_000
PRODUCER_DEFAULTS = {name: p.default for name, p in
                     inspect.signature(Producer.__init__).parameters.items()}
CODEC = "zstd"
"""The producer's codec when neither it nor the topic names one (compression.type
``producer``, the topic default)."""
PHASES = ("write", "read", "archive", "replay", "retention")
SCHEDULE_LAG_S = 60
_topic_ids = itertools.count()

KINESIS_IN_PER_GB = 0.08
KINESIS_OUT_PER_GB = 0.04
KINESIS_STREAM_HOUR = 0.04
KINESIS_RETENTION_GB_MONTH = 0.10
"""On-demand extended retention (24 h to 7 days): performance.md marks it unverified."""
KINESIS_EXTENDED_HOURS = 6 * 24
"""7 days kept, the first 24 h included in the base price."""


@dataclass(frozen=True)
class Spec:
    """One row: where batches go (``inline.max.bytes``) and how they are formed."""

    label: str
    inline_max: int
    per_batch: int | None = None
    """Records per batch; None: the Producer's default batch size rule."""


@dataclass
class TieredRow:
    """What one row's requests and storage came to, for ``records`` records."""

    spec: Spec
    records: int
    batches: int
    s3_batches: int
    batch_bytes: int
    segments: int
    bills: dict[str, Bill]
    dynamodb_byte_seconds: float
    s3_byte_seconds: float
    max_batch: int = 0

    def per_million(self, amount: float) -> float:
        return amount * MILLION / self.records

    def bill(self, *phases: str) -> Bill:
        return sum((self.bills.get(p, Bill()) for p in phases), Bill())

    @property
    def dynamodb_gb_months(self) -> float:
        return self.per_million(gb_months(self.dynamodb_byte_seconds))

    @property
    def s3_gb_months(self) -> float:
        return self.per_million(gb_months(self.s3_byte_seconds))

    @property
    def storage_usd(self) -> float:
        return self.dynamodb_gb_months * DYNAMODB_GB_MONTH + self.s3_gb_months * S3_GB_MONTH

    def usd(self, *phases: str) -> float:
        return self.per_million(self.bill(*phases).usd)

    @property
    def total_usd(self) -> float:
        return self.usd("write", "read", "archive", "retention") + self.storage_usd


@dataclass(frozen=True)
class KinesisCost:
    """Kinesis Data Streams on-demand (Standard) per million records."""

    label: str
    data_in: float
    data_out: float
    retention: float
    stream_hours: float

    @property
    def total(self) -> float:
        return self.data_in + self.data_out + self.retention + self.stream_hours


def kinesis_on_demand(label: str, billed_bytes: int, records: int, rate: float
                      ) -> KinesisCost:
    """``billed_bytes`` for ``records`` records (each rounded up to 1 KiB already);
    the stream-hour is shared by ``rate`` records per second."""
    gb = billed_bytes / GB * MILLION / records
    return KinesisCost(label, gb * KINESIS_IN_PER_GB, gb * KINESIS_OUT_PER_GB,
                       gb * KINESIS_RETENTION_GB_MONTH * KINESIS_EXTENDED_HOURS / HOURS_PER_MONTH,
                       KINESIS_STREAM_HOUR * MILLION / rate / 3600)


def kinesis_rows(values: list[bytes], rate: float) -> list[KinesisCost]:
    flat = kinesis_on_demand("Kinesis on-demand, 1 KiB each (the bar)", 1024 * len(values),
                             len(values), rate)
    rounded = sum(1024 * math.ceil(len(v) / 1024) for v in values)
    return [flat, kinesis_on_demand("Kinesis on-demand, real sizes", rounded, len(values),
                                    rate)]


class FakeClock:
    """The engine's clock: starts at the real time (S3 stamps objects with it) and only
    moves when told."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.start = self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def at(self, seconds_after_start: float) -> None:
        self.now = self.start + seconds_after_start


def producer_batches(records: Iterator[tuple[bytes, bytes, int]], batch_size: int,
                     per_batch: int | None) -> Iterator[BatchBuilder]:
    """Batches as the Producer fills them: a record that does not fit starts the next
    batch; a batch at ``batch_size`` bytes (or ``per_batch`` records) is closed."""
    builder: BatchBuilder | None = None
    for key, value, ts in records:
        if builder is None or not builder.append(key, value, [], ts):
            if builder is not None:
                yield builder
            builder = BatchBuilder(CODEC, batch_size)
            builder.append(key, value, [], ts)
        if builder.size_in_bytes() >= batch_size or builder.count == per_batch:
            yield builder
            builder = None
    if builder is not None:
        yield builder


def checksum(pairs: Iterator[tuple[bytes | None, bytes | None]]) -> tuple[int, str]:
    """(count, digest) of key/value pairs in order."""
    digest, count = hashlib.blake2b(digest_size=16), 0
    for key, value in pairs:
        for part in (key or b"", value or b""):
            digest.update(len(part).to_bytes(4, "big") + part)
        count += 1
    return count, digest.hexdigest()


class TieredBench:
    """One engine on the local platform, on a fake clock, with a ledger on its clients."""

    def __init__(self, lp: LocalPlatform) -> None:
        self.clock = FakeClock()
        probe = lp.client("dynamodb")
        self.ledger = Ledger(lambda table, key: probe.get_item(
            TableName=table, Key=key, ConsistentRead=True).get("Item"), self.clock)
        ddb, s3 = lp.client("dynamodb"), lp.client("s3")
        self.ledger.attach(ddb, s3)
        self.engine = Engine(ddb, s3, lp.names, clock=self.clock)

    def run(self, spec: Spec, keys: list[bytes], values: list[bytes]) -> TieredRow:
        self.clock.restart()  # a fresh T0 near the real time, for S3's LastModified
        self.ledger.reset()
        topic = f"bench-tiered-{next(_topic_ids)}"
        config = self.engine.create_topic(topic, 1, {"inline.max.bytes": spec.inline_max}).config
        expected = checksum(zip(keys, values, strict=True))
        row = self._write(spec, topic, keys, values)
        self._phase("read", 0)
        self._check_read(topic, expected, "tail read (hot tier)")
        self._archive(row, topic, config)
        self._phase("replay", config_int(config, "segment.ms") / 1000 + 2 * SCHEDULE_LAG_S)
        self._check_read(topic, expected, "replay (archive)")
        self._retention(row, topic, config)
        self._finish(row)
        self.engine.delete_topic(topic)
        return row

    def _phase(self, name: str | None, seconds_after_t0: float) -> None:
        self.ledger.phase = name
        self.clock.at(seconds_after_t0)

    def _write(self, spec: Spec, topic: str, keys: list[bytes], values: list[bytes]
               ) -> TieredRow:
        pid = self.engine.init_producer_id()  # once per producer: not booked
        self._phase("write", 0)
        ts = int(self.clock() * 1000)
        batch_size = PRODUCER_DEFAULTS["batch_size"] if spec.per_batch is None \
            else 16 * 1024 * 1024
        row = TieredRow(spec, len(values), 0, 0, 0, 0, {}, 0.0, 0.0)
        sequence = 0
        records = zip(keys, values, itertools.repeat(ts), strict=False)
        for builder in producer_batches(records, batch_size, spec.per_batch):
            data = builder.build(pid, 0, sequence)
            sequence += builder.count
            blobs_before = self.ledger.bills.get("write", Bill()).s3_put
            self.engine.append(topic, 0, data)
            row.s3_batches += self.ledger.bills["write"].s3_put - blobs_before
            row.batches += 1
            row.batch_bytes += len(data)
            row.max_batch = max(row.max_batch, len(data))
        return row

    def _check_read(self, topic: str, expected: tuple[int, str], what: str) -> None:
        got = checksum(self._consume(topic, expected[0]))
        if got != expected:
            raise RuntimeError(f"{topic}: {what} returned {got[0]:,} records (checksum "
                               f"{got[1]}), wrote {expected[0]:,} ({expected[1]})")

    def _consume(self, topic: str, end: int) -> Iterator[tuple[bytes | None, bytes | None]]:
        """A consumer's fetch loop from offset 0 to ``end``, the offset after the last
        record written (a fetch's high watermark is only the end of what it read when it
        stopped short of the tail)."""
        offset = 0
        while offset < end:
            fetched = self.engine.fetch(topic, 0, offset)
            for batch in fetched.batches:
                for record in decode_batch(topic, 0, batch):
                    if record.offset >= offset:
                        yield record.key, record.value
                        offset = record.offset + 1
            if not fetched.batches:
                raise RuntimeError(f"{topic}: empty fetch at {offset} below {end}")

    def _archive(self, row: TieredRow, topic: str, config: dict[str, str]) -> None:
        self._phase("archive", config_int(config, "segment.ms") / 1000 + SCHEDULE_LAG_S)
        (report,) = self.engine.archive(topic)
        row.segments = len(report.segments)
        if report.archived_offset != report.high_watermark or not report.segments:
            raise RuntimeError(f"{topic}: archived {report.archived_offset:,} of "
                               f"{report.high_watermark:,}")
        if report.blobs_deleted != row.s3_batches:
            raise RuntimeError(f"{topic}: the archiver deleted {report.blobs_deleted} of "
                               f"{row.s3_batches} blobs")

    def _retention(self, row: TieredRow, topic: str, config: dict[str, str]) -> None:
        self._phase("retention", config_int(config, "retention.ms") / 1000 + SCHEDULE_LAG_S)
        (report,) = self.engine.enforce_retention(topic)
        if report.segments_deleted != row.segments or report.log_start_after != row.records:
            raise RuntimeError(f"{topic}: retention deleted {report.segments_deleted} of "
                               f"{row.segments} segments, log start {report.log_start_after}")

    def _finish(self, row: TieredRow) -> None:
        self.ledger.phase = None
        if self.ledger.errors:
            raise RuntimeError("requests failed: " + "; ".join(self.ledger.errors[:5]))
        self.ledger.dynamodb_storage.close(self.clock())
        self.ledger.s3_storage.close(self.clock())
        row.bills = dict(self.ledger.bills)
        row.dynamodb_byte_seconds = self.ledger.dynamodb_storage.byte_seconds
        row.s3_byte_seconds = self.ledger.s3_storage.byte_seconds
