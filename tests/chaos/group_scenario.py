"""R4: a consumer group under kills, a long pause, skewed clocks and injected AWS faults.

4 members read 8 partitions with at-least-once processing (auto-commit of what the
previous poll returned) while a producer appends. Members are killed (no close: their
heartbeats simply stop) and restarted; one is paused for twice the session timeout and
then resumes as a zombie; clocks are offset by +-5 minutes and one runs 1.5x fast;
every member's DynamoDB/S3 requests may be throttled, dropped, applied-then-lost or
applied-then-500. Takes and commits are recorded by wrapping the transport's group
operations; an observer thread samples committed offsets and hand-off times.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from streamlet import Consumer, Producer, StreamletError
from streamlet.engine import Engine
from streamlet.errors import CommitFailed
from streamlet.groups.leases import Lease
from streamlet.local import LocalPlatform
from streamlet.records import TopicPartition
from tests.harness.faults import FaultPlan, FaultRates, install
from tests.harness.group_history import GroupHistory

MEMBERS, PARTITIONS, GROUP = 4, 8, "chaos-group"
SESSION_S = 2.0
FAULTS = FaultRates(throttle=0.02, timeout_before=0.01, lost_ack=0.02, ambiguous_500=0.01)
CLOCKS = [(-300.0, 1.0), (300.0, 1.0), (0.0, 1.5), (120.0, 1.0)]  # (offset s, rate)


class SkewedClock:
    """This member's monotonic clock: offset and rate differ from the others'."""

    def __init__(self, offset: float, rate: float) -> None:
        self.offset, self.rate = offset, rate

    def monotonic(self) -> float:
        return self.offset + self.rate * time.monotonic()

    def time(self) -> float:
        return self.offset + time.time()


class RecordingGroups:
    """The transport's group operations, recording successful takes and commits."""

    def __init__(self, inner: Any, history: GroupHistory) -> None:
        self._inner, self._history = inner, history

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def take(self, group: str, tp: TopicPartition, member_id: str, seen: Lease) -> Lease | None:
        taken = self._inner.take(group, tp, member_id, seen)
        if taken is not None:
            self._history.take(tp, taken.epoch, member_id)
        return taken

    def commit(self, group: str, member_id: str,
               offsets: dict[TopicPartition, tuple[int, int, str]]) -> None:
        invoked = self._history.now()
        simple = {tp: (epoch, off) for tp, (epoch, off, _) in offsets.items()}
        try:
            self._inner.commit(group, member_id, offsets)
        except CommitFailed:
            self._history.commit(member_id, simple, invoked, accepted=False)
            raise
        self._history.commit(member_id, simple, invoked, accepted=True)


@dataclass
class Slot:
    """One member position in the group: its clock, fault plan and current process."""

    n: int
    clock: SkewedClock
    plan: FaultPlan
    consumer: Consumer | None = None
    paused_until: float = 0.0


class GroupScenario:
    def __init__(self, platform: LocalPlatform, topic: str, seed: int) -> None:
        self.platform, self.topic, self.rng = platform, topic, random.Random(seed)
        self.history = GroupHistory()
        self.slots = [Slot(n, SkewedClock(*CLOCKS[n]), FaultPlan(seed=seed * 10 + n,
                                                                 rates=FAULTS))
                      for n in range(MEMBERS)]
        self.stop = threading.Event()
        self.kills: list[tuple[str, float]] = []
        self.lost: list[tuple[int, list[TopicPartition]]] = []
        self.lock = threading.Lock()

    def _engine(self, plan: FaultPlan) -> Engine:
        engine = Engine(install(self.platform.client("dynamodb"), plan),
                        install(self.platform.client("s3"), plan), self.platform.names)
        engine.groups = RecordingGroups(engine.groups, self.history)  # type: ignore[assignment]
        return engine

    def start(self, slot: Slot) -> None:
        slot.consumer = Consumer(
            self.topic, transport=self._engine(slot.plan), group_id=GROUP,
            auto_offset_reset="earliest", session_timeout_ms=int(SESSION_S * 1000),
            auto_commit_interval_ms=200, max_poll_records=50, clock=slot.clock,
            on_lost=lambda tps, n=slot.n: self.lost.append((n, tps)))

    def kill(self, slot: Slot) -> None:
        """A crash: heartbeats stop, nothing is committed or released."""
        with self.lock:
            victim, slot.consumer = slot.consumer, None
        if victim is not None and victim._group is not None:
            victim._group._stop.set()
            self.kills.append((victim._group.member_id, time.monotonic()))

    def pause(self, slot: Slot, seconds: float) -> None:
        with self.lock:
            if slot.consumer is not None and slot.consumer._group is not None:
                slot.consumer._group._suspend_heartbeats(True)
                slot.paused_until = time.monotonic() + seconds

    def worker(self, slot: Slot) -> None:
        while not self.stop.is_set():
            if slot.consumer is None:
                self.start(slot)
            if time.monotonic() < slot.paused_until:
                time.sleep(0.05)
                continue
            consumer = slot.consumer
            assert consumer is not None and consumer._group is not None
            consumer._group._suspend_heartbeats(False)
            invoked = self.history.now()
            try:
                records = consumer.poll(timeout=0.1)
            except StreamletError:
                continue
            with self.lock:
                if slot.consumer is consumer:  # not killed meanwhile
                    self.history.deliver(consumer._group.member_id, invoked,
                                         [(r.topic_partition, r.offset) for r in records])

    def observer(self) -> None:
        engine = self.platform.engine()
        pending: list[tuple[str, float]] = []
        while not self.stop.is_set():
            snap = engine.groups.snapshot(GROUP)
            self.history.observe({tp: lease.committed for tp, lease in snap.leases.items()})
            pending += self.kills
            self.kills.clear()
            owners = {lease.owner for lease in snap.leases.values()}
            for member, killed in list(pending):
                if member not in owners:
                    self.history.handoff(member, time.monotonic() - killed)
                    pending.remove((member, killed))
            time.sleep(0.05)

    def producer(self, count: int) -> None:
        with Producer(self.platform.endpoint, linger_ms=5) as producer:
            for i in range(count):
                producer.send(self.topic, f"r{i}", key=str(i))
                time.sleep(0.004)

    def chaos(self, seconds: float) -> None:
        """Kill-and-restart a random member every ~2.5 s; pause one member once."""
        deadline = time.monotonic() + seconds
        rounds = 0
        while time.monotonic() < deadline:
            time.sleep(2.5)
            rounds += 1
            if rounds == 2:  # mid-run, while it holds records it has not committed
                self.pause(self.slots[3], 2 * SESSION_S)
            self.kill(self.rng.choice(self.slots[:3]))


def run_group_scenario(platform: LocalPlatform, topic: str, seed: int
                       ) -> tuple[GroupScenario, dict[TopicPartition, int], float]:
    """Returns the scenario (its history), acked records per partition, and seconds."""
    platform.engine().create_topic(topic, PARTITIONS)
    scenario = GroupScenario(platform, topic, seed)
    started = time.monotonic()
    threads = [threading.Thread(target=scenario.worker, args=(s,), daemon=True)
               for s in scenario.slots]
    threads += [threading.Thread(target=scenario.observer, daemon=True)]
    producing = threading.Thread(target=scenario.producer, args=(2000,), daemon=True)
    for t in [*threads, producing]:
        t.start()
    scenario.chaos(seconds=12)
    producing.join(timeout=60)
    for slot in scenario.slots:
        slot.plan.enabled = False  # heal, then drain
    engine = platform.engine()
    acked = {TopicPartition(topic, p): engine.watermarks(topic, p)[1] for p in range(PARTITIONS)}
    _drain(engine, acked)
    scenario.stop.set()
    for t in threads:
        t.join(timeout=10)
    for slot in scenario.slots:
        if slot.consumer is not None:
            slot.consumer.close()
    return scenario, acked, time.monotonic() - started


def _drain(engine: Engine, acked: dict[TopicPartition, int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leases = engine.groups.snapshot(GROUP).leases
        if all((leases[tp].committed or 0) >= n for tp, n in acked.items() if tp in leases):
            return
        time.sleep(0.2)
