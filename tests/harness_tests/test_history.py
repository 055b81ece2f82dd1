"""Self-tests for tests.harness.history: a clean history, then one planted anomaly each."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.harness.history import (
    Gap,
    History,
    Key,
    Rec,
    SendType,
    check,
)

T = "t"
P0: Key = (T, 0)
P1: Key = (T, 1)
READER = 10


@dataclass
class Scenario:
    """A history plus the true log it describes (used as the final drain)."""

    h: History = field(default_factory=History)
    log: dict[Key, list[Rec]] = field(default_factory=lambda: {P0: [], P1: []})

    def append(self, key: Key, value: str) -> int:
        """Store ``value`` at the next offset of ``key``'s log."""
        offset = len(self.log[key])
        self.log[key].append((offset, value))
        return offset

    def send_ok(self, producer: str, key: Key, value: str, hide_partition: bool = False) -> int:
        """An acknowledged send that really was stored."""
        op = self.h.invoke_send(producer, producer, T, None if hide_partition else key[1], value)
        offset = self.append(key, value)
        self.h.complete_send(op, "ok", partition=key[1], offset=offset)
        return offset

    def send(self, producer: str, key: Key, value: str, type: SendType, applied: bool) -> None:
        """A send that failed or is indeterminate; ``applied`` says if the log got it."""
        op = self.h.invoke_send(producer, producer, T, key[1], value)
        if applied:
            self.append(key, value)
        self.h.complete_send(op, type, error=TimeoutError("read timeout"))

    def poll(
        self, session: str, key: Key, offsets: range | list[int], hwm: int | None = None
    ) -> None:
        """A poll of ``key`` returning the true records at ``offsets``, in that order."""
        recs = [self.log[key][o] for o in offsets]
        self.h.record_poll(READER, session, {key: recs}, {key: hwm} if hwm is not None else None)


def clean() -> Scenario:
    """Two producers, two partitions, failed and indeterminate sends, one reader."""
    s = Scenario()
    for n in range(4):
        s.send_ok("a", P0, f"a-{n}")
    s.send("a", P0, "a-fail", "fail", applied=False)
    for n in range(3):
        s.send_ok("b", P1, f"b-{n}", hide_partition=True)
    s.send("b", P1, "b-info-seen", "info", applied=True)
    s.send("b", P1, "b-info-lost", "info", applied=False)
    s.poll("r0", P0, range(0, 2), hwm=4)
    s.poll("r0", P0, range(2, 4), hwm=4)
    s.poll("r0", P1, range(0, 4), hwm=4)
    return s


def test_clean_history_reports_nothing() -> None:
    s = clean()
    for report in (check(s.h, final_drain=s.log), check(s.h)):
        assert report.ok, report.summary()
        assert report.anomalies() == {}
        assert report.duplicate_count == 0
        assert report.unseen == []
        assert report.indeterminate_counts == {0: 1, 1: 1}
    assert check(s.h).summary().startswith("history OK")


def test_lost_with_final_drain() -> None:
    s = clean()
    op = s.h.invoke_send("a", "a", T, 0, "a-lost")
    s.h.complete_send(op, "ok", offset=4)  # acked, but the log never kept it
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"lost": 1}
    assert report.lost[0].value == "a-lost"
    assert "lost (1)" in report.summary()


def test_polled_info_send_missing_from_drain_is_lost() -> None:
    s = clean()
    s.send("a", P0, "a-info", "info", applied=True)
    s.poll("r0", P0, [4])
    s.log[P0].pop()  # the drain no longer has it
    assert check(s.h, final_drain=s.log).anomalies() == {"lost": 1}


def test_lost_without_drain_uses_highest_polled_offset() -> None:
    s = clean()
    s.send_ok("a", P0, "a-lost")  # offset 4, never polled
    s.send_ok("a", P0, "a-5")
    s.poll("r1", P0, [5])  # a poll proves offset 5 exists
    report = check(s.h, dense=False)
    assert report.anomalies() == {"lost": 1}
    assert report.lost[0].value == "a-lost"
    assert report.lost[0].offset == 4


def test_unpolled_tail_is_unseen_not_lost() -> None:
    s = clean()
    s.send_ok("a", P0, "a-tail")
    report = check(s.h)
    assert report.ok
    assert [u.value for u in report.unseen] == ["a-tail"]


def test_duplicate() -> None:
    s = clean()
    s.send_ok("a", P0, "a-dup")
    s.append(P0, "a-dup")  # a retry stored it again
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"duplicates": 1}
    assert report.duplicate_count == 1
    assert report.duplicates[0].positions == ((T, 0, 4), (T, 0, 5))


def test_info_send_seen_twice_is_a_duplicate() -> None:
    s = clean()
    s.send("a", P0, "a-info", "info", applied=True)
    s.append(P0, "a-info")
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"duplicates": 1}
    assert report.indeterminate_counts == {0: 1, 1: 1, 2: 1}


def test_inconsistent_offsets() -> None:
    s = clean()
    for value in ("x", "y"):
        s.h.invoke_send("a", "a", T, 0, value)
    s.h.record_poll(READER, "r0", {P0: [(4, "x")]})
    s.h.record_poll(READER + 1, "r1", {P0: [(4, "y")]})
    report = check(s.h)
    assert report.anomalies() == {"inconsistent_offsets": 1}
    assert report.inconsistent_offsets[0].values == ("x", "y")


def test_gap_in_drain_and_in_polls() -> None:
    s = clean()
    op = s.h.invoke_send("a", "a", T, 0, "a-5")
    s.h.complete_send(op, "ok", offset=5)
    s.log[P0].append((5, "a-5"))  # offset 4 was never written
    assert check(s.h, final_drain=s.log).anomalies() == {"gaps": 1}
    assert check(s.h, final_drain=s.log).gaps == [Gap(T, 0, 4, 4)]
    s.h.record_poll(READER, "r0", {P0: [(5, "a-5")]})  # no skip: offset 4 never existed
    assert check(s.h).anomalies() == {"gaps": 1}
    assert check(s.h, dense=False).ok


def test_gap_ranges_collapse() -> None:
    log = {P0: [(0, "v0"), (3, "v3"), (4, "v4"), (7, "v7")]}
    h = History()
    for _, value in log[P0]:
        h.invoke_send("p", "p", T, 0, value)
    assert check(h, final_drain=log).gaps == [Gap(T, 0, 1, 2), Gap(T, 0, 5, 6)]
    truncated = {P0: log[P0][1:]}  # retention removed offsets 0..2
    assert check(h, final_drain=truncated).gaps == [Gap(T, 0, 0, 2), Gap(T, 0, 5, 6)]
    assert check(h, final_drain=truncated, log_start={P0: 3}).gaps == [Gap(T, 0, 5, 6)]


def test_nonmonotonic_send() -> None:
    s = clean()
    first = s.h.invoke_send("a", "a", T, 0, "a-first")
    second = s.h.invoke_send("a", "a", T, 0, "a-second")
    s.h.complete_send(second, "ok", offset=s.append(P0, "a-second"))
    s.h.complete_send(first, "ok", offset=s.append(P0, "a-first"))
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"nonmonotonic_send": 1}
    assert report.nonmonotonic_send[0].earlier == (5, "a-first")
    assert report.nonmonotonic_send[0].later == (4, "a-second")


def test_aborted_read() -> None:
    s = clean()
    s.send("a", P0, "a-failed", "fail", applied=True)
    s.poll("r0", P0, [4])
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"aborted_reads": 1}
    assert report.aborted_reads[0].value == "a-failed"


def test_unexpected_value() -> None:
    s = clean()
    s.append(P0, "ghost")
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"unexpected": 1}
    assert report.unexpected[0].offset == 4


@pytest.mark.parametrize(
    ("polls", "step"),
    [([[0, 1], [3]], (1, 3)), ([[0, 2]], (0, 2))],
    ids=["between", "within"],
)
def test_poll_skip(polls: list[list[int]], step: tuple[int, int]) -> None:
    s = clean()
    for offsets in polls:
        s.poll("r1", P0, offsets)
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"poll_skip": 1}
    assert (report.poll_skip[0].previous, report.poll_skip[0].offset) == step


@pytest.mark.parametrize(
    ("polls", "step"),
    [([[0, 1], [1, 2]], (1, 1)), ([[1, 0]], (1, 0))],
    ids=["between", "within"],
)
def test_nonmonotonic_poll(polls: list[list[int]], step: tuple[int, int]) -> None:
    s = clean()
    for offsets in polls:
        s.poll("r1", P0, offsets)
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"nonmonotonic_poll": 1}
    bad = report.nonmonotonic_poll[0]
    assert (bad.previous, bad.offset) == step


def test_assign_resets_contiguity() -> None:
    s = clean()
    s.poll("r1", P0, [0, 1])
    s.h.record_assign(READER, "r1")
    s.poll("r1", P0, [0, 1])
    s.h.record_assign(READER, "r1")
    s.poll("r1", P0, [3])
    s.h.record_poll(READER + 1, "r1", {P0: [(2, "a-2")]})  # another process, same label
    assert check(s.h, final_drain=s.log).ok


def test_above_hwm() -> None:
    s = clean()
    s.poll("r1", P0, [0, 1, 2], hwm=2)
    report = check(s.h, final_drain=s.log)
    assert report.anomalies() == {"above_hwm": 1}
    assert (report.above_hwm[0].offset, report.above_hwm[0].hwm) == (2, 2)


def test_pending_send_is_indeterminate() -> None:
    s = clean()
    s.h.invoke_send("a", "a", T, 0, "a-crashed")
    s.append(P0, "a-crashed")
    report = check(s.h, final_drain=s.log)
    assert report.ok
    assert report.indeterminate_counts == {0: 1, 1: 2}


def test_completion_errors() -> None:
    h = History()
    op = h.invoke_send(1, "p", T, 0, "v")
    with pytest.raises(ValueError):
        h.complete_send(op, "maybe")  # type: ignore[arg-type]
    h.complete_send(op, "ok", offset=0)
    with pytest.raises(ValueError):
        h.complete_send(op, "ok", offset=0)
    with pytest.raises(KeyError):
        h.complete_send(op + 1, "ok")


def test_to_jsonl(tmp_path: Path) -> None:
    s = clean()
    s.h.record_assign(READER, "r0")
    path = tmp_path / "history.jsonl"
    s.h.to_jsonl(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(len(s.h.events)))
    assert {(r["f"], r["type"]) for r in rows} >= {("send", "invoke"), ("poll", "ok")}
    poll = next(r for r in rows if r["f"] == "poll")
    assert poll["value"] == [[T, 0, [[0, "a-0"], [1, "a-1"]]]]
    assert poll["hwm"] == [[T, 0, 4]]
    assert next(r for r in rows if r["type"] == "info")["error"] == "TimeoutError: read timeout"


def test_recorder_is_thread_safe() -> None:
    h = History()

    def work(p: int) -> None:
        for n in range(200):
            h.complete_send(h.invoke_send(p, f"p{p}", T, 0, f"v-{p}-{n}"), "fail")

    threads = [threading.Thread(target=work, args=(p,)) for p in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.index for e in h.events] == list(range(3200))
    assert check(h).ok


# --------------------------------------------------------------- property: clean => ok

OUTCOMES = ("ok", "fail", "info-applied", "info-lost", "pending")
MODES = ("stay", "stay", "beginning", "anywhere")


@dataclass(frozen=True)
class SendStep:
    producer: int
    part: int
    outcome: str


@dataclass(frozen=True)
class PollStep:
    reader: int
    part: int
    count: int
    mode: str
    start: int


ids = st.integers(0, 2)
steps = st.lists(
    st.one_of(
        st.builds(SendStep, ids, ids, st.sampled_from(OUTCOMES)),
        st.builds(PollStep, ids, ids, st.integers(0, 4), st.sampled_from(MODES), st.integers(0, 9)),
    ),
    max_size=60,
)


@dataclass
class Sim:
    """Drives a History from generated steps against a true in-memory log."""

    h: History = field(default_factory=History)
    logs: dict[Key, list[Rec]] = field(default_factory=dict)
    pos: dict[tuple[int, Key], int] = field(default_factory=dict)
    counter: int = 0
    seeked: bool = False

    def log(self, key: Key) -> list[Rec]:
        return self.logs.setdefault(key, [])

    def send(self, producer: int, part: int, outcome: str) -> None:
        key, value = (T, part), f"v-{producer}-{self.counter}"
        self.counter += 1
        op = self.h.invoke_send(producer, f"p{producer}", T, part if part % 2 else None, value)
        if outcome in ("ok", "info-applied") or (outcome == "pending" and self.counter % 2):
            self.log(key).append((len(self.log(key)), value))
        if outcome == "ok":
            self.h.complete_send(op, "ok", partition=part, offset=len(self.log(key)) - 1)
        elif outcome != "pending":
            self.h.complete_send(op, "fail" if outcome == "fail" else "info", partition=part)

    def poll(self, reader: int, part: int, count: int, mode: str, start: int) -> None:
        key, session = (T, part), f"r{reader}-p{part}"
        log = self.log(key)
        if (reader, key) not in self.pos or mode != "stay":
            self.h.record_assign(reader, session)
            self.seeked |= mode == "anywhere"
            self.pos[(reader, key)] = min(start, len(log)) if mode == "anywhere" else 0
        at = self.pos[(reader, key)]
        self.pos[(reader, key)] = min(at + count, len(log))
        self.h.record_poll(reader, session, {key: log[at : at + count]}, {key: len(log)})


@settings(max_examples=80, deadline=None, database=None)
@given(steps=steps)
def test_random_clean_histories_report_nothing(steps: list[SendStep | PollStep]) -> None:
    sim = Sim()
    for step in steps:
        if isinstance(step, SendStep):
            sim.send(step.producer, step.part, step.outcome)
        else:
            sim.poll(step.reader, step.part, step.count, step.mode, step.start)
    report = check(sim.h, final_drain=sim.logs)
    assert report.ok, report.summary()
    if not sim.seeked:  # without a drain, Jepsen's rules assume readers start at 0
        assert check(sim.h).ok, check(sim.h).summary()


@settings(max_examples=60, deadline=None, database=None)
@given(steps=steps, pick=st.integers(0, 10_000), dup=st.booleans())
def test_random_planted_drain_fault_is_caught(
    steps: list[SendStep | PollStep], pick: int, dup: bool
) -> None:
    """Duplicating any record, or dropping an acked one, in the drain is reported."""
    sim = Sim()
    for step in steps:
        if isinstance(step, SendStep):
            sim.send(step.producer, step.part, "ok")
    records = [(key, rec) for key, recs in sorted(sim.logs.items()) for rec in recs]
    assume(records)
    key, (offset, value) = records[pick % len(records)]
    drain = {k: list(recs) for k, recs in sim.logs.items()}
    if dup:
        drain[key].append((len(drain[key]), value))
        assert check(sim.h, final_drain=drain).anomalies() == {"duplicates": 1}
    else:
        drain[key].remove((offset, value))
        found = check(sim.h, final_drain=drain).anomalies()
        assert found.pop("lost") == 1
        assert found in ({}, {"gaps": 1})
