"""The processes of the transactional pipeline scenario (:mod:`tests.chaos.txn_scenario`):
their fault plans, an engine that records their transaction calls, the pauses they play,
and the processor slots that run ``streamlet.processing.run`` incarnation after
incarnation."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamlet import Consumer, Producer, processing
from streamlet.engine import Engine
from streamlet.errors import CommitFailed, ProducerFenced, StreamletError, TransactionAborted
from streamlet.groups.membership import Membership
from streamlet.local import LocalPlatform
from streamlet.processing import Output as Out
from streamlet.records import ProducerIdentity, Record, TransactionInfo
from tests.harness.faults import Fault, FaultPlan, FaultRates, SimulatedCrash, install
from tests.harness.txn_history import Input, Output, TxnHistory, TxnId

if TYPE_CHECKING:
    from tests.chaos.txn_scenario import PipelineScenario

PARTITIONS, SINK_PARTITIONS, RECORDS, KEYS = 4, 2, 400, 16
PROCESSORS = 3
TIMEOUT_MS, SESSION_MS = 2000, 1500
MOVED_ZOMBIE_TIMEOUT_MS = 15_000
"""The last processor's: its zombie (paused before it sent anything in its transaction,
so it blocks no reader) resumes while its transaction is still open, and its commit
meets the moved leases, not the timeout."""
FAULTS = FaultRates(throttle=0.02, timeout_before=0.01, lost_ack=0.02, ambiguous_500=0.01,
                    crash_before=0.001, crash_after=0.001)
"""Per request of a processor; the reader's have no crashes."""
READ_FAULTS = FaultRates(throttle=0.02, timeout_before=0.01, lost_ack=0.02, ambiguous_500=0.01)


def expected(record: Input) -> Iterable[str]:
    """The sinks an input writes to: ``a`` always, ``b`` for even offsets."""
    return ("a", "b") if record.offset % 2 == 0 else ("a",)


class ProcessPlan(FaultPlan):
    """A process's faults: seeded random ones, and a crash armed at the n-th request one
    thread sends. After any crash the process is dead: every request of it crashes
    before it is sent (a dead process neither aborts, closes nor beats). A process that
    plays a :class:`Pause` is ``spared`` random crashes from then on: its part (fenced,
    aborted, timed out) is scripted, and a crash would give it another one."""

    def __init__(self, seed: int, rates: FaultRates, fired: list[tuple[int, Fault]]) -> None:
        super().__init__(seed=seed, rates=rates)
        self.dead = self.spared = False
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
        if self.spared and fault in ("crash_before", "crash_after"):
            fault = "ok"
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
            stats = processing.run(consumer, producer, self._fn(engine, consumer, producer),
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
            self._die(plan, consumer, producer)
            # a replaced zombie that dies is not restarted: its replacement already runs
            return self._mine() is None
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

    def _fn(self, engine: RecordingEngine, consumer: Consumer, producer: Producer
            ) -> Callable[[Record], list[Out]]:
        last: list[TxnId] = []

        def transform(record: Record) -> list[Out]:
            txn = producer._txn
            assert txn is not None and txn.who is not None
            tag = (self.tid, txn.who.epoch, txn.number)
            pause = self._pending("send", "first") if last[-1:] != [tag] \
                else self._pending("send")
            last[:] = [tag]
            if pause is not None:
                self._pause(engine, consumer, tag, pause)
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
            self._pause(engine, engine.consumer, txn, pause)
        crash, self.crash = self.crash, None
        if crash is not None and isinstance(engine.plan, ProcessPlan):
            engine.plan.arm(*crash)

    def _after_commit(self, txn: TxnId, outcome: str) -> None:
        for pause in self.pauses:
            if pause.txn == txn and not pause.outcome:
                pause.outcome = outcome

    def _pause(self, engine: RecordingEngine, consumer: Consumer | None, txn: TxnId,
               pause: Pause) -> None:
        with self.s.lock:
            if pause.thread is not None:
                return  # another process of this slot got there first
            pause.thread, pause.txn = threading.get_ident(), txn
        if isinstance(engine.plan, ProcessPlan):
            engine.plan.spared = True
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
