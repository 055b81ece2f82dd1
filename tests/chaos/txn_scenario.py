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

import contextlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streamlet import Consumer, Producer, processing
from streamlet.engine import Engine
from streamlet.errors import CommitFailed, ProducerFenced, StreamletError, TransactionAborted
from streamlet.groups.membership import Membership
from streamlet.local import LocalPlatform
from streamlet.processing import Output as Out
from streamlet.records import ProducerIdentity, Record, TransactionInfo
from tests.chaos.txn_reader import Reader, drain, drain_records
from tests.harness.faults import Fault, FaultPlan, FaultRates, SimulatedCrash, install
from tests.harness.txn_history import Input, OutKey, Output, TxnHistory, TxnId

PARTITIONS, SINK_PARTITIONS, RECORDS, KEYS = 4, 2, 400, 16
PROCESSORS = 3
TIMEOUT_MS, SESSION_MS = 2000, 1500
STALL_LIMIT = TIMEOUT_MS / 1000 + 3.0
MOVED_ZOMBIE_TIMEOUT_MS = 15_000
"""The last processor's: its zombie (paused before it sent anything in its transaction,
so it blocks no reader) resumes while its transaction is still open, and its commit
meets the moved leases, not the timeout."""
FAULTS = FaultRates(throttle=0.02, timeout_before=0.01, lost_ack=0.02, ambiguous_500=0.01,
                    crash_before=0.001, crash_after=0.001)
"""Per request of a processor; the reader's have no crashes."""
READ_FAULTS = FaultRates(throttle=0.02, timeout_before=0.01, lost_ack=0.02, ambiguous_500=0.01)
COMMIT_CRASHES: tuple[tuple[int, Fault], ...] = tuple(
    (n, kind) for n in range(2) for kind in ("crash_before", "crash_after"))
"""(n, kind): crash before/after the n-th AWS request of a commit (TransactWriteItems,
then the read of the committed record)."""


def expected(record: Input) -> Iterable[str]:
    """The sinks an input writes to: ``a`` always, ``b`` for even offsets."""
    return ("a", "b") if record.offset % 2 == 0 else ("a",)


class ProcessPlan(FaultPlan):
    """A process's faults: seeded random ones, and a crash armed at the n-th request one
    thread sends. After any crash the process is dead: every request of it crashes
    before it is sent (a dead process neither aborts, closes nor beats)."""

    def __init__(self, seed: int, rates: FaultRates, fired: list[tuple[int, Fault]]) -> None:
        super().__init__(seed=seed, rates=rates)
        self.dead = False
        self._armed: list[Any] | None = None  # [thread, n, fault, requests seen]
        self.fired = fired

    def arm(self, n: int, fault: Fault) -> None:
        self._armed = [threading.get_ident(), n, fault, 0]

    def disarm(self) -> None:
        self._armed = None

    def _next_fault(self) -> Fault:  # called under the plan's lock
        if self.dead:
            return "crash_before"
        armed = self._armed
        fault = super()._next_fault()
        if armed is not None and armed[0] == threading.get_ident():
            if armed[3] == armed[1]:
                fault, self._armed = armed[2], None
                self.fired.append((armed[1], armed[2]))
            else:
                armed[3] += 1
        if fault in ("crash_before", "crash_after"):
            self.dead = True
        return fault


class RecordingEngine(Engine):
    """A process's engine: its transaction calls go into the history; ``before_commit``
    may arm a crash or pause the commit (a zombie)."""

    def __init__(self, platform: LocalPlatform, plan: FaultPlan, history: TxnHistory,
                 before_commit: Callable[[RecordingEngine, TxnId], None] | None = None
                 ) -> None:
        super().__init__(install(platform.client("dynamodb"), plan),
                         install(platform.client("s3"), plan), platform.names)
        self.plan, self.history, self.before_commit = plan, history, before_commit
        self.consumer: Consumer | None = None
        self.after_commit: Callable[[TxnId, str], None] | None = None

    def init_transactions(self, transactional_id: str, timeout_ms: int = TIMEOUT_MS
                          ) -> ProducerIdentity:
        who = super().init_transactions(transactional_id, timeout_ms)
        self.history.init(transactional_id, who.epoch)
        return who

    def commit_transaction(self, who: ProducerIdentity, number: int, batches: Any,
                           offsets: Any = None, groups: Any = None) -> TransactionInfo:
        txn = (who.transactional_id, who.epoch, number)
        if self.before_commit is not None:
            self.before_commit(self, txn)
        invoked = self.history.now()
        outcome = "unknown"
        try:
            info = self._ended(txn, "commit", invoked, lambda: super(
                RecordingEngine, self).commit_transaction(who, number, batches, offsets,
                                                          groups))
            outcome = info.status
            return info
        except ProducerFenced:
            outcome = "fenced"
            raise
        except (TransactionAborted, CommitFailed):
            outcome = "aborted"
            raise
        finally:
            if self.after_commit is not None:
                self.after_commit(txn, outcome)

    def abort_transaction(self, who: ProducerIdentity, number: int) -> TransactionInfo:
        txn = (who.transactional_id, who.epoch, number)
        return self._ended(txn, "abort", self.history.now(),
                           lambda: super(RecordingEngine, self).abort_transaction(who, number))

    def _ended(self, txn: TxnId, call: str, invoked: float,
               run: Callable[[], TransactionInfo]) -> TransactionInfo:
        try:
            info = run()
        except ProducerFenced:
            self.history.ended(txn, call, invoked, "fenced")
            raise
        except (TransactionAborted, CommitFailed):
            self.history.ended(txn, call, invoked, "aborted")
            raise
        except BaseException:
            self.history.ended(txn, call, invoked, "unknown")
            raise
        finally:
            if isinstance(self.plan, ProcessPlan):
                self.plan.disarm()
        self.history.ended(txn, call, invoked, info.status)
        return info


@dataclass
class Pause:
    """A pause to play once, by the next process of a slot that gets there: ``where`` is
    "send" (before any record's outputs), "first" (before a transaction's first record's:
    nothing of it is in any log yet) or "commit" (before the commit is sent). ``kind``:

    - "replaced": a zombie; its heartbeats stop, a replacement with the same
      transactional id starts and inits, then it resumes (its transaction was aborted by
      that init: its sends and commit meet ProducerFenced);
    - "bumped": a zombie whose commit is delayed across an epoch bump: it goes on
      beating (its leases stay its own) and sends its commit as soon as a replacement's
      ``init_transactions`` returned, before that replacement begins anything;
    - "moved": a zombie whose partitions only move in the group: it resumes once none is
      its own, before its transaction times out (CommitFailed on the leases);
    - "slow": heartbeats go on, the function is slower than transaction_timeout_ms (the
      commit is refused, TransactionAborted, and the poll is processed again).
    """

    where: str
    kind: str
    thread: int | None = None
    """The paused process's thread (set when the pause begins)."""
    txn: TxnId | None = None
    """The transaction it was in when paused."""
    resumed: bool = False
    outcome: str = ""
    """How that transaction's commit ended for it: committed, aborted, fenced."""
    late_sends: list[str] = field(default_factory=list)
    """Outputs a replaced zombie sent after it resumed (none may ever be stored)."""


class Processor:
    """One processor slot (one transactional id): incarnations, one after another."""

    def __init__(self, scenario: PipelineScenario, slot: int) -> None:
        self.s, self.slot = scenario, slot
        self.tid = f"{scenario.topic}-p{slot}"
        self.timeout_ms = TIMEOUT_MS if slot < PROCESSORS - 1 else MOVED_ZOMBIE_TIMEOUT_MS
        self.incarnations = itertools.count()
        self.crash: tuple[int, Fault] | None = None
        self.pauses: list[Pause] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        thread = threading.Thread(target=self.loop, daemon=True, name=self.tid)
        self.threads.append(thread)
        thread.start()

    def loop(self) -> None:
        while not self.s.stop.is_set():
            if not self.incarnation(next(self.incarnations)):
                return

    def incarnation(self, n: int) -> bool:
        """Run one process until it stops (False) or dies (True: start the next)."""
        plan = ProcessPlan(self.s.seed * 1000 + self.slot * 100 + n, FAULTS, self.s.fired)
        engine = RecordingEngine(self.s.platform, plan, self.s.history, self._before_commit)
        with self.s.lock:
            self.s.plans.append(plan)
        consumer: Consumer | None = None
        producer: Producer | None = None
        try:
            producer = Producer(transport=engine, transactional_id=self.tid, linger_ms=2,
                                transaction_timeout_ms=self.timeout_ms, retry_backoff_ms=10,
                                delivery_timeout_ms=10_000)
            producer.init_transactions()  # first thing: older instances are fenced at once
            consumer = Consumer(self.s.input, transport=engine, group_id=self.s.group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=SESSION_MS, max_poll_records=8,
                                fetch_max_wait_ms=50, isolation_level="read_committed")
            engine.consumer, engine.after_commit = consumer, self._after_commit
            stats = processing.run(consumer, producer, self._fn(consumer, producer),
                                   poll_timeout=0.1, stop=self.s.stop)
            self.s.count(retried=stats.retried, committed=stats.committed)
        except ProducerFenced:
            mine = self._mine()
            if mine is not None:
                mine.outcome = "fenced"
                _close(consumer, producer)  # it exits: its replacement runs meanwhile
                return False
            self.s.count(fenced_unexpectedly=1)
            return self._die(plan, consumer, producer)
        except (SimulatedCrash, StreamletError) as error:
            self.s.count(**{type(error).__name__: 1})
            return self._die(plan, consumer, producer)
        consumer.close()
        producer.close()
        return False

    def _die(self, plan: ProcessPlan, consumer: Consumer | None,
             producer: Producer | None) -> bool:
        plan.dead = True
        if consumer is not None and consumer._group is not None:
            consumer._group._stop.set()
        if producer is not None:
            producer._die(SimulatedCrash("the process died"))
        return True

    def _mine(self) -> Pause | None:
        """The replaced zombie this thread plays, if any."""
        me = threading.get_ident()
        return next((p for p in self.pauses
                     if p.thread == me and p.kind in ("replaced", "bumped")), None)

    def _pending(self, *where: str) -> Pause | None:
        return next((p for p in self.pauses if p.thread is None and p.where in where), None)

    def _fn(self, consumer: Consumer, producer: Producer) -> Callable[[Record], list[Out]]:
        last: list[TxnId] = []

        def transform(record: Record) -> list[Out]:
            txn = producer._txn
            assert txn is not None and txn.who is not None
            tag = (self.tid, txn.who.epoch, txn.number)
            pause = self._pending("send", "first") if last[-1:] != [tag] \
                else self._pending("send")
            last[:] = [tag]
            if pause is not None:
                self._pause(consumer, tag, pause)
            key = (record.key or b"").decode()
            outs = [Out(f"{self.s.topic}-{sink}", Output(tag, sink, (record.partition,
                                                                     record.offset),
                                                         key).encode(), key)
                    for sink in expected(Input(record.partition, record.offset, key, ""))]
            zombie = self._mine()
            if zombie is not None and not zombie.outcome:
                zombie.late_sends += [str(o.value) for o in outs]
            return outs
        return transform

    def _before_commit(self, engine: RecordingEngine, txn: TxnId) -> None:
        pause = self._pending("commit")
        if pause is not None:
            self._pause(engine.consumer, txn, pause)
        crash, self.crash = self.crash, None
        if crash is not None and isinstance(engine.plan, ProcessPlan):
            engine.plan.arm(*crash)

    def _after_commit(self, txn: TxnId, outcome: str) -> None:
        for pause in self.pauses:
            if pause.txn == txn and not pause.outcome:
                pause.outcome = outcome

    def _pause(self, consumer: Consumer | None, txn: TxnId, pause: Pause) -> None:
        with self.s.lock:
            if pause.thread is not None:
                return  # another process of this slot got there first
            pause.thread, pause.txn = threading.get_ident(), txn
        group = consumer._group if consumer is not None else None
        if pause.kind == "slow":
            time.sleep(self.timeout_ms / 1000 + 0.5)
            pause.resumed = True
            return
        if group is not None and pause.kind != "bumped":
            group._suspend_heartbeats(True)
        if pause.kind in ("replaced", "bumped"):
            self.start()  # the supervisor's replacement, same transactional id
        if pause.kind != "bumped":
            time.sleep(1.5 * SESSION_MS / 1000)
        deadline = time.monotonic() + 10
        while not self._taken_over(group, txn[1], pause) and time.monotonic() < deadline:
            time.sleep(0.1)
        pause.resumed = True
        if group is not None:
            group._suspend_heartbeats(False)

    def _taken_over(self, group: Membership | None, epoch: int, pause: Pause) -> bool:
        if pause.kind in ("replaced", "bumped"):
            return any(i.tid == self.tid and i.epoch > epoch for i in self.s.history.inits)
        assert group is not None
        leases = self.s.platform.engine().groups.snapshot(self.s.group).leases.values()
        return all(lease.owner != group.member_id for lease in leases)


def _close(consumer: Consumer | None, producer: Producer | None) -> None:
    """Leave the group and close, as a process told it is fenced does."""
    for closing in (consumer, producer):
        if closing is not None:
            with contextlib.suppress(StreamletError):
                closing.close()


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
        """Crash before and after each AWS request of a commit, each in turn, on the
        processors in turn (each time a replacement takes over)."""
        for i, crash in enumerate(COMMIT_CRASHES):
            processor = self.processors[i % PROCESSORS]
            deadline = time.monotonic() + 8
            while crash not in self.fired and time.monotonic() < deadline:
                processor.crash = crash
                time.sleep(0.1)
            processor.crash = None
            time.sleep(0.5)

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
    processed = s.wait_processed(timeout=45)
    s.phases["processed"] = time.monotonic()
    s.count(unprocessed=0 if processed else 1)
    time.sleep(0.5)  # a few more observations of the end state
    s.stop.set()
    for processor in s.processors:
        for thread in processor.threads:
            thread.join(timeout=20)
    reader.stop.set()
    reading.join(timeout=20)
    s.phases["stopped"] = time.monotonic()
    return s.final(reader, started)
