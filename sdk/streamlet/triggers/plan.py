"""One partition's delivery, pure: batches, the batching window, retries, bisection, record
age, partial batch responses and what goes to the on-failure destination.

:class:`Plan` holds the records read from the partition's position on, and says what to do
next (:meth:`Plan.next`): skip records the key filter drops, dead-letter records too old
to deliver, invoke a batch, wait for a fuller batch, or fetch more. The dispatcher does
it and reports back (:meth:`Plan.done`, :meth:`Plan.failed`); every action ends with the
offset to commit, so offsets move only past records that were delivered, dead-lettered
or skipped, in order.

The rules, those of Lambda's event source mappings for Kafka (and Kinesis before it):

- A batch is up to ``batch_size`` records the key filter keeps (records it drops ride
  along and are committed with the batch), within the target's byte limit.
- The batching window: a batch short of ``batch_size`` waits until its first record is
  ``maximum_batching_window_ms`` old, unless more records are already waiting.
- A failed batch is retried; with ``bisect_batch_on_function_error`` it is split in two
  first, and each half is retried on its own (a split costs no retry: only batches of one
  record, or any batch without bisection, count attempts). After ``retry_limit`` retries
  the batch goes to the on-failure destination and the partition moves on.
- A partial batch response commits the records before the lowest failed offset; the rest
  of the batch is retried as a failing batch of its own.
- Records older than ``maximum_record_age_s`` at the head of the partition are not
  invoked: they go to the on-failure destination.

Example:
    >>> from streamlet.records import Record
    >>> from streamlet.triggers.config import Trigger
    >>> plan = Plan(Trigger("t", "orders", function="f", batch_size=2), position=0)
    >>> plan.feed([Record("orders", 0, i, None, b"v", [], 1000) for i in range(3)], caught_up=True)
    >>> step = plan.next(now_ms=1000)
    >>> type(step).__name__, [r.offset for r in step.records], step.commit
    ('Invoke', [0, 1], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..records import Record
from .config import Trigger
from .event import MAX_PAYLOAD_BYTES, Answer, event_size


@dataclass(frozen=True)
class Invoke:
    """Deliver ``records``; on success commit ``commit``."""

    records: list[Record]
    commit: int


@dataclass(frozen=True)
class DeadLetter:
    """Send ``records`` to the on-failure destination (or drop them without one), then
    commit ``commit``."""

    records: list[Record]
    commit: int
    error: str
    attempts: int


@dataclass(frozen=True)
class Skip:
    """Nothing to deliver up to ``commit`` (the key filter dropped it): commit it."""

    commit: int


@dataclass(frozen=True)
class Wait:
    """The batch is short and young: look again in ``ms`` (the batching window)."""

    ms: int


@dataclass(frozen=True)
class Fetch:
    """Read more records from ``position``."""

    position: int


Step = Invoke | DeadLetter | Skip | Wait | Fetch


@dataclass(frozen=True)
class Failing:
    """Failed invocations counted against the retry limit for the batch at ``offset``."""

    offset: int
    tries: int

    def encode(self) -> str:
        return f"{self.offset}:{self.tries}"

    @classmethod
    def decode(cls, text: str) -> Failing | None:
        offset, _, tries = text.partition(":")
        if not (offset.isdigit() and tries.isdigit()):
            return None
        return cls(int(offset), int(tries))


class Plan:
    """The delivery state of one partition in one dispatcher session."""

    def __init__(self, trigger: Trigger, position: int, failing: Failing | None = None,
                 max_bytes: int = MAX_PAYLOAD_BYTES, pinned: tuple[int, int] | None = None
                 ) -> None:
        self.trigger = trigger
        self.position = position
        """The next offset not yet delivered, dead-lettered or skipped (what is committed)."""
        self.failing = failing if failing and failing.offset == position else None
        self.pinned = pinned if pinned and pinned[0] == position < pinned[1] else None
        """A batch (first offset, commit offset) that must be delivered exactly as it was
        first tried (see ``Target.pins_batches``)."""
        self.max_bytes = max_bytes
        self._filter = trigger.filter
        self._buffer: list[Record] = []
        self._fetched_to = position
        self._caught_up = False
        self._halves: list[tuple[int, int]] = []
        """Ranges to retry as they are, in order: (first offset, commit offset)."""
        self._last_error = ""
        self._last_partial = False

    # ---- reading --------------------------------------------------------------------------

    def feed(self, records: Sequence[Record], caught_up: bool, end: int | None = None) -> None:
        """Records read from :attr:`fetch_position` on (in order); ``caught_up`` when the
        read reached the end of the log; ``end`` the offset after the last one read."""
        fresh = [r for r in records if r.offset >= self._fetched_to]
        self._buffer += fresh
        if fresh:
            self._fetched_to = fresh[-1].offset + 1
        if end is not None and end > self._fetched_to:
            self._fetched_to = end
        self._caught_up = caught_up

    def stale(self) -> None:
        """Time passed (a batching-window wait): records may have arrived since."""
        self._caught_up = False

    def reset(self, position: int) -> None:
        """The log moved under us (retention passed the position): start again there."""
        self._buffer, self._halves, self.failing, self.pinned = [], [], None, None
        self.position = self._fetched_to = position
        self._caught_up = False

    @property
    def fetch_position(self) -> int:
        return self._fetched_to

    # ---- deciding -------------------------------------------------------------------------

    def next(self, now_ms: int) -> Step | None:
        """What to do now; None when caught up with nothing left to deliver."""
        if self.pinned is not None:
            start, end = self.pinned
            if self._fetched_to < end:
                return Fetch(self._fetched_to)
            return Invoke(self._range(start, end), end)
        expired, end = self._expired_head(now_ms)
        if end > self.position:
            return DeadLetter(expired, end, f"record age exceeds maximum_record_age_s="
                                            f"{self.trigger.maximum_record_age_s}", 0) \
                if expired else Skip(end)
        if self._halves:
            start, end = self._halves[0]
            if self._fetched_to < end:
                return Fetch(self._fetched_to)
            return self._invoke_or_give_up(self._range(start, end), end)
        batch, end, full = self._batch()
        if not batch:
            if end > self.position:
                return Skip(end)
            return None if self._caught_up else Fetch(self._fetched_to)
        if not full and not self._caught_up:
            return Fetch(self._fetched_to)
        wait = self._window_left(batch, now_ms) if not full else 0
        if wait > 0:
            return Wait(wait)
        return self._invoke_or_give_up(batch, end)

    def _invoke_or_give_up(self, batch: list[Record], end: int) -> Step:
        limit = self.trigger.retry_limit
        if self.failing and self.failing.offset == batch[0].offset and limit is not None \
                and self.failing.tries > limit and self._counts(batch):
            return DeadLetter(batch, end, self._last_error, self.failing.tries)
        return Invoke(batch, end)

    def _counts(self, batch: list[Record]) -> bool:
        """Whether this batch has used up its attempts, rather than being split again: a
        batch bisection splits costs no attempt, and partial failures never split."""
        return (len(batch) == 1 or not self.trigger.bisect_batch_on_function_error
                or self._last_partial)

    def _batch(self) -> tuple[list[Record], int, bool]:
        """The next batch from the position: (records to deliver, commit offset, full)."""
        out: list[Record] = []
        size, end = 0, self.position
        for record in self._buffer:
            if record.offset < self.position:
                continue
            if self._filter is not None and not self._filter.matches(record.key):
                end = record.offset + 1
                continue
            cost = event_size(record)
            if out and size + cost > self.max_bytes:
                return out, end, True
            out.append(record)
            size, end = size + cost, record.offset + 1
            if len(out) >= self.trigger.batch_size:
                return out, end, True
        if out and not self._caught_up:
            return out, end, False
        return out, (self._fetched_to if self._caught_up else end), False

    def _window_left(self, batch: list[Record], now_ms: int) -> int:
        window = self.trigger.maximum_batching_window_ms
        age = now_ms - batch[0].timestamp
        return max(0, min(window, window - age))

    def _expired_head(self, now_ms: int) -> tuple[list[Record], int]:
        """The records at the head too old to deliver (those the key filter keeps), and
        the offset after them (the position when none are)."""
        age_s, end = self.trigger.maximum_record_age_s, self.position
        out: list[Record] = []
        if age_s < 0:
            return out, end
        for record in self._buffer:
            if record.offset < self.position:
                continue
            if now_ms - record.timestamp <= age_s * 1000:
                break
            if self._filter is None or self._filter.matches(record.key):
                out.append(record)
            end = record.offset + 1
        return out, end

    def _range(self, start: int, end: int) -> list[Record]:
        return [r for r in self._buffer if start <= r.offset < end
                and (self._filter is None or self._filter.matches(r.key))]

    # ---- outcomes -------------------------------------------------------------------------

    def committed(self, offset: int) -> None:
        """Everything before ``offset`` is done (delivered, dead-lettered or skipped)."""
        self.position = max(self.position, offset)
        self._fetched_to = max(self._fetched_to, self.position)
        self._buffer = [r for r in self._buffer if r.offset >= self.position]
        self._halves = [(max(s, self.position), e) for s, e in self._halves if e > self.position]
        if self.failing and self.failing.offset < self.position:
            self.failing = None
        if self.pinned and self.pinned[0] < self.position:
            self.pinned = None

    def failed(self, step: Invoke, answer: Answer) -> int | None:
        """The batch of ``step`` failed as ``answer`` says. Returns the offset to commit
        now (the records before a partial failure), or None."""
        assert answer.failed_from is not None
        self._last_error, self._last_partial = answer.error, not answer.whole
        self.pinned = None
        batch = step.records
        if not answer.whole:  # a partial batch response: the rest is a failing batch
            rest = [r for r in batch if r.offset >= answer.failed_from]
            self._replace_head(answer.failed_from, step.commit)
            self._count(rest)
            return answer.failed_from
        if self.trigger.bisect_batch_on_function_error and len(batch) > 1:
            middle = batch[len(batch) // 2].offset
            self._replace_head(batch[0].offset, step.commit, split_at=middle)
            return None
        self._replace_head(batch[0].offset, step.commit)
        self._count(batch)
        return None

    def _replace_head(self, start: int, end: int, split_at: int | None = None) -> None:
        rest = [h for h in self._halves if h[0] >= end]
        head = [(start, split_at), (split_at, end)] if split_at is not None else [(start, end)]
        self._halves = head + rest

    def _count(self, batch: list[Record]) -> None:
        start = batch[0].offset
        tries = self.failing.tries + 1 if self.failing and self.failing.offset == start else 1
        self.failing = Failing(start, tries)
