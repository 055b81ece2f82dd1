"""A history of consumer-group events and the checks of invariant 5 (leases and commits).

Recorded: lease takes (partition, epoch, member), commits (invoked/completed, epoch,
offsets, accepted or refused), deliveries (poll invocation time, records), observed
committed offsets, and kill/handoff times. Checked:

- ``double_owners``: two members took one partition at the same epoch;
- ``stale_commits``: a commit was accepted although a newer epoch of that partition had
  been taken before the commit was invoked;
- ``backwards_commits``: a partition's observed committed offset decreased;
- ``below_commit``: a record was delivered below the partition's last accepted commit
  (completed before the poll began), i.e. redelivered below a commit;
- ``unprocessed``: an acknowledged record never delivered;
- ``slow_handoffs``: a killed member's partitions were not all owned again in time.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from streamlet.records import TopicPartition


@dataclass(frozen=True)
class Take:
    tp: TopicPartition
    epoch: int
    member: str
    done: float


@dataclass(frozen=True)
class Commit:
    member: str
    offsets: dict[TopicPartition, tuple[int, int]]  # tp -> (epoch, offset)
    invoked: float
    done: float
    accepted: bool


@dataclass(frozen=True)
class Delivery:
    member: str
    tp: TopicPartition
    offset: int
    invoked: float


@dataclass
class GroupReport:
    double_owners: list[tuple[TopicPartition, int, set[str]]] = field(default_factory=list)
    stale_commits: list[tuple[Commit, TopicPartition, Take]] = field(default_factory=list)
    backwards_commits: list[tuple[TopicPartition, int, int]] = field(default_factory=list)
    below_commit: list[tuple[Delivery, int]] = field(default_factory=list)
    unprocessed: list[tuple[TopicPartition, int]] = field(default_factory=list)
    slow_handoffs: list[tuple[str, float]] = field(default_factory=list)

    def anomalies(self) -> dict[str, int]:
        return {name: len(value) for name, value in vars(self).items() if value}

    @property
    def ok(self) -> bool:
        return not self.anomalies()


class GroupHistory:
    """Thread-safe recorder for group scenarios."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.takes: list[Take] = []
        self.commits: list[Commit] = []
        self.deliveries: list[Delivery] = []
        self.observed: dict[TopicPartition, list[int]] = defaultdict(list)
        self.handoffs: list[tuple[str, float]] = []

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def take(self, tp: TopicPartition, epoch: int, member: str) -> None:
        with self._lock:
            self.takes.append(Take(tp, epoch, member, self.now()))

    def commit(self, member: str, offsets: dict[TopicPartition, tuple[int, int]],
               invoked: float, accepted: bool) -> None:
        with self._lock:
            self.commits.append(Commit(member, offsets, invoked, self.now(), accepted))

    def deliver(self, member: str, invoked: float, records: list[tuple[TopicPartition, int]]
                ) -> None:
        with self._lock:
            self.deliveries += [Delivery(member, tp, o, invoked) for tp, o in records]

    def observe(self, committed: dict[TopicPartition, int | None]) -> None:
        with self._lock:
            for tp, offset in committed.items():
                if offset is not None:
                    self.observed[tp].append(offset)

    def handoff(self, member: str, seconds: float) -> None:
        with self._lock:
            self.handoffs.append((member, seconds))


def check_group(history: GroupHistory, acked: dict[TopicPartition, int],
                handoff_limit: float) -> GroupReport:
    """``acked``: per partition, the number of acknowledged records (offsets 0..n-1)."""
    report = GroupReport()
    _double_owners(history, report)
    _stale_commits(history, report)
    for tp, seq in history.observed.items():
        report.backwards_commits += [(tp, a, b) for a, b in itertools.pairwise(seq) if b < a]
    _below_commit(history, report)
    delivered = {(d.tp, d.offset) for d in history.deliveries}
    report.unprocessed = [(tp, o) for tp, n in acked.items() for o in range(n)
                          if (tp, o) not in delivered]
    report.slow_handoffs = [(m, s) for m, s in history.handoffs if s > handoff_limit]
    return report


def _double_owners(history: GroupHistory, report: GroupReport) -> None:
    owners: dict[tuple[TopicPartition, int], set[str]] = defaultdict(set)
    for take in history.takes:
        owners[(take.tp, take.epoch)].add(take.member)
    report.double_owners = [(tp, e, m) for (tp, e), m in owners.items() if len(m) > 1]


def _stale_commits(history: GroupHistory, report: GroupReport) -> None:
    for commit in history.commits:
        if not commit.accepted:
            continue
        for tp, (epoch, _) in commit.offsets.items():
            newer = [t for t in history.takes
                     if t.tp == tp and t.epoch > epoch and t.done < commit.invoked]
            if newer:
                report.stale_commits.append((commit, tp, newer[0]))


def _below_commit(history: GroupHistory, report: GroupReport) -> None:
    """Per partition: running maximum of accepted commits by completion time."""
    by_tp: dict[TopicPartition, list[tuple[float, int]]] = defaultdict(list)
    for c in history.commits:
        if c.accepted:
            for tp, (_, off) in c.offsets.items():
                by_tp[tp].append((c.done, off))
    running: dict[TopicPartition, tuple[list[float], list[int]]] = {}
    for tp, entries in by_tp.items():
        entries.sort()
        times, maxima, best = [], [], -1
        for done, off in entries:
            best = max(best, off)
            times.append(done)
            maxima.append(best)
        running[tp] = (times, maxima)
    for d in history.deliveries:
        times, maxima = running.get(d.tp, ([], []))
        i = bisect.bisect_left(times, d.invoked)
        if i and d.offset < maxima[i - 1]:
            report.below_commit.append((d, maxima[i - 1]))
