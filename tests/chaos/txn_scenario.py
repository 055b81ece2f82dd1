"""R9: a consume-transform-produce pipeline with transactions, under faults, crashes,
zombies and rebalances, history-checked (invariant 9).

An input topic of 4 partitions is fed while 3 processors of one consumer group run
``streamlet.processing.run``: every input writes one output to sink ``a`` and, for even
offsets, one to sink ``b`` (2 partitions each), keyed by the input's key, in one
transaction per poll with the input offsets. Every AWS request of a processor may be
throttled, dropped, applied with its reply lost, applied and answered 500, or (rarely)
crash the process; and the processes crash before and after each AWS request of a
commit in turn. A crashed process sends nothing more (no abort, no close, no
heartbeat); a replacement with the same transactional id takes over. A third processor
joins late (a rebalance). Pauses (:class:`Pause`): a zombie paused inside its
transaction past its session while a replacement takes over its transactional id, a
zombie whose commit is delayed across the epoch bump of a replacement, a zombie whose
partitions only move in the group, and a function slower than transaction_timeout_ms.
Two transactions are abandoned on purpose in every output partition (never committed,
never aborted, ids never reused): only their timeout ends them. A read_committed reader
tails the outputs (:mod:`tests.chaos.txn_reader`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

from streamlet import Producer
from streamlet.engine import Engine
from streamlet.local import LocalPlatform
from tests.chaos.txn_process import (
    KEYS,
    PARTITIONS,
    PROCESSORS,
    READ_FAULTS,
    RECORDS,
    SINK_PARTITIONS,
    TIMEOUT_MS,
    Pause,
    Processor,
    RecordingEngine,
)
from tests.chaos.txn_reader import Reader, drain, drain_records
from tests.harness.faults import Fault, FaultPlan, SimulatedCrash, install
from tests.harness.txn_history import Input, OutKey, Output, TxnHistory, TxnId

STALL_LIMIT = TIMEOUT_MS / 1000 + 3.0
"""How long the reader may wait behind what it saw: transaction_timeout_ms + slack."""
COMMIT_CRASHES: tuple[tuple[int, Fault], ...] = tuple(
    (n, kind) for n in range(2) for kind in ("crash_before", "crash_after"))
"""(n, kind): crash before/after the n-th AWS request of a commit (TransactWriteItems,
then the read of the committed record)."""


@dataclass
class Outcome:
    history: TxnHistory
    inputs: list[Input]
    drain: dict[OutKey, list[tuple[int, str]]]
    uncommitted: dict[OutKey, list[tuple[int, str]]]
    committed: dict[int, int]
    statuses: dict[TxnId, str]
    reasons: dict[TxnId, str]
    pauses: list[Pause]
    fired: list[tuple[int, Fault]]
    counts: Counter[str]
    faults: Counter[str]
    observations: int
    seconds: float
    phases: dict[str, float]


class PipelineScenario:
    def __init__(self, platform: LocalPlatform, topic: str, seed: int) -> None:
        self.platform, self.topic, self.seed = platform, topic, seed
        self.input, self.group = f"{topic}-in", f"{topic}-g"
        self.outputs: list[OutKey] = [(f"{topic}-{sink}", p) for sink in ("a", "b")
                                      for p in range(SINK_PARTITIONS)]
        self.history = TxnHistory()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.fired: list[tuple[int, Fault]] = []
        self.counts: Counter[str] = Counter()
        self.phases: dict[str, float] = {}
        self.pauses: list[Pause] = []
        self.read_plan = FaultPlan(seed=seed * 1000 + 999, rates=READ_FAULTS)
        self.plans: list[FaultPlan] = [self.read_plan]
        self.processors = [Processor(self, slot) for slot in range(PROCESSORS)]
        engine = platform.engine()
        engine.create_topic(self.input, PARTITIONS)
        for sink in ("a", "b"):
            engine.create_topic(f"{topic}-{sink}", SINK_PARTITIONS)

    def pause(self, slot: int, pause: Pause) -> None:
        self.pauses.append(pause)
        self.processors[slot].pauses.append(pause)

    def reader_engine(self) -> Engine:
        return Engine(install(self.platform.client("dynamodb"), self.read_plan),
                      install(self.platform.client("s3"), self.read_plan), self.platform.names)

    def count(self, **counts: int) -> None:
        with self.lock:
            self.counts.update(counts)

    def committed(self, engine: Engine) -> dict[int, int]:
        leases = engine.groups.snapshot(self.group).leases
        return {tp.partition: lease.committed or 0 for tp, lease in leases.items()}

    def feed(self) -> None:
        """The input records, over about 3 s; key k always in partition k % 4."""
        with Producer(transport=self.platform.engine(), linger_ms=5) as producer:
            for i in range(RECORDS):
                producer.send(self.input, f"in-{i}", key=f"k{i % KEYS}",
                              partition=i % KEYS % PARTITIONS)
                if i % 20 == 19:
                    time.sleep(0.15)

    def abandon(self, n: int) -> None:
        """Open a transaction, write to every output partition, and vanish."""
        engine = RecordingEngine(self.platform, FaultPlan(), self.history)
        producer = Producer(transport=engine, transactional_id=f"{self.topic}-abandoned-{n}",
                            transaction_timeout_ms=TIMEOUT_MS, linger_ms=0)
        producer.init_transactions()
        producer.begin_transaction()
        txn = producer._txn
        assert txn is not None and txn.who is not None
        tag = (txn.transactional_id, txn.who.epoch, txn.number)
        for topic, partition in self.outputs:
            sink = topic.rsplit("-", 1)[1]
            producer.send(topic, Output(tag, sink).encode(), partition=partition)
        producer.flush()
        producer._die(SimulatedCrash("abandoned"))

    def crash_commits(self) -> None:
        """Crash before and after each AWS request of a commit, each in turn, in the next
        processor to commit (each time a replacement takes over)."""
        for crash in COMMIT_CRASHES:
            deadline = time.monotonic() + 10
            while crash not in self.fired and time.monotonic() < deadline:
                for processor in self.processors:
                    processor.crash = crash
                time.sleep(0.05)
            for processor in self.processors:
                processor.crash = None
            time.sleep(0.5)

    def settle(self) -> None:
        """What a supervisor restarting each processor once more does first: init its
        transactional id, which aborts a transaction a crash left open just now."""
        for processor in self.processors:
            engine = RecordingEngine(self.platform, FaultPlan(), self.history)
            engine.init_transactions(processor.tid, processor.timeout_ms)

    def wait_processed(self, timeout: float) -> bool:
        engine = self.platform.engine()
        ends = {p: engine.watermarks(self.input, p)[1] for p in range(PARTITIONS)}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.committed(engine) == ends:
                return True
            time.sleep(0.2)
        return False

    def final(self, reader: Reader, started: float) -> Outcome:
        engine = self.platform.engine()
        inputs = [Input(p, r.offset, (r.key or b"").decode(), (r.value or b"").decode())
                  for p in range(PARTITIONS)
                  for r in drain_records(engine, (self.input, p), "read_committed")]
        listed = {(t.transactional_id, t.epoch, t.number): t
                  for t in engine.list_transactions(include_ended=True)
                  if t.transactional_id.startswith(self.topic)}
        return Outcome(self.history, inputs,
                       {k: drain(engine, k, "read_committed") for k in self.outputs},
                       {k: drain(engine, k, "read_uncommitted") for k in self.outputs},
                       self.committed(engine), {k: t.status for k, t in listed.items()},
                       {k: t.reason for k, t in listed.items()},
                       self.pauses,
                       list(self.fired), self.counts, self._faults(),
                       reader.observations, time.monotonic() - started,
                       {k: round(v - started, 1) for k, v in self.phases.items()})

    def _faults(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for plan in self.plans:
            total.update(plan.counts())
        return total


def run_pipeline(platform: LocalPlatform, topic: str, seed: int) -> Outcome:
    s = PipelineScenario(platform, topic, seed)
    reader = Reader(s.reader_engine(), s.history, s.outputs, s.committed)
    started = time.monotonic()
    feeding = threading.Thread(target=s.feed, daemon=True)
    reading = threading.Thread(target=reader.run, daemon=True)
    for thread in (feeding, reading):
        thread.start()
    s.processors[0].start()
    s.processors[1].start()
    time.sleep(1.0)
    s.processors[2].start()  # joins late: a rebalance
    s.abandon(0)
    s.crash_commits()
    s.phases["crashed"] = time.monotonic()
    s.pause(0, Pause("send", "replaced"))
    time.sleep(0.5)
    s.pause(1, Pause("commit", "bumped"))
    s.abandon(1)
    time.sleep(0.5)
    s.pause(2, Pause("first", "moved"))
    s.pause(0, Pause("first", "slow"))
    feeding.join(timeout=30)
    s.phases["fed"] = time.monotonic()
    processed = s.wait_processed(timeout=90)  # measured 19 s alone, 37 s on a loaded host
    s.phases["processed"] = time.monotonic()
    s.count(unprocessed=0 if processed else 1)
    s.stop.set()
    for processor in s.processors:
        for thread in processor.threads:
            thread.join(timeout=20)
    s.settle()
    time.sleep(0.5)  # the reader sees the end
    reader.stop.set()
    reading.join(timeout=20)
    s.phases["stopped"] = time.monotonic()
    return s.final(reader, started)
