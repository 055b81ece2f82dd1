"""The reader of the transactional pipeline scenario: read_committed, tailing every output
partition, recording around each tail the committed input offsets and the log ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from streamlet.codec import decode_batch
from streamlet.engine import Engine
from streamlet.errors import StreamletError
from streamlet.records import Record
from tests.harness.txn_history import OutKey, TxnHistory


class Reader:
    """Each observation: committed offsets, the log ends, tail each output partition
    until a fetch makes no progress, committed offsets again."""

    def __init__(self, engine: Engine, history: TxnHistory, outputs: list[OutKey],
                 committed: Callable[[Engine], dict[int, int]]) -> None:
        self.engine, self.history, self.committed = engine, history, committed
        self.positions = dict.fromkeys(outputs, 0)
        self.stop = threading.Event()
        self.observations = 0

    def run(self) -> None:
        while not self.stop.is_set():
            rows: dict[OutKey, list[tuple[int, str]]] = {}
            try:
                before = self.committed(self.engine)
                ends_at = self.history.now()
                ends = {key: self.engine.watermarks(*key)[1] for key in self.positions}
                fetched = {key: self._tail(key, rows.setdefault(key, []))
                           for key in self.positions}
                after = self.committed(self.engine)
            except StreamletError:
                self.history.read(rows)
                continue  # a read failed past its retries: observe again
            self.history.read(rows)
            self.history.observe(before, after, self.positions, ends, ends_at, fetched)
            self.observations += 1
            time.sleep(0.05)

    def _tail(self, key: OutKey, rows: list[tuple[int, str]]) -> float:
        """Fetch until a fetch makes no progress; returns when that last fetch began."""
        while True:
            at, began = self.positions[key], self.history.now()
            result = self.engine.fetch(*key, at, isolation_level="read_committed")
            rows += [(r.offset, _text(r)) for r in _decoded(key, result.batches, at)]
            self.positions[key] = result.high_watermark
            if result.high_watermark == at:
                return began


def _text(record: Record) -> str:
    return (record.value or b"").decode()


def _decoded(key: OutKey, batches: list[bytes], at: int) -> list[Record]:
    return [r for b in batches for r in decode_batch(key[0], key[1], b) if r.offset >= at]


def drain_records(engine: Engine, key: OutKey, isolation: str) -> list[Record]:
    """Every record readable in one partition, from its start."""
    records: list[Record] = []
    at = 0
    while True:
        result = engine.fetch(*key, at, isolation_level=isolation)
        records += _decoded(key, result.batches, at)
        if result.high_watermark == at:
            return records
        at = result.high_watermark


def drain(engine: Engine, key: OutKey, isolation: str) -> list[tuple[int, str]]:
    return [(r.offset, _text(r)) for r in drain_records(engine, key, isolation)]
