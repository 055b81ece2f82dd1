"""Helpers for the trigger tests: produce numbered records, read a topic back, a recording
handler."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from streamlet.codec import BatchBuilder
from streamlet.engine import Engine
from streamlet.fetching import fetch_records
from streamlet.records import Record, TopicPartition
from streamlet.transport.base import Transport


def produce(engine: Transport, topic: str, partition: int, values: Iterable[Any],
            per_batch: int = 1, ts: int | None = None, key: bytes | None = b"k") -> None:
    """Append JSON values, ``per_batch`` records per stored batch."""
    values = list(values)
    for i in range(0, len(values), per_batch):
        builder = BatchBuilder("none", 1 << 20)
        for value in values[i:i + per_batch]:
            builder.append(key, json.dumps(value).encode(), [], ts if ts is not None else
                           _now_ms())
        engine.append(topic, partition, builder.build(-1, -1, -1))


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def read_all(engine: Engine, topic: str, partition: int = 0) -> list[Record]:
    return fetch_records(engine, TopicPartition(topic, partition), 0, "earliest",
                         1 << 24).records


class Recorder:
    """A Lambda-style handler that records what it got and fails as told."""

    def __init__(self, fail: Any = None) -> None:
        self.calls: list[list[tuple[int, int]]] = []
        self.values: list[Any] = []
        self.fail = fail or (lambda record: False)
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        import base64

        batch = [r for records in event["records"].values() for r in records]
        with self.lock:
            self.calls.append([(r["partition"], r["offset"]) for r in batch])
        for record in batch:
            value = json.loads(base64.b64decode(record["value"]))
            if self.fail(value):
                raise RuntimeError(f"cannot handle {value}")
        with self.lock:
            self.values += [json.loads(base64.b64decode(r["value"])) for r in batch]

    def offsets(self, partition: int = 0) -> list[int]:
        return [o for call in self.calls for p, o in call if p == partition]
