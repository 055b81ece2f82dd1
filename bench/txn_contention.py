"""A 10-partition transaction against rival producers appending to every partition.

Issue 13 names two designs. (b) is what Streamlet does: each transactional batch is
appended as it is sent, like any other (one conditional PutItem at the tail, retried on
a conflict), and the commit is one TransactWriteItems that names no partition's tail.
(a) is the design it replaced on paper: stage the batches, then commit ONE
TransactWriteItems placing every partition's batch item at that partition's exact tail,
so a rival append to any of the partitions between the tail reads and the commit
cancels the whole commit.

- ``design_b``: the SDK's transactional Producer (direct mode) sends one record to each
  of the 10 partitions and commits; its client counts PutItem attempts and conflicts,
  and TransactWriteItems calls made by the commits.
- ``design_a``: the same batches, placed as (a) would: read the 10 tails (strongly
  consistent, fresh), build each batch item exactly as the engine's append builds it
  (``PartitionLog._prepare``, so a winning attempt leaves a valid log), and write all 10
  in one TransactWriteItems conditioned on each key being free; on a cancellation, read
  the tails again, up to ``A_ATTEMPTS`` times. A model of (a)'s commit, not a product.

Rivals: ``RIVAL_THREADS`` threads, each with its own engine, append single-record batches
round-robin to the partitions at a target rate per partition (or as fast as the local
moto server allows: its requests are serialized).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from streamlet import Producer
from streamlet.codec import BatchBuilder
from streamlet.engine import Engine, schema
from streamlet.local import LocalPlatform

from .txn_timing import _name

PARTITIONS = 10
RIVAL_THREADS = 2
A_ATTEMPTS = 10


@dataclass
class Contention:
    """What ``txns`` transactions met under the rivals."""

    design: str
    target_rate: float
    """Rival appends per second per partition asked for (0: as fast as possible)."""
    txns: int = 0
    committed: int = 0
    commit_attempts: int = 0
    """TransactWriteItems calls made by the commits."""
    appends: int = 0
    append_attempts: int = 0
    millis: list[float] = field(default_factory=list)
    windows_ms: list[float] = field(default_factory=list)
    """(a): tail reads to commit, per attempt."""
    rival_rate: float = 0.0
    """Rival appends per second per partition measured while it ran."""


class Rivals:
    """Threads appending one-record batches to every partition at ``rate`` per partition."""

    def __init__(self, lp: LocalPlatform, topic: str, rate: float) -> None:
        self.lp, self.topic, self.rate = lp, topic, rate
        self.stop = threading.Event()
        self.appended = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(range(i, PARTITIONS,
                                                                       RIVAL_THREADS),))
                        for i in range(RIVAL_THREADS)]

    def __enter__(self) -> Rivals:
        self.started = time.perf_counter()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.seconds = time.perf_counter() - self.started

    def _run(self, partitions: range) -> None:
        engine = self.lp.engine()
        gap = 0.0 if self.rate <= 0 else 1 / (self.rate * len(partitions))
        due = time.perf_counter()
        while not self.stop.is_set():
            for p in partitions:
                engine.append(self.topic, p, _batch(b"rival"))
                with self._lock:
                    self.appended += 1
                due += gap
                time.sleep(max(0.0, due - time.perf_counter()))

    @property
    def per_partition_rate(self) -> float:
        return self.appended / self.seconds / PARTITIONS


def _batch(value: bytes) -> bytes:
    builder = BatchBuilder("none", 1 << 20)
    builder.append(None, value, [], int(time.time() * 1000))
    return builder.build(-1, -1, -1)


class _Calls:
    """Counts a client's calls and failed calls by operation."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        client.meta.events.register("after-call.dynamodb", self._after)

    def _after(self, http_response: Any, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        if http_response.status_code >= 300:
            self.failed[model.name] += 1


def design_b(lp: LocalPlatform, txns: int, rate: float) -> Contention:
    topic = _name("busy-b")
    lp.engine().create_topic(topic, PARTITIONS, None)
    ddb = lp.client("dynamodb")
    calls = _Calls(ddb)
    found = Contention("(b) append as sent, commit one record", rate)
    with Producer(transport=Engine(ddb, lp.client("s3"), lp.names), linger_ms=0,
                  transactional_id=_name("busy-b")) as producer:
        producer.init_transactions()
        with Rivals(lp, topic, rate) as rivals:
            for n in range(txns):
                started = time.perf_counter()
                calls.calls.clear()
                producer.begin_transaction()
                futures = [producer.send(topic, f"t{n}-{p}".encode(), partition=p)
                           for p in range(PARTITIONS)]
                producer.flush()
                begin_and_sends = calls.calls["TransactWriteItems"]
                info = producer.commit_transaction()
                found.millis.append((time.perf_counter() - started) * 1000)
                found.txns += 1
                found.committed += info.status == "committed"
                found.commit_attempts += calls.calls["TransactWriteItems"] - begin_and_sends
                found.appends += sum(f.get(timeout=30) is not None for f in futures)
                found.append_attempts += calls.calls["PutItem"]
    found.rival_rate = rivals.per_partition_rate
    return found


def design_a(lp: LocalPlatform, txns: int, rate: float) -> Contention:
    topic = _name("busy-a")
    engine = lp.engine()
    engine.create_topic(topic, PARTITIONS, None)
    found = Contention(f"(a) one commit at every tail, up to {A_ATTEMPTS} tries", rate)
    with Rivals(lp, topic, rate) as rivals:
        for n in range(txns):
            started = time.perf_counter()
            found.txns += 1
            for _ in range(A_ATTEMPTS):
                found.commit_attempts += 1
                if _place_all(engine, topic, n, found.windows_ms):
                    found.committed += 1
                    found.appends += PARTITIONS
                    break
            found.millis.append((time.perf_counter() - started) * 1000)
    found.rival_rate = rivals.per_partition_rate
    return found


def _place_all(engine: Engine, topic: str, n: int, windows: list[float]) -> bool:
    """One attempt of (a)'s commit: fresh tails, then every batch item in one
    TransactWriteItems, each conditioned on its key being free."""
    log = engine.log
    started = time.perf_counter()
    puts: list[Any] = []
    for p in range(PARTITIONS):
        meta = log.meta(topic, p)
        ref = meta.ref(p)
        batch = _batch(f"t{n}-{p}".encode())
        header = log._validate(meta, p, batch)
        prepared = log._prepare(meta, ref, header, batch, None,
                                log.tail(meta, ref, fresh=True), None)
        puts.append({"Put": {"TableName": engine.names.log_table, "Item": prepared.item,
                             "ConditionExpression": "attribute_not_exists(#sk)",
                             "ExpressionAttributeNames": {"#sk": schema.SK}}})
    try:
        engine.log._ddb.transact_write_items(TransactItems=puts)
    except ClientError as e:
        if e.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        return False
    finally:
        windows.append((time.perf_counter() - started) * 1000)
    return True


def measure_contention(lp: LocalPlatform, txns: int, rates: tuple[float, ...]
                       ) -> list[Contention]:
    """Both designs at each rival rate, (b) first."""
    return [design(lp, txns, rate) for rate in rates for design in (design_b, design_a)]
