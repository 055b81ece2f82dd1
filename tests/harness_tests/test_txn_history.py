"""Self-tests for tests.harness.txn_history: a clean pipeline history passes, and each
planted anomaly is reported."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import pytest

from tests.harness.txn_history import (
    FINAL,
    Input,
    OutKey,
    Output,
    TxnHistory,
    TxnId,
    TxnReport,
    check_txn,
)

SINKS = ("a", "b")
LIMIT = 5.0


def expected(record: Input) -> Iterable[str]:
    """Every input writes to sink a; even offsets to sink b too."""
    return SINKS if record.offset % 2 == 0 else SINKS[:1]


class Sim:
    """A pipeline as the checker expects it to behave, with hooks to misbehave: output
    logs (entries visible, skipped or open), committed offsets and a tailing reader."""

    def __init__(self, per_partition: int = 6) -> None:
        self.h = TxnHistory()
        self.t = 0.0
        self.inputs = [Input(p, o, f"k{(p + o) % 2}", f"v{p}-{o}")
                       for p in range(2) for o in range(per_partition)]
        self.log: dict[OutKey, list[tuple[str, str]]] = {
            (s, p): [] for s in SINKS for p in range(2)}  # (state, value)
        self.committed = {0: 0, 1: 0}
        self.pos = dict.fromkeys(self.log, 0)

    def tick(self, seconds: float = 0.1) -> float:
        self.t += seconds
        return self.t

    def input(self, partition: int, offset: int) -> Input:
        return next(i for i in self.inputs if i.id == (partition, offset))

    def write(self, txn: TxnId, records: list[Input], state: str = "open"
              ) -> list[tuple[OutKey, int]]:
        """Append each record's outputs (one per expected sink) in state ``state``."""
        at = []
        for record in records:
            for sink in expected(record):
                key = (sink, int(record.key[1:]) if record.key else 0)
                value = Output(txn, sink, record.id, record.key).encode()
                self.log[key].append((state, value))
                at.append((key, len(self.log[key]) - 1))
        return at

    def mark(self, at: list[tuple[OutKey, int]], state: str) -> None:
        for key, offset in at:
            self.log[key][offset] = (state, self.log[key][offset][1])

    def move(self, records: list[Input]) -> None:
        for record in records:
            self.committed[record.partition] = max(self.committed[record.partition],
                                                   record.offset + 1)

    def txn(self, txn: TxnId, records: list[Input], outcome: str = "committed") -> None:
        """A transaction done right: outputs, then one commit of outputs and offsets."""
        invoked = self.tick()
        at = self.write(txn, records)
        if outcome == "committed":
            self.mark(at, "visible")
            self.move(records)
        elif outcome in ("aborted", "fenced"):
            self.mark(at, "skipped")
        self.h.ended(txn, "commit", invoked, outcome)

    def observe(self) -> None:
        """The reader: committed offsets, log ends, tail every output partition, committed
        offsets again."""
        before = dict(self.committed)
        ends = {k: len(v) for k, v in self.log.items()}
        rows: dict[OutKey, list[tuple[int, str]]] = defaultdict(list)
        for key, entries in self.log.items():
            while self.pos[key] < len(entries) and entries[self.pos[key]][0] != "open":
                state, value = entries[self.pos[key]]
                if state == "visible":
                    rows[key].append((self.pos[key], value))
                self.pos[key] += 1
        at = self.tick()
        self.h.read(rows, at=at)
        self.h.observe(before, dict(self.committed), dict(self.pos), ends, at,
                       dict.fromkeys(self.pos, at))

    def drain(self) -> dict[OutKey, list[tuple[int, str]]]:
        return {key: [(o, v) for o, (s, v) in enumerate(entries) if s == "visible"]
                for key, entries in self.log.items()}

    def check(self, statuses: dict[TxnId, str] | None = None) -> TxnReport:
        return check_txn(self.h, inputs=self.inputs, drain=self.drain(),
                         committed=self.committed, expected=expected, stall_limit=LIMIT,
                         statuses=statuses)


def clean(sim: Sim) -> Sim:
    """Two processors, a retried (aborted) transaction and a fencing init, all correct."""
    sim.h.init("p0", 0, at=sim.tick())
    sim.h.init("p1", 0, at=sim.tick())
    sim.txn(("p0", 0, 0), [sim.input(0, 0), sim.input(0, 1)])
    sim.observe()
    sim.txn(("p1", 0, 0), [sim.input(1, 0), sim.input(1, 1), sim.input(1, 2)])
    sim.txn(("p0", 0, 1), [sim.input(0, 2)], outcome="aborted")
    sim.observe()
    sim.h.init("p0", 1, at=sim.tick())  # a replacement of p0
    sim.txn(("p0", 1, 0), [sim.input(0, o) for o in range(2, 6)])
    sim.observe()
    sim.txn(("p1", 0, 1), [sim.input(1, o) for o in range(3, 6)])
    sim.observe()
    return sim


def test_a_clean_history_passes() -> None:
    report = clean(Sim()).check()
    assert report.ok, report.summary()
    assert report.strict_observations > 0
    assert "txn history OK" in report.summary()


def test_outputs_encode_their_origin() -> None:
    out = Output(("p", 3, 7), "a", (1, 42), "k1")
    assert Output.decode(out.encode()) == out
    assert Output.decode("not json") is None
    assert Output.decode('{"t": [1]}') is None


def test_a_reader_behind_an_open_transaction_is_not_blamed_for_what_is_behind_it() -> None:
    """The open transaction's batch comes first in the log; a later one commits behind
    it: its inputs are committed, its outputs not readable yet. That is the last stable
    offset doing its job, not an anomaly; once the open one aborts, all is read."""
    sim = Sim()
    blocker = sim.write(("slow", 0, 0), [sim.input(0, 0), sim.input(0, 1)])
    sim.txn(("fast", 0, 0), [sim.input(1, o) for o in range(6)])
    sim.observe()
    sim.tick(2.0)
    sim.observe()  # still held: 2 s after it read those ends
    sim.mark(blocker, "skipped")
    sim.h.ended(("slow", 0, 0), "abort", sim.t, "aborted")
    sim.observe()
    sim.txn(("slow", 0, 1), [sim.input(0, o) for o in range(6)])
    sim.observe()
    report = sim.check()
    assert report.ok, report.summary()
    assert 1.9 < max(report.longest_wait.values()) < LIMIT


def _anomalies(report: TxnReport) -> set[str]:
    return set(report.anomalies())


def test_lost_output() -> None:
    sim = clean(Sim())
    sim.log[("a", 1)] = [e for e in sim.log[("a", 1)]
                         if Output.decode(e[1]).source != (0, 3)]  # type: ignore[union-attr]
    report = sim.check()
    assert ((0, 3), "a") in report.lost
    assert "lost" in _anomalies(report)


def test_duplicate_output() -> None:
    sim = clean(Sim())
    sim.txn(("p1", 0, 2), [sim.input(1, 4)])  # processed again after it was committed
    report = sim.check()
    assert [d[:2] for d in report.duplicates] == [((1, 4), "a"), ((1, 4), "b")]
    assert _anomalies(report) == {"duplicates", "out_of_order"}


def test_output_of_an_aborted_transaction_read() -> None:
    sim = clean(Sim())
    at = sim.write(("p2", 0, 0), [sim.input(0, 5)])
    sim.h.ended(("p2", 0, 0), "abort", sim.tick(), "aborted")
    sim.mark(at, "visible")  # the reader ignores the abort
    sim.observe()
    report = sim.check()
    assert ("aborted_reads") in _anomalies(report)
    assert report.aborted_reads[0] == (("p2", 0, 0), (0, 5))


def test_output_aborted_per_the_final_status_read() -> None:
    """A producer crashed in its commit (outcome unknown): fine if the commit landed,
    an anomaly if the log says that transaction was aborted."""
    sim = clean(Sim(per_partition=7))
    sim.txn(("p0", 1, 1), [sim.input(0, 6)])
    records = [sim.input(1, 6)]
    sim.mark(sim.write(("p1", 0, 2), records), "visible")
    sim.move(records)
    sim.h.ended(("p1", 0, 2), "commit", sim.tick(), "unknown")
    assert sim.check().ok, sim.check().summary()
    report = sim.check({("p1", 0, 2): "aborted"})
    assert _anomalies(report) == {"aborted_reads"}


def test_output_of_a_transaction_never_committed_read() -> None:
    sim = clean(Sim())
    at = sim.write(("abandoned", 0, 0), [sim.input(0, 4)])
    sim.mark(at, "visible")  # read_committed skipped the open check
    sim.observe()
    report = sim.check()
    assert report.uncommitted_reads == [(("abandoned", 0, 0), (0, 4))]
    assert "uncommitted_reads" in _anomalies(report)


def test_a_zombies_commit_after_a_newer_epoch_began() -> None:
    sim = Sim()
    sim.h.init("p0", 0, at=sim.tick())
    sim.txn(("p0", 0, 0), [sim.input(0, o) for o in range(6)])
    sim.h.init("p0", 1, at=sim.tick())
    sim.txn(("p0", 0, 1), [], outcome="committed")  # the old epoch commits again
    sim.txn(("p1", 0, 0), [sim.input(1, o) for o in range(6)])
    report = sim.check()
    assert report.zombie_commits == [(("p0", 0, 1), 1)]
    assert _anomalies(report) == {"zombie_commits"}


def test_output_visible_before_its_input_offset_is_committed() -> None:
    sim = clean(Sim(per_partition=8))
    records = [sim.input(0, 6), sim.input(0, 7)]
    sim.mark(sim.write(("p0", 1, 1), records), "visible")  # outputs first...
    sim.h.ended(("p0", 1, 1), "commit", sim.tick(), "committed")
    sim.observe()
    sim.move(records)  # ... offsets in a second step
    sim.txn(("p1", 0, 2), [sim.input(1, 6), sim.input(1, 7)])
    report = sim.check()
    assert _anomalies(report) == {"output_without_input"}
    assert {(i, s) for _, i, s in report.output_without_input} == {
        ((0, 6), "a"), ((0, 6), "b"), ((0, 7), "a")}


def test_output_committed_without_its_input_offset_at_the_end() -> None:
    sim = clean(Sim(per_partition=7))
    sim.mark(sim.write(("p1", 0, 2), [sim.input(1, 6)]), "visible")
    sim.h.ended(("p1", 0, 2), "commit", sim.tick(), "committed")
    sim.txn(("p0", 1, 1), [sim.input(0, 6)])
    report = sim.check()
    assert (FINAL, (1, 6), "a") in report.output_without_input


def test_input_offset_committed_before_its_output() -> None:
    sim = clean(Sim(per_partition=7))
    records = [sim.input(0, 6)]
    sim.move(records)  # offsets first...
    sim.observe()  # (nothing is open: the reader is at every log end)
    sim.mark(sim.write(("p0", 1, 1), records), "visible")  # ... outputs in a second step
    sim.h.ended(("p0", 1, 1), "commit", sim.t, "committed")
    sim.txn(("p1", 0, 2), [sim.input(1, 6)])
    sim.observe()
    report = sim.check()
    assert _anomalies(report) == {"input_without_output"}
    assert {(i, s) for _, i, s in report.input_without_output} == {
        ((0, 6), "a"), ((0, 6), "b")}


def test_outputs_out_of_input_order_per_key() -> None:
    sim = Sim(per_partition=4)
    sim.txn(("p0", 0, 0), [sim.input(0, 2)])  # key k0: offset 2 before offset 0
    sim.txn(("p0", 0, 1), [sim.input(0, 0), sim.input(0, 1), sim.input(0, 3)])
    sim.txn(("p1", 0, 0), [sim.input(1, o) for o in range(4)])
    report = sim.check()
    assert _anomalies(report) == {"out_of_order"}
    assert report.out_of_order[0][:2] == ("a", "k0")


def test_a_reader_stalled_behind_an_abandoned_transaction() -> None:
    sim = clean(Sim(per_partition=8))
    sim.write(("abandoned", 0, 0), [sim.input(0, 6)])  # never ends
    sim.txn(("p1", 0, 2), [sim.input(1, 6), sim.input(1, 7)])
    for _ in range(8):
        sim.tick(1.0)
        sim.observe()
    report = sim.check()
    assert "stalls" in _anomalies(report)
    assert {key for key, _, _ in report.stalls} == {("a", 0), ("b", 0)}
    assert all(waited > LIMIT for _, _, waited in report.stalls)


def test_unreadable_and_unknown_outputs() -> None:
    sim = clean(Sim())
    sim.log[("a", 0)].append(("visible", "garbage"))
    sim.log[("a", 1)].append(("visible", Output(("p0", 0, 0), "a", (9, 9), "k1").encode()))
    report = sim.check()
    assert len(report.unexpected) == 2


@pytest.mark.parametrize("call,outcome", [("flush", "committed"), ("commit", "maybe")])
def test_the_recorder_refuses_bad_ends(call: str, outcome: str) -> None:
    with pytest.raises(ValueError, match="bad end"):
        TxnHistory().ended(("p", 0, 0), call, 0.0, outcome)
