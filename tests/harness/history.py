"""Jepsen-style history recorder and checker for a partitioned log (reliability.md 1.5-1.7).

Record sends (invoke + completion), polls and assigns with :class:`History`, then call
:func:`check`. Values must be globally unique strings, so any repeat is a duplicate.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Literal

Key = tuple[str, int]  # (topic, partition)
Rec = tuple[int, str]  # (offset, value)
Pos = tuple[str, int, int]  # (topic, partition, offset)
Reads = Mapping[Key, Sequence[Rec]]
Process = int | str
SendType = Literal["ok", "fail", "info"]


@dataclass(frozen=True)
class SendInvoke:
    """A producer starts sending one value."""

    index: int
    time_ns: int
    process: Process
    op_id: int
    producer: str
    topic: str
    partition: int | None
    value: str

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"f": "send", "type": "invoke", **asdict(self)}


@dataclass(frozen=True)
class SendComplete:
    """A send finished: ok (acked at partition/offset), fail (not applied) or info."""

    index: int
    time_ns: int
    process: Process
    op_id: int
    type: SendType
    partition: int | None
    offset: int | None
    error: str | None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"f": "send", **asdict(self)}


@dataclass(frozen=True)
class PollEvent:
    """A poll's records per partition, in the order returned, and optional HWMs."""

    index: int
    time_ns: int
    process: Process
    session: str
    records: Mapping[Key, tuple[Rec, ...]]
    hwm: Mapping[Key, int | None]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; keyed maps become [topic, partition, ...] lists."""
        head = {"index": self.index, "time_ns": self.time_ns, "process": self.process}
        value = [[t, p, [list(r) for r in recs]] for (t, p), recs in self.records.items()]
        hwm = [[t, p, h] for (t, p), h in self.hwm.items()]
        return {
            "f": "poll",
            "type": "ok",
            **head,
            "session": self.session,
            "value": value,
            "hwm": hwm,
        }


@dataclass(frozen=True)
class AssignEvent:
    """A reader session was (re)assigned or seeked: contiguity expectations reset."""

    index: int
    time_ns: int
    process: Process
    session: str

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"f": "assign", "type": "ok", **asdict(self)}


Event = SendInvoke | SendComplete | PollEvent | AssignEvent


class History:
    """A thread-safe, ordered record of sends, polls and assigns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._invokes: dict[int, SendInvoke] = {}
        self._completed: set[int] = set()

    def invoke_send(
        self, process: Process, producer: str, topic: str, partition: int | None, value: str
    ) -> int:
        """Record a send's start; returns its op id. ``partition`` None = partitioner's."""
        with self._lock:
            op_id = len(self._invokes)
            event = SendInvoke(*self._stamp(), process, op_id, producer, topic, partition, value)
            self._invokes[op_id] = event
            self._events.append(event)
            return op_id

    def complete_send(
        self,
        op_id: int,
        type: SendType,
        partition: int | None = None,
        offset: int | None = None,
        error: str | BaseException | None = None,
    ) -> None:
        """Record a send's outcome; ``partition`` defaults to the invoked one."""
        if type not in ("ok", "fail", "info"):
            raise ValueError(f"bad completion type {type!r}")
        with self._lock:
            invoke = self._invokes[op_id]
            if op_id in self._completed:
                raise ValueError(f"send {op_id} already completed")
            self._completed.add(op_id)
            part = invoke.partition if partition is None else partition
            err = error if error is None or isinstance(error, str) else _describe(error)
            event = SendComplete(*self._stamp(), invoke.process, op_id, type, part, offset, err)
            self._events.append(event)

    def record_poll(
        self,
        process: Process,
        session: str,
        polled: Reads,
        hwm: Mapping[Key, int | None] | None = None,
    ) -> None:
        """Record one poll: per (topic, partition) the (offset, value) records returned."""
        records = {key: tuple((o, v) for o, v in recs) for key, recs in polled.items()}
        with self._lock:
            event = PollEvent(*self._stamp(), process, session, records, dict(hwm or {}))
            self._events.append(event)

    def record_assign(self, process: Process, session: str) -> None:
        """Record an assign/seek: the next poll of ``session`` starts a new run."""
        with self._lock:
            self._events.append(AssignEvent(*self._stamp(), process, session))

    def _stamp(self) -> tuple[int, int]:
        return len(self._events), time.monotonic_ns()

    @property
    def events(self) -> list[Event]:
        """A copy of all events in recording order."""
        with self._lock:
            return list(self._events)

    def to_jsonl(self, path: str | Path) -> None:
        """Write one JSON object per event."""
        with Path(path).open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(event.to_json()) + "\n" for event in self.events)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ValueAt:
    """A value and where it was (or claims to be): offset None if unknown."""

    value: str
    topic: str
    partition: int | None
    offset: int | None


@dataclass(frozen=True)
class Duplicate:
    """One value stored at two or more offsets."""

    value: str
    positions: tuple[Pos, ...]


@dataclass(frozen=True)
class InconsistentOffset:
    """One offset observed with two or more values."""

    topic: str
    partition: int
    offset: int
    values: tuple[str, ...]


@dataclass(frozen=True)
class Gap:
    """Offsets ``first..last`` (inclusive) missing from a dense log."""

    topic: str
    partition: int
    first: int
    last: int


@dataclass(frozen=True)
class NonmonotonicSend:
    """A producer's later send landed below an earlier one on the same partition."""

    producer: str
    topic: str
    partition: int
    earlier: Rec
    later: Rec


@dataclass(frozen=True)
class PollAnomaly:
    """A skip or a backwards step in one reader session (``previous`` -> ``offset``)."""

    process: Process
    session: str
    topic: str
    partition: int
    event_index: int
    previous: int
    offset: int


@dataclass(frozen=True)
class AboveHwm:
    """A poll returned an offset at or above the high watermark it reported."""

    process: Process
    session: str
    topic: str
    partition: int
    event_index: int
    offset: int
    hwm: int


ANOMALIES = (
    "lost",
    "duplicates",
    "inconsistent_offsets",
    "gaps",
    "nonmonotonic_send",
    "aborted_reads",
    "unexpected",
    "poll_skip",
    "nonmonotonic_poll",
    "above_hwm",
)


@dataclass
class Report:
    """Anomalies found by :func:`check`. ``unseen`` and ``indeterminate_counts`` are info."""

    lost: list[ValueAt] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    inconsistent_offsets: list[InconsistentOffset] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    nonmonotonic_send: list[NonmonotonicSend] = field(default_factory=list)
    aborted_reads: list[ValueAt] = field(default_factory=list)
    unexpected: list[ValueAt] = field(default_factory=list)
    poll_skip: list[PollAnomaly] = field(default_factory=list)
    nonmonotonic_poll: list[PollAnomaly] = field(default_factory=list)
    above_hwm: list[AboveHwm] = field(default_factory=list)
    unseen: list[ValueAt] = field(default_factory=list)
    indeterminate_counts: Counter[int] = field(default_factory=Counter)

    @property
    def duplicate_count(self) -> int:
        """How many values were stored more than once."""
        return len(self.duplicates)

    @property
    def ok(self) -> bool:
        """True when no anomaly was found."""
        return not self.anomalies()

    def anomalies(self) -> dict[str, int]:
        """Counts of the anomalies present, by name."""
        counts = {name: len(getattr(self, name)) for name in ANOMALIES}
        return {name: n for name, n in counts.items() if n}

    def summary(self, examples: int = 3) -> str:
        """A readable multi-line summary with a few examples per anomaly."""
        lines = ["history OK" if self.ok else f"history INVALID: {self.anomalies()}"]
        for name in ANOMALIES:
            found = getattr(self, name)
            lines += [f"  {name} ({len(found)}): {item}" for item in found[:examples]]
        if self.unseen:
            lines.append(f"  unseen (not yet polled, info): {len(self.unseen)}")
        seen = dict(sorted(self.indeterminate_counts.items()))
        lines.append(f"  indeterminate sends by times seen: {seen}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Send:
    invoke: SendInvoke
    done: SendComplete | None

    @property
    def type(self) -> SendType:
        return "info" if self.done is None else self.done.type

    @property
    def position(self) -> Pos | None:
        done = self.done
        if done is None or done.type != "ok" or done.partition is None or done.offset is None:
            return None
        return (self.invoke.topic, done.partition, done.offset)


@dataclass
class _Model:
    """The history indexed for checking: sends, reads and the version order."""

    sends: list[_Send]
    by_value: dict[str, _Send]
    readers: list[PollEvent | AssignEvent]
    poll_reads: list[ValueAt]
    drain_reads: list[ValueAt]
    versions: dict[Key, dict[int, set[str]]] = field(default_factory=dict)
    positions: dict[str, set[Pos]] = field(default_factory=dict)

    @property
    def reads(self) -> list[ValueAt]:
        return self.poll_reads + self.drain_reads

    @property
    def polls(self) -> list[PollEvent]:
        return [e for e in self.readers if isinstance(e, PollEvent)]

    def observe(self, value: str, pos: Pos) -> None:
        topic, partition, offset = pos
        self.versions.setdefault((topic, partition), {}).setdefault(offset, set()).add(value)
        self.positions.setdefault(value, set()).add(pos)

    def offsets(self, key: Key) -> list[int]:
        return sorted(self.versions.get(key, {}))


def _flatten(reads: Reads) -> Iterator[ValueAt]:
    for (topic, partition), recs in reads.items():
        for offset, value in recs:
            yield ValueAt(value, topic, partition, offset)


def _model(history: History, final_drain: Reads | None) -> _Model:
    events = history.events
    done = {e.op_id: e for e in events if isinstance(e, SendComplete)}
    sends = [_Send(e, done.get(e.op_id)) for e in events if isinstance(e, SendInvoke)]
    readers = [e for e in events if isinstance(e, PollEvent | AssignEvent)]
    model = _Model(
        sends=sends,
        by_value={s.invoke.value: s for s in sends},
        readers=readers,
        poll_reads=[r for e in readers if isinstance(e, PollEvent) for r in _flatten(e.records)],
        drain_reads=list(_flatten(final_drain or {})),
    )
    for send in sends:
        if send.position is not None:
            model.observe(send.invoke.value, send.position)
    for read in model.reads:
        model.observe(read.value, _pos(read))
    return model


def _pos(read: ValueAt) -> Pos:
    assert read.partition is not None and read.offset is not None
    return (read.topic, read.partition, read.offset)


def _at(send: _Send) -> ValueAt:
    pos = send.position
    if pos is None:
        partition = send.done.partition if send.done else send.invoke.partition
        return ValueAt(send.invoke.value, send.invoke.topic, partition, None)
    return ValueAt(send.invoke.value, *pos)


# ---------------------------------------------------------------------------- checks


def check(
    history: History,
    *,
    final_drain: Reads | None = None,
    dense: bool = True,
    log_start: Mapping[Key, int] | None = None,
) -> Report:
    """Check ``history`` for the anomalies of reliability.md 1.6.

    ``final_drain`` is a full read of every partition after healing; without it,
    lost writes use Jepsen's rule (offset <= the highest polled offset). ``dense``
    enables the gap check from ``log_start`` (default 0) to the highest offset read.
    """
    model = _model(history, final_drain)
    lost, unseen = _lost(model, final_drain is not None)
    return Report(
        lost=lost,
        duplicates=_duplicates(model),
        inconsistent_offsets=_inconsistent(model),
        gaps=_gaps(model, final_drain, log_start or {}) if dense else [],
        nonmonotonic_send=_nonmonotonic_send(model),
        aborted_reads=_dedup(r for r in model.reads if _send_type(model, r) == "fail"),
        unexpected=_dedup(r for r in model.reads if r.value not in model.by_value),
        poll_skip=_poll_anomalies(model, skip=True),
        nonmonotonic_poll=_poll_anomalies(model, skip=False),
        above_hwm=_above_hwm(model),
        unseen=unseen,
        indeterminate_counts=_indeterminate(model),
    )


def _send_type(model: _Model, read: ValueAt) -> SendType | None:
    send = model.by_value.get(read.value)
    return None if send is None else send.type


def _dedup(reads: Iterable[ValueAt]) -> list[ValueAt]:
    return list(dict.fromkeys(reads))


def _lost(model: _Model, drained: bool) -> tuple[list[ValueAt], list[ValueAt]]:
    """Lost and (without a drain) merely unseen acknowledged values.

    With a drain, an ok send, or an info send some poll saw, is lost if the drain
    lacks it. Without one, an unpolled ok send is lost if it sits at or below the
    highest offset polled on its partition, and unseen otherwise.
    """
    polled = {r.value for r in model.poll_reads}
    if drained:
        kept = {r.value for r in model.drain_reads}
        acked = [s for s in model.sends if s.type == "ok" or s.invoke.value in polled]
        return [_at(s) for s in acked if s.invoke.value not in kept], []
    top: dict[Key, int] = {}
    for topic, partition, offset in map(_pos, model.poll_reads):
        top[(topic, partition)] = max(top.get((topic, partition), -1), offset)
    lost: list[ValueAt] = []
    unseen: list[ValueAt] = []
    for send in model.sends:
        pos = send.position
        if send.type != "ok" or send.invoke.value in polled:
            continue
        below = pos is not None and pos[2] <= top.get((pos[0], pos[1]), -1)
        (lost if below else unseen).append(_at(send))
    return lost, unseen


def _duplicates(model: _Model) -> list[Duplicate]:
    found = [(v, ps) for v, ps in model.positions.items() if len(ps) > 1]
    return [Duplicate(v, tuple(sorted(ps))) for v, ps in sorted(found)]


def _inconsistent(model: _Model) -> list[InconsistentOffset]:
    return [
        InconsistentOffset(topic, partition, offset, tuple(sorted(values)))
        for (topic, partition), by_offset in sorted(model.versions.items())
        for offset, values in sorted(by_offset.items())
        if len(values) > 1
    ]


def _gaps(model: _Model, drain: Reads | None, log_start: Mapping[Key, int]) -> list[Gap]:
    """Missing offsets in the drain (or, without one, in the union of polls)."""
    reads = model.drain_reads if drain is not None else model.poll_reads
    seen: dict[Key, set[int]] = defaultdict(set)
    for r in reads:
        seen[(r.topic, _pos(r)[1])].add(_pos(r)[2])
    gaps: list[Gap] = []
    for key, offsets in sorted(seen.items()):
        missing = sorted(set(range(log_start.get(key, 0), max(offsets))) - offsets)
        gaps += [Gap(*key, first, last) for first, last in _ranges(missing)]
    return gaps


def _ranges(sorted_ints: list[int]) -> Iterator[tuple[int, int]]:
    """Collapse sorted integers into inclusive (first, last) runs."""
    start = prev = None
    for n in sorted_ints:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None and prev is not None:
            yield start, prev
        start = prev = n
    if start is not None and prev is not None:
        yield start, prev


def _nonmonotonic_send(model: _Model) -> list[NonmonotonicSend]:
    """Per producer and partition, in invocation order, offsets must increase."""
    highest: dict[tuple[str, str, int], Rec] = {}
    found: list[NonmonotonicSend] = []
    for send in model.sends:  # invocation order
        pos = send.position
        if pos is None:
            continue
        topic, partition, offset = pos
        slot = (send.invoke.producer, topic, partition)
        top = highest.get(slot)
        if top is not None and offset < top[0]:
            found.append(NonmonotonicSend(*slot, top, (offset, send.invoke.value)))
        if top is None or offset > top[0]:
            highest[slot] = (offset, send.invoke.value)
    return found


def _poll_anomalies(model: _Model, *, skip: bool) -> list[PollAnomaly]:
    """Poll skips (``skip``) or backwards polls, within and across polls of a session."""
    offsets = {key: model.offsets(key) for key in model.versions}
    last: dict[tuple[Process, str], dict[Key, int]] = defaultdict(dict)
    found: list[PollAnomaly] = []
    for event in model.readers:
        run = last[(event.process, event.session)]
        if isinstance(event, AssignEvent):
            run.clear()
            continue
        for key, recs in event.records.items():
            steps = [run[key]] if key in run else []
            steps += [o for o, _ in recs]
            for a, b in pairwise(steps):
                if _is_anomaly(a, b, offsets[key], skip):
                    found.append(PollAnomaly(event.process, event.session, *key, event.index, a, b))
            if recs:
                run[key] = recs[-1][0]
    return found


def _is_anomaly(a: int, b: int, existing: list[int], skip: bool) -> bool:
    if not skip:
        return b <= a
    i = bisect.bisect_right(existing, a)
    return b > a and i < len(existing) and existing[i] < b


def _above_hwm(model: _Model) -> list[AboveHwm]:
    found: list[AboveHwm] = []
    for p in model.polls:
        for key, recs in p.records.items():
            hwm = p.hwm.get(key)
            if hwm is None:
                continue
            for offset, _ in recs:
                if offset >= hwm:
                    found.append(AboveHwm(p.process, p.session, *key, p.index, offset, hwm))
    return found


def _indeterminate(model: _Model) -> Counter[int]:
    """For info (or never completed) sends: how many offsets each was seen at."""
    counts: Counter[int] = Counter()
    for send in model.sends:
        if send.type == "info":
            counts[len(model.positions.get(send.invoke.value, ()))] += 1
    return counts
