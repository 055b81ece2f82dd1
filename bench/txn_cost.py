"""What a transaction costs, counted from the requests the SDK's producer makes.

One ``Producer`` per row, in direct mode over an ``Engine`` whose two boto3 clients carry
a ``Ledger`` (bench/ledger.py): every DynamoDB and S3 request is booked as AWS bills it,
into the phase it belongs to. A transactional row books, per transaction, ``begin``
(``begin_transaction``), ``send`` (the sends and the flush: each batch's check read of
the transaction record and its append) and ``commit`` (``commit_transaction``); a plain
row sends the same records with an idempotent producer and flushes (``send`` only).
``linger_ms`` is long, so batches close only when full (``batch_size``, 256 KiB of
records before compression) or at the flush: both modes build the same batches.

Then a reader with a fresh engine (empty caches, as a new consumer process) fetches
everything the booked rows wrote, read_committed, into ``read``: the same fetches on
both sides, plus, for transactions, one lookup of each transaction's record (kept in
the reader's cache once final).

One warm-up unit (a transaction, or a flush) per row is not booked: it loads the topic's
metadata and the partitions' tails, as a running producer has them. ``init_transactions``
and producer-id allocation happen once per producer and are not booked either.

Example::

    with LocalPlatform() as lp:
        rows = measure_costs(lp, units=10)      # list[TxnCost], transactional and plain
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from streamlet import Producer
from streamlet.codec import decode_batch
from streamlet.engine import Engine, schema
from streamlet.local import LocalPlatform

from .append_cost import new_ledger
from .billing import item_size
from .events import make_keys, make_values
from .ledger import Bill, Ledger

KINDS = ("100 B", "1 KiB")
PER_TXN = (10, 100, 1000)
PARTITIONS = (1, 4)
LINGER_MS = 60_000
"""Batches close when full or at the flush, never on a timer."""
MODES = ("txn", "plain")
_ids = itertools.count()


@dataclass
class TxnCost:
    """``units`` transactions (or plain flushes) of ``per_txn`` records each, booked."""

    kind: str
    partitions: int
    per_txn: int
    mode: str
    units: int
    records: int
    batches: int
    s3_batches: int
    bills: dict[str, Bill] = field(default_factory=dict)
    largest_record: int = 0
    """Largest transaction record (bytes) at the end: the ledger sizes its commit Update
    by the record as begin wrote it, which is right while both are under 1 KB."""

    def bill(self, *phases: str) -> Bill:
        total = Bill()
        for phase in phases or ("begin", "send", "commit"):
            total = total + self.bills.get(phase, Bill())
        return total

    def per_unit(self, amount: float) -> float:
        return amount / self.units

    def per_million(self, amount: float) -> float:
        return amount * 1_000_000 / self.records


class Row:
    """One row's topic, producer and hooked engine."""

    def __init__(self, lp: LocalPlatform, kind: str, partitions: int, per_txn: int,
                 mode: str) -> None:
        self.lp, self.kind, self.partitions, self.per_txn, self.mode = (
            lp, kind, partitions, per_txn, mode)
        self.ledger: Ledger = new_ledger(lp)
        ddb, s3 = lp.client("dynamodb"), lp.client("s3")
        self.ledger.attach(ddb, s3)
        self.engine = Engine(ddb, s3, lp.names)
        n = next(_ids)
        self.topic, self.tid = f"bench-txn-{n}", f"bench-txn-{n}"
        self.engine.create_topic(self.topic, partitions, None)
        self.producer = Producer(
            transport=self.engine, linger_ms=LINGER_MS,
            transactional_id=self.tid if mode == "txn" else None)

    def unit(self, keys: list[bytes], values: list[bytes], book: bool) -> None:
        """One transaction (or one plain flush) of these records."""
        partition = 0 if self.partitions == 1 else None
        txn = self.mode == "txn"
        if txn:
            self._phase("begin", book)
            self.producer.begin_transaction()
        self._phase("send", book)
        futures = [self.producer.send(self.topic, v, key=k, partition=partition)
                   for k, v in zip(keys, values, strict=True)]
        self.producer.flush()
        if txn:
            self._phase("commit", book)
            self.producer.commit_transaction()
        self.ledger.phase = None
        for future in futures:
            future.get(timeout=60)

    def _phase(self, phase: str, book: bool) -> None:
        self.ledger.phase = phase if book else None

    def close(self) -> None:
        self.producer.close()


def measure_row(lp: LocalPlatform, kind: str, partitions: int, per_txn: int, mode: str,
                units: int) -> TxnCost:
    """Book ``units`` units after one warm-up unit, then one read_committed reader."""
    row = Row(lp, kind, partitions, per_txn, mode)
    values = make_values(kind, per_txn * (units + 1), seed=3)
    keys = make_keys(len(values), seed=5)
    try:
        if mode == "txn":
            row.producer.init_transactions()
        row.unit(keys[:per_txn], values[:per_txn], book=False)
        starts = [row.engine.watermarks(row.topic, p)[1] for p in range(partitions)]
        row.ledger.reset()
        for u in range(1, units + 1):
            chunk = slice(u * per_txn, (u + 1) * per_txn)
            row.unit(keys[chunk], values[chunk], book=True)
    finally:
        row.close()
    if row.ledger.errors:
        raise RuntimeError(f"failed requests while booking: {row.ledger.errors}")
    batches = _read(lp, row.ledger, row.topic, starts, per_txn * units)
    return TxnCost(kind, partitions, per_txn, mode, units, per_txn * units, batches,
                   row.ledger.bills.get("send", Bill()).s3_put, dict(row.ledger.bills),
                   _largest_record(lp, row.tid) if mode == "txn" else 0)


def _read(lp: LocalPlatform, ledger: Ledger, topic: str, starts: list[int],
          expected: int) -> int:
    """A fresh reader's read_committed fetches of the booked records, into ``read``;
    returns the batches read, checking that every record is there."""
    ends = [lp.engine().watermarks(topic, p)[1] for p in range(len(starts))]  # not booked
    ddb, s3 = lp.client("dynamodb"), lp.client("s3")
    ledger.attach(ddb, s3)
    reader = Engine(ddb, s3, lp.names)
    records = batches = 0
    ledger.phase = "read"
    for partition, (start, end) in enumerate(zip(starts, ends, strict=True)):
        offset = start
        while offset < end:  # a fetch's high_watermark is only as far as it looked
            result = reader.fetch(topic, partition, offset, max_bytes=1024 * 1024)
            if not result.batches:
                raise RuntimeError(f"{topic}/{partition}: nothing readable at {offset}")
            for batch in result.batches:
                decoded = [r for r in decode_batch(topic, partition, batch)
                           if r.offset >= offset]
                records += len(decoded)
                batches += 1
                offset = decoded[-1].offset + 1
    ledger.phase = None
    if records != expected:
        raise RuntimeError(f"{topic}: read back {records} records, sent {expected}")
    return batches


def _largest_record(lp: LocalPlatform, tid: str) -> int:
    ddb = lp.client("dynamodb")
    found: list[dict[str, Any]] = ddb.query(
        TableName=lp.names.groups_table, KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": schema.PK},
        ExpressionAttributeValues={":pk": {"S": schema.txn_pk(tid)}})["Items"]
    return max((item_size(i) for i in found), default=0)


def measure_costs(lp: LocalPlatform, units: int, kinds: tuple[str, ...] = KINDS,
                  per_txn: tuple[int, ...] = PER_TXN,
                  partitions: tuple[int, ...] = PARTITIONS) -> list[TxnCost]:
    """Every value size x partitions x records per transaction, transactional then plain."""
    return [measure_row(lp, kind, p, n, mode, units)
            for kind in kinds for p in partitions for n in per_txn for mode in MODES]
