"""How long a transaction takes, and how fast a consume-transform-produce loop runs.

- ``measure_latency``: one transactional producer runs ``count`` transactions of
  ``per_txn`` ~100 B records (keyed, over the topic's partitions), each timed in three
  parts: ``begin_transaction``, the sends with their flush (every batch appended), and
  ``commit_transaction`` (nothing left to flush). A plain idempotent producer sends the
  same records to a topic of its own (two writers on one partition would race for its
  tail) and flushes, alternating with the transactions, as the baseline.
- ``measure_loops``: the same input topic consumed by ``streamlet.processing.run``
  (exactly once: a transaction per poll with the input offsets) and by an at-least-once
  loop (poll, send each output, flush, commit the offsets), each in a new group, rounds
  alternating. The clock starts at the poll that returns the first records (the group
  join is not timed) and stops when every input record's output is committed. Each
  pass's engines carry a ledger (bench/ledger.py) that books every request it makes, the
  group join and heartbeats included, so the two loops' bills can be compared.

Example::

    with LocalPlatform() as lp:
        lat = measure_latency(lp, "direct", partitions=4, count=100)
        rates = measure_loops(lp, records=20_000, rounds=3)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from streamlet import Admin, Consumer, Producer, processing
from streamlet.engine import Engine
from streamlet.local import LocalPlatform
from streamlet.records import Record

from .append_cost import new_ledger
from .events import make_keys, make_values
from .ledger import Bill
from .timing import CallTimer

_ids = itertools.count()
PARTS = ("begin", "send", "commit", "total", "plain")
LOOP = "loop"


@dataclass
class TxnLatency:
    """Milliseconds of each part of each transaction (and of the plain baseline)."""

    path: str
    partitions: int
    per_txn: int
    millis: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})
    timer: CallTimer = field(default_factory=CallTimer)
    """The transactional producer's DynamoDB calls (direct mode only)."""


def _name(what: str) -> str:
    return f"bench-{what}-{next(_ids)}-{time.monotonic_ns()}"


def measure_latency(lp: LocalPlatform, path: str, partitions: int, count: int,
                    per_txn: int = 10) -> TxnLatency:
    """``count`` transactions after 3 warm-up ones (not timed), alternating with plain
    sends of the same records. ``path``: "direct" (each producer on its own engine, whose
    DynamoDB client is timed) or "http" (through the local gateway)."""
    lat = TxnLatency(path, partitions, per_txn)
    endpoint = lp.start_gateway() if path == "http" else lp.endpoint
    topic, plain_topic = _name("txn-lat"), _name("plain-lat")
    for name in (topic, plain_topic):  # two writers to one partition would race its tail
        Admin(endpoint).create_topic(name, partitions)
    values = make_values("100 B", per_txn * (count + 3), seed=9)
    keys = make_keys(len(values), seed=13)
    with _producer(lp, path, lat.timer, transactional_id=_name("lat")) as txn, \
            _producer(lp, path, CallTimer()) as plain:
        txn.init_transactions()
        for i in range(count + 3):
            if i == 3:
                lat.timer.calls.clear()
            chunk = slice(i * per_txn, (i + 1) * per_txn)
            parts = _one_transaction(txn, topic, keys[chunk], values[chunk])
            plain_ms = _timed(partial(_send_all, plain, plain_topic, keys[chunk], values[chunk]))
            if i >= 3:
                for part, ms in parts.items():
                    lat.millis[part].append(ms)
                lat.millis["plain"].append(plain_ms)
    return lat


def _producer(lp: LocalPlatform, path: str, timer: CallTimer, **options: Any) -> Producer:
    if path == "http":
        return Producer(lp.start_gateway(), linger_ms=5, **options)
    engine = Engine(timer.attach(lp.client("dynamodb")), lp.client("s3"), lp.names)
    return Producer(transport=engine, linger_ms=5, **options)


def _one_transaction(producer: Producer, topic: str, keys: list[bytes],
                     values: list[bytes]) -> dict[str, float]:
    begin = _timed(producer.begin_transaction)
    send = _timed(partial(_send_all, producer, topic, keys, values))
    commit = _timed(producer.commit_transaction)
    return {"begin": begin, "send": send, "commit": commit, "total": begin + send + commit}


def _send_all(producer: Producer, topic: str, keys: list[bytes], values: list[bytes]
              ) -> None:
    futures = [producer.send(topic, v, key=k) for k, v in zip(keys, values, strict=True)]
    producer.flush()
    for future in futures:
        future.get(timeout=60)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


# ---- consume-transform-produce ----------------------------------------------------------


@dataclass
class LoopRun:
    """One loop's pass over the input."""

    loop: str
    records: int
    seconds: float
    polls: int
    commits: int
    retried: int = 0
    bill: Bill = field(default_factory=Bill)
    """Every request of the pass, its group join, heartbeats and offset commits included."""
    failed: int = 0
    """Requests that failed (a lost condition, say): billed by AWS, not booked here."""

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def fill_input(endpoint: str, records: int, partitions: int = 4) -> str:
    """A new input topic holding ``records`` ~100 B keyed records."""
    topic = _name("ctp-in")
    Admin(endpoint).create_topic(topic, partitions)
    with Producer(endpoint) as producer:
        for key, value in zip(make_keys(records, seed=17), make_values("100 B", records,
                                                                        seed=19), strict=True):
            producer.send(topic, value, key=key)
        producer.flush()
    return topic


def _transform(record: Record, out: str) -> Iterator[processing.Output]:
    """The work both loops do per record: one output, the value upper-cased."""
    value = record.value if isinstance(record.value, bytes) else b""
    yield processing.Output(out, value.upper(), key=record.key)


class Booked:
    """Engines whose DynamoDB and S3 requests one ledger books (while ``phase`` is set)."""

    def __init__(self, lp: LocalPlatform) -> None:
        self.lp = lp
        self.ledger = new_ledger(lp)

    def engine(self) -> Engine:
        ddb, s3 = self.lp.client("dynamodb"), self.lp.client("s3")
        self.ledger.attach(ddb, s3)
        return Engine(ddb, s3, self.lp.names)

    def consumer(self, topic: str) -> Consumer:
        return Consumer(topic, transport=self.engine(), group_id=_name("group"),
                        enable_auto_commit=False, auto_offset_reset="earliest")

    def bill(self) -> tuple[Bill, int]:
        """What was booked, and how many requests failed (not booked)."""
        return self.ledger.bills.get(LOOP, Bill()), len(self.ledger.errors)


def exactly_once(lp: LocalPlatform, source: str, records: int, partitions: int = 4
                 ) -> LoopRun:
    """``processing.run`` one poll at a time until every input record is committed."""
    out = _name("ctp-eos")
    Admin(lp.endpoint).create_topic(out, partitions)
    booked = Booked(lp)
    consumer = booked.consumer(source)
    done = polls = commits = retried = 0
    with Producer(transport=booked.engine(), transactional_id=_name("eos")) as producer:
        booked.ledger.phase = LOOP
        producer.init_transactions()
        started = time.perf_counter()
        while done < records:
            stats = processing.run(consumer, producer, lambda r: _transform(r, out),
                                   poll_timeout=0.2, max_polls=1)
            if done == 0 and stats.records == 0:
                started = time.perf_counter()  # still joining: not timed
            done, polls = done + stats.records, polls + stats.polls
            commits, retried = commits + stats.committed, retried + stats.retried
        seconds = time.perf_counter() - started
        booked.ledger.phase = None
    consumer.close()
    return LoopRun("exactly once (processing.run)", done, seconds, polls, commits, retried,
                   *booked.bill())


def at_least_once(lp: LocalPlatform, source: str, records: int, partitions: int = 4
                  ) -> LoopRun:
    """poll, send each output, flush, commit the offsets; until every record is done."""
    out = _name("ctp-alo")
    Admin(lp.endpoint).create_topic(out, partitions)
    booked = Booked(lp)
    consumer = booked.consumer(source)
    done = polls = commits = 0
    with Producer(transport=booked.engine()) as producer:
        booked.ledger.phase = LOOP
        started = time.perf_counter()
        while done < records:
            batch = consumer.poll(timeout=0.2)
            polls += 1
            if not batch:
                if done == 0:
                    started = time.perf_counter()
                continue
            for record in batch:
                for output in _transform(record, out):
                    producer.send(*output)
            producer.flush()
            consumer.commit()
            done, commits = done + len(batch), commits + 1
        seconds = time.perf_counter() - started
        booked.ledger.phase = None
    consumer.close()
    return LoopRun("at least once (poll, send, flush, commit)", done, seconds, polls, commits,
                   0, *booked.bill())


def measure_loops(lp: LocalPlatform, records: int, rounds: int) -> list[LoopRun]:
    """``rounds`` passes of each loop over one input, alternating which goes first."""
    source = fill_input(lp.endpoint, records)
    runs: list[LoopRun] = []
    loops = (exactly_once, at_least_once)
    for r in range(rounds):
        for loop in loops if r % 2 == 0 else loops[::-1]:
            runs.append(loop(lp, source, records))
    return runs
