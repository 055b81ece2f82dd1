"""Section 2: DynamoDB write units and S3 PUTs per 1,000 records, from the real requests.

Batches are built the way the Producer builds them (idempotent: producer id, epoch 0,
per-partition sequences) and appended through the engine, whose boto3 clients carry a
``Recorder``: every TransactWriteItems and S3 PutObject the engine makes is sized.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from streamlet.codec import BatchBuilder, decode_batch
from streamlet.engine import Engine
from streamlet.local import LocalPlatform

from .billing import PUT_IN_WRU, PUT_PRICE, WRU_PRICE, Recorder, item_size, write_units
from .events import make_keys, make_values
from .naive import create_naive_table, put_records

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
TS0 = 1_718_000_000_000
_topic_ids = itertools.count()


@dataclass(frozen=True)
class CostRow:
    """Write cost of ``records`` records of one value size, codec and batch size."""

    kind: str
    codec: str
    per_batch: int
    records: int
    value_bytes: int
    stored_bytes: int
    inline_batches: int
    s3_batches: int
    batch_wru: int
    other_wru: int
    s3_puts: int

    def per_1k(self, amount: float) -> float:
        return amount * 1000 / self.records

    @property
    def wru_per_1k(self) -> float:
        return self.per_1k(self.batch_wru + self.other_wru)

    @property
    def usd_per_million(self) -> float:
        wru, puts = self.batch_wru + self.other_wru, self.s3_puts
        return (wru * WRU_PRICE + puts * PUT_PRICE) * 1_000_000 / self.records

    @property
    def wru_equivalent_per_1k(self) -> float:
        return self.wru_per_1k + self.per_1k(self.s3_puts) * PUT_IN_WRU


class CostBench:
    """One engine on the local platform with its DynamoDB and S3 requests recorded."""

    def __init__(self, lp: LocalPlatform) -> None:
        self.ddb, self.s3 = lp.client("dynamodb"), lp.client("s3")
        self.recorder = Recorder()
        self.recorder.attach(self.ddb, "dynamodb", "TransactWriteItems", "PutItem")
        self.recorder.attach(self.s3, "s3", "PutObject")
        self.engine = Engine(self.ddb, self.s3, lp.names)
        self._item_sizes: dict[str, int] = {}

    def run(self, kind: str, codec: str, per_batch: int, keys: list[bytes],
            values: list[bytes]) -> CostRow:
        topic = f"bench-cost-{next(_topic_ids)}"
        self.engine.create_topic(topic, 1)
        pid = self.engine.init_producer_id()
        self.recorder.clear()
        stored = self._append_all(topic, pid, codec, per_batch, keys, values)
        self._check_readback(topic, len(values))
        row = self._row(kind, codec, per_batch, values, stored)
        self.engine.delete_topic(topic)  # moto copies the whole table per transaction
        return row

    def _append_all(self, topic: str, pid: int, codec: str, per_batch: int,
                    keys: list[bytes], values: list[bytes]) -> int:
        stored = 0
        for base in range(0, len(values), per_batch):
            builder = BatchBuilder(codec, 16 * 1024 * 1024)
            for i in range(base, min(base + per_batch, len(values))):
                builder.append(keys[i], values[i], [], TS0 + i)
            batch = builder.build(pid, 0, base)
            stored += len(batch)
            self.engine.append(topic, 0, batch)
        return stored

    def _check_readback(self, topic: str, expected: int) -> None:
        fetched = self.engine.fetch(topic, 0, 0, max_bytes=64 * 1024 * 1024)
        count = sum(len(decode_batch(topic, 0, b)) for b in fetched.batches)
        if count != expected:
            raise RuntimeError(f"{topic}: read back {count} records, wrote {expected}")

    def _row(self, kind: str, codec: str, per_batch: int, values: list[bytes],
             stored: int) -> CostRow:
        batch_wru = other_wru = inline = s3_batches = 0
        for call in self.recorder.calls["TransactWriteItems"]:
            for action in call["TransactItems"]:
                units = write_units(self._action_size(action), transactional=True)
                put_item = action.get("Put", {}).get("Item", {})
                if "data" in put_item or "blob" in put_item:
                    batch_wru += units
                    inline += "data" in put_item
                    s3_batches += "blob" in put_item
                else:
                    other_wru += units
        return CostRow(kind, codec, per_batch, len(values), sum(map(len, values)), stored,
                       inline, s3_batches, batch_wru, other_wru,
                       len(self.recorder.calls["PutObject"]))

    def _action_size(self, action: dict[str, Any]) -> int:
        """A Put's item as sent; an Update's item as read back (its size after the update)."""
        if "Put" in action:
            return item_size(action["Put"]["Item"])
        if "Update" in action:
            return self._stored_item_size(action["Update"])
        raise ValueError(f"unexpected transaction action {sorted(action)}")

    def _stored_item_size(self, update: dict[str, Any]) -> int:
        key = repr(update["Key"])
        if key not in self._item_sizes:
            item = self.ddb.get_item(TableName=update["TableName"], Key=update["Key"],
                                     ConsistentRead=True)["Item"]
            self._item_sizes[key] = item_size(item)
        return self._item_sizes[key]

    def naive(self, kind: str, keys: list[bytes], values: list[bytes]) -> CostRow:
        """One non-transactional PutItem per record, sized from the requests made."""
        create_naive_table(self.ddb)
        self.recorder.clear()
        put_records(self.ddb, f"cost-{kind}/0", keys, values, TS0)
        wru = sum(write_units(item_size(c["Item"])) for c in self.recorder.calls["PutItem"])
        stored = sum(map(len, values))
        return CostRow(kind, "none (naive)", 1, len(values), stored, stored, len(values), 0,
                       wru, 0, 0)


def measure_costs(lp: LocalPlatform, batch_sizes: dict[int, int], naive_records: int
                  ) -> list[CostRow]:
    """Rows for every value size x codec x records-per-batch (``{per_batch: records}``)."""
    bench = CostBench(lp)
    rows: list[CostRow] = []
    for kind in ("100 B", "1 KiB"):
        values = make_values(kind, max(batch_sizes.values()), seed=3)
        keys = make_keys(len(values), seed=5)
        rows.append(bench.naive(kind, keys[:naive_records], values[:naive_records]))
        for codec in CODECS:
            for per_batch, records in batch_sizes.items():
                rows.append(bench.run(kind, codec, per_batch, keys[:records], values[:records]))
    return rows
