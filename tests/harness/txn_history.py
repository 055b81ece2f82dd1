"""A history of consume-transform-produce transactions and the checks of invariant 9.

The pipeline reads input records (one input topic; an input is ``(partition, offset)``)
and, per input, writes one output record to each sink topic the test expects, inside
transactions that also commit the input offsets. Every output's value is an
:class:`Output`: the input it came from, its key, its sink and the transaction
(transactional id, epoch, number) that wrote it, so a read output names its origin.

Recorded (:class:`TxnHistory`): ``init_transactions`` calls (epoch, when done), commit and
abort calls (transaction, first invocation, outcome), the reads of a read_committed
tailing reader, and its observations: the committed input offsets, the log end of each
output partition, where the reader stopped tailing each, and the committed input offsets
again. Checked (:func:`check_txn`) against the input log, a final read_committed drain of
the outputs and the final committed offsets:

- ``lost`` / ``duplicates``: an input whose output for a sink appears never / more than
  once in the committed outputs;
- ``aborted_reads``: a read output of a transaction that ended aborted or fenced (by what
  its producer was told, or the transaction's final status);
- ``uncommitted_reads``: a read output of a transaction whose commit was never invoked;
- ``zombie_commits``: a transaction of epoch e committed (or read) although its commit was
  first invoked after an ``init_transactions`` of a newer epoch of its id had returned;
- ``output_without_input``: at an observation (or at the end), an output was visible whose
  input offset was not committed yet (read after the tail);
- ``input_without_output``: at an observation, an input below the committed offset (read
  first) had no visible output in an output partition the reader then read up to the log
  end it read after those offsets (where it waited behind an open transaction, the
  output may be behind it);
- ``out_of_order``: per sink and key, outputs in a different order than their inputs;
- ``stalls``: a fetch that began more than ``stall_limit`` seconds after the reader read
  an output partition's log end still stopped before it (transaction_timeout_ms + slack:
  whatever was below that end belonged to transactions begun before, all past their
  deadline by then);
- ``unexpected``: a read value that is no :class:`Output`, or names no known input.
"""

from __future__ import annotations

import json
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

TxnId = tuple[str, int, int]
"""(transactional id, epoch, number)."""
InputId = tuple[int, int]
"""(input partition, offset)."""
OutKey = tuple[str, int]
"""(output topic, partition)."""
Rows = Mapping[OutKey, Sequence[tuple[int, str]]]
"""Per output partition, (offset, value) rows in the order read."""
ENDED = frozenset({"aborted", "fenced"})


@dataclass(frozen=True)
class Output:
    """What an output record's value says about it."""

    txn: TxnId
    sink: str
    source: InputId | None = None
    """None: not written for an input (a transaction abandoned on purpose)."""
    key: str | None = None

    def encode(self) -> str:
        return json.dumps({"t": list(self.txn), "s": self.sink, "k": self.key,
                           "i": None if self.source is None else list(self.source)})

    @staticmethod
    def decode(value: str) -> Output | None:
        try:
            raw = json.loads(value)
            tid, epoch, number = raw["t"]
            source = None if raw["i"] is None else (int(raw["i"][0]), int(raw["i"][1]))
            return Output((str(tid), int(epoch), int(number)), str(raw["s"]), source, raw["k"])
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Input:
    partition: int
    offset: int
    key: str | None
    value: str

    @property
    def id(self) -> InputId:
        return (self.partition, self.offset)


@dataclass(frozen=True)
class Init:
    tid: str
    epoch: int
    done: float


@dataclass(frozen=True)
class Ended:
    """A commit or abort call and what it answered: committed, aborted, fenced, unknown."""

    txn: TxnId
    call: str
    invoked: float
    outcome: str


@dataclass(frozen=True)
class Read:
    time: float
    rows: Rows


@dataclass(frozen=True)
class Observation:
    """Committed input offsets read before (``before``) and after (``after``) the rest;
    the log end of each output partition, read at ``time`` after ``before``; then where
    the reader stood after tailing each one, and when the fetch that left it there (the
    last one, which made no progress) began (``fetched``)."""

    time: float
    before: Mapping[int, int]
    after: Mapping[int, int]
    positions: Mapping[OutKey, int]
    ends: Mapping[OutKey, int]
    fetched: Mapping[OutKey, float]


Event = Read | Observation


class TxnHistory:
    """Thread-safe recorder. ``at``: an explicit time (synthetic histories)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inits: list[Init] = []
        self.ends: list[Ended] = []
        self.events: list[Event] = []

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def init(self, tid: str, epoch: int, at: float | None = None) -> None:
        with self._lock:
            self.inits.append(Init(tid, epoch, self.now() if at is None else at))

    def ended(self, txn: TxnId, call: str, invoked: float, outcome: str) -> None:
        if call not in ("commit", "abort") or outcome not in (*ENDED, "committed", "unknown"):
            raise ValueError(f"bad end: {call} {outcome}")
        with self._lock:
            self.ends.append(Ended(txn, call, invoked, outcome))

    def read(self, rows: Rows, at: float | None = None) -> None:
        with self._lock:
            self.events.append(Read(self.now() if at is None else at,
                                    {k: tuple(v) for k, v in rows.items() if v}))

    def observe(self, before: Mapping[int, int], after: Mapping[int, int],
                positions: Mapping[OutKey, int], ends: Mapping[OutKey, int], ends_at: float,
                fetched: Mapping[OutKey, float]) -> None:
        """One observation (see :class:`Observation`); ``ends_at``: when the ends were read."""
        with self._lock:
            self.events.append(Observation(ends_at, dict(before), dict(after),
                                           dict(positions), dict(ends), dict(fetched)))


@dataclass
class TxnReport:
    lost: list[tuple[InputId, str]] = field(default_factory=list)
    duplicates: list[tuple[InputId, str, tuple[tuple[str, int, int], ...]]] = field(
        default_factory=list)
    aborted_reads: list[tuple[TxnId, InputId | None]] = field(default_factory=list)
    uncommitted_reads: list[tuple[TxnId, InputId | None]] = field(default_factory=list)
    zombie_commits: list[tuple[TxnId, int]] = field(default_factory=list)
    output_without_input: list[tuple[int, InputId, str]] = field(default_factory=list)
    input_without_output: list[tuple[int, InputId, str]] = field(default_factory=list)
    out_of_order: list[tuple[str, str | None, InputId, InputId]] = field(default_factory=list)
    stalls: list[tuple[OutKey, float, float]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    strict_observations: int = 0
    """Info: (observation, output partition) pairs checked with the reader at the log end."""
    longest_wait: dict[OutKey, float] = field(default_factory=dict)
    """Info: per output partition, the longest the reader was held before a log end it
    saw (from reading it to the start of the last fetch that stopped before it)."""

    INFO = ("strict_observations", "longest_wait")

    def anomalies(self) -> dict[str, int]:
        return {name: len(value) for name, value in vars(self).items()
                if name not in self.INFO and value}

    @property
    def ok(self) -> bool:
        return not self.anomalies()

    def summary(self, examples: int = 3) -> str:
        lines = ["txn history OK" if self.ok else f"txn history INVALID: {self.anomalies()}"]
        lines += [f"  {name}: {getattr(self, name)[:examples]}" for name in self.anomalies()]
        waits = {f"{t}/{p}": round(s, 2) for (t, p), s in sorted(self.longest_wait.items())}
        lines.append(f"  strict observations {self.strict_observations}, longest waits {waits}")
        return "\n".join(lines)


FINAL = -1
"""The observation index of findings from the final drain."""


@dataclass
class _Model:
    inputs: dict[InputId, Input]
    expected: dict[InputId, frozenset[str]]
    drained: dict[tuple[InputId, str], OutKey]
    """Where each input's output for a sink is in the final drain."""
    outcomes: dict[TxnId, set[str]]
    first_commit: dict[TxnId, float]


def check_txn(history: TxnHistory, *, inputs: Iterable[Input], drain: Rows,
              committed: Mapping[int, int], expected: Callable[[Input], Iterable[str]],
              stall_limit: float, statuses: Mapping[TxnId, str] | None = None) -> TxnReport:
    """Check ``history`` (see the module docstring). ``drain``: every output partition read
    read_committed from its start after the run; ``committed``: the final committed offset
    per input partition; ``expected``: the sinks an input writes one output to;
    ``statuses``: the transactions' final statuses as the log lists them (optional)."""
    report = TxnReport()
    model = _model(history, inputs, drain, expected, statuses or {}, report)
    _drained(model, drain, committed, report)
    _visibility(model, history, drain, report)
    _zombies(model, history, drain, report)
    _observations(model, history, report)
    _stalls(history, stall_limit, report)
    return report


def _model(history: TxnHistory, inputs: Iterable[Input], drain: Rows,
           expected: Callable[[Input], Iterable[str]], statuses: Mapping[TxnId, str],
           report: TxnReport) -> _Model:
    by_id = {i.id: i for i in inputs}
    outcomes: dict[TxnId, set[str]] = defaultdict(set)
    first: dict[TxnId, float] = {}
    for end in history.ends:
        outcomes[end.txn].add(end.outcome)
        if end.call == "commit":
            first[end.txn] = min(first.get(end.txn, end.invoked), end.invoked)
    for txn, status in statuses.items():
        outcomes[txn].add(status)
    drained: dict[tuple[InputId, str], OutKey] = {}
    for key, rows in drain.items():
        for _, value in rows:
            out = Output.decode(value)
            if out is not None and out.source is not None:
                drained.setdefault((out.source, out.sink), key)
    return _Model(by_id, {i: frozenset(expected(x)) for i, x in by_id.items()}, drained,
                  outcomes, first)


def _read_outputs(history: TxnHistory, drain: Rows
                  ) -> Iterable[tuple[OutKey, int, str]]:
    for event in history.events:
        if isinstance(event, Read):
            for key, rows in event.rows.items():
                yield from ((key, offset, value) for offset, value in rows)
    for key, rows in drain.items():
        yield from ((key, offset, value) for offset, value in rows)


def _drained(model: _Model, drain: Rows, committed: Mapping[int, int],
             report: TxnReport) -> None:
    """Lost, duplicated, out of order, and (at the end) output without committed input."""
    positions: dict[tuple[InputId, str], set[tuple[str, int, int]]] = defaultdict(set)
    for (topic, partition), rows in drain.items():
        for offset, value in rows:
            out = Output.decode(value)
            if out is not None and out.source is not None:
                positions[(out.source, out.sink)].add((topic, partition, offset))
                if out.source[1] >= committed.get(out.source[0], 0):
                    report.output_without_input.append((FINAL, out.source, out.sink))
    for input_id, sinks in sorted(model.expected.items()):
        for sink in sorted(sinks):
            found = positions.get((input_id, sink), set())
            if not found:
                report.lost.append((input_id, sink))
            elif len(found) > 1:
                report.duplicates.append((input_id, sink, tuple(sorted(found))))
    _order(drain, report)


def _order(drain: Rows, report: TxnReport) -> None:
    last: dict[tuple[str, str | None], InputId] = {}
    for key in sorted(drain):
        for _, value in sorted(drain[key]):
            out = Output.decode(value)
            if out is None or out.source is None:
                continue
            slot = (out.sink, out.key)
            before = last.get(slot)
            if before is not None and before[0] == out.source[0] and out.source <= before:
                report.out_of_order.append((out.sink, out.key, before, out.source))
            last[slot] = out.source


def _visibility(model: _Model, history: TxnHistory, drain: Rows, report: TxnReport) -> None:
    """Every output read must come from a known input, by a transaction that committed."""
    seen: set[tuple[TxnId, InputId | None]] = set()
    for _, _, value in _read_outputs(history, drain):
        out = Output.decode(value)
        if out is None or (out.source is not None and out.source not in model.inputs):
            if value not in report.unexpected:
                report.unexpected.append(value)
            continue
        slot = (out.txn, out.source)
        if slot in seen:
            continue
        seen.add(slot)
        if model.outcomes.get(out.txn, set()) & ENDED:
            report.aborted_reads.append(slot)
        elif out.txn not in model.first_commit:  # (even if the log says committed)
            report.uncommitted_reads.append(slot)


def _zombies(model: _Model, history: TxnHistory, drain: Rows, report: TxnReport) -> None:
    visible = {o.txn for _, _, v in _read_outputs(history, drain)
               if (o := Output.decode(v)) is not None}
    inits: dict[str, list[Init]] = defaultdict(list)
    for init in history.inits:
        inits[init.tid].append(init)
    for txn, invoked in sorted(model.first_commit.items()):
        tid, epoch, _ = txn
        if "committed" not in model.outcomes.get(txn, set()) and txn not in visible:
            continue
        newer = [i.epoch for i in inits[tid] if i.epoch > epoch and i.done < invoked]
        if newer:
            report.zombie_commits.append((txn, min(newer)))


def _observations(model: _Model, history: TxnHistory, report: TxnReport) -> None:
    """Replay reads and observations in order (see the module docstring)."""
    visible: set[tuple[InputId, str]] = set()
    read_from: dict[int, list[tuple[int, str]]] = defaultdict(list)  # input partition
    by_partition: dict[int, list[InputId]] = defaultdict(list)
    for input_id in sorted(model.inputs):
        by_partition[input_id[0]].append(input_id)
    reported: set[tuple[InputId, str]] = set()
    missing: set[tuple[InputId, str]] = set()
    settled: dict[int, int] = defaultdict(int)  # per partition: ids before it all visible
    observations = 0
    for event in history.events:
        if isinstance(event, Read):
            for out in _sourced(event.rows):
                assert out.source is not None
                visible.add((out.source, out.sink))
                read_from[out.source[0]].append((out.source[1], out.sink))
            continue
        for partition, outputs in read_from.items():
            outputs.sort()
            bound = event.after.get(partition, 0)
            for offset, sink in outputs[bisect_left(outputs, (bound, "")):]:
                if ((partition, offset), sink) not in reported:
                    reported.add(((partition, offset), sink))
                    report.output_without_input.append((observations, (partition, offset),
                                                        sink))
        at_end = {k for k, p in event.positions.items() if p >= event.ends.get(k, p + 1)}
        report.strict_observations += len(at_end)
        for partition, ids in by_partition.items():
            while settled[partition] < len(ids) and all(
                    (ids[settled[partition]], s) in visible
                    for s in model.expected[ids[settled[partition]]]):
                settled[partition] += 1
            bound = bisect_left(ids, (partition, event.before.get(partition, 0)))
            for input_id in ids[settled[partition]:bound]:
                for sink in model.expected[input_id]:
                    slot = (input_id, sink)
                    if model.drained.get(slot) in at_end and slot not in visible \
                            and slot not in missing:
                        missing.add(slot)
                        report.input_without_output.append((observations, input_id, sink))
        observations += 1


def _sourced(rows: Rows) -> Iterable[Output]:
    for values in rows.values():
        for _, value in values:
            out = Output.decode(value)
            if out is not None and out.source is not None:
                yield out


def _stalls(history: TxnHistory, limit: float, report: TxnReport) -> None:
    """Per output partition and observation: how long after reading a log end a fetch
    still began that stopped before it (the last such fetch; two pointers, positions and
    ends never decrease). A slow reader is not a stalled one: a fetch is judged by when
    it began, not by how long it took."""
    observations = [e for e in history.events if isinstance(e, Observation)]
    keys = {k for o in observations for k in o.ends}
    for key in sorted(keys):
        samples = [(o.time, o.ends[key], o.fetched.get(key, o.time), o.positions.get(key, 0))
                   for o in observations if key in o.ends]
        j, episode_end, longest = 0, -1.0, 0.0
        for i, (seen, end, _, _) in enumerate(samples):
            j = max(j, i)
            while j < len(samples) and samples[j][3] < end:
                j += 1
            waited = samples[j - 1][2] - seen if j > i else 0.0
            longest = max(longest, waited)
            if waited > limit and seen > episode_end:
                report.stalls.append((key, seen, waited))
                episode_end = samples[j - 1][2]
        report.longest_wait[key] = longest
