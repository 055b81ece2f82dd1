"""The dispatcher: one session delivers one partition of one trigger, from the group's
committed offset, in order, committing after each success.

Whatever wakes it (a DynamoDB stream record saying a partition has new batches, a
wake-up after a batching window or a backoff, ``reset-offsets``, a local runner), a
session does the same, through the normal read path:

1. claim the partition in the trigger's group (:mod:`.claims`); if another live session
   holds it, stop: that one reads to the end after releasing, so it delivers our records;
2. start at the committed offset (or, the first time, the starting position);
3. fetch, plan (:mod:`.plan`) and act: invoke the target, dead-letter, skip, wait out the
   batching window, retry with backoff; commit (fenced by the claim's lease epoch) after
   each step succeeds;
4. when caught up, release the claim, then read once more (records appended meanwhile
   are delivered by this session: a signal that found it busy relied on that).

A session never outlives its budget (``deadline``): what is left is answered with
``wake_after_ms`` (the caller schedules another session), and the retry count of a failing
batch is kept in the commit metadata, so the next session goes on counting. Offsets are
committed only after the target (or the dead-letter destination) took the records, so a
crash at any point re-delivers from the last commit: at least once, duplicates only after
a failure. A session whose lease moved (``reset-offsets``, or a newer claim) stops at its
next commit, which is refused.

Example:
    >>> dispatcher = Dispatcher(engine, [trigger], targets={"t": target},
    ...                         token="run-1")                    # doctest: +SKIP
    >>> dispatcher.dispatch("t", 0).delivered                     # doctest: +SKIP
    42
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..clock import SYSTEM, Clock
from ..errors import (
    CommitFailed,
    DataUnavailable,
    PartitionNotFound,
    RetriableError,
    StreamletError,
    TopicNotFound,
)
from ..fetching import fetch_records
from ..groups.leases import Lease
from ..records import TopicPartition
from ..transport.base import Transport
from . import claims
from .config import StartingPosition, Trigger
from .dlq import DeadLetters, Failure
from .event import failed
from .plan import DeadLetter, Failing, Fetch, Invoke, Plan, Skip, Wait
from .targets import Target

log = logging.getLogger("streamlet.triggers")

METADATA = "trigger"
"""Commit metadata of a trigger's commits (never empty: ``reset-offsets`` writes "")."""
DEFAULT_BUDGET_S = 60.0
CLAIM_MARGIN_MS = 30_000
"""A claim outlives its session's budget by this much (an in-flight invocation ends)."""
RESERVE_S = 1.0
"""Time kept back at the end of a budget to commit and release."""
HELD_BACK_WAKE_MS = 1_000
"""How soon to look again at records an open transaction holds back (its commit or abort
writes nothing to the log, so no stream record would signal it)."""


@dataclass
class Result:
    """What one session did."""

    trigger: str
    partition: int
    delivered: int = 0
    """Records the target took (and committed)."""
    invocations: int = 0
    failed_invocations: int = 0
    dead_lettered: int = 0
    discarded: int = 0
    """Records given up on with no on-failure destination (Lambda drops them too)."""
    skipped: int = 0
    """Records the key filter dropped, or lost before delivery (retention passed them)."""
    busy: bool = False
    """Another session held the partition (it delivers what this one was woken for)."""
    wake_after_ms: int | None = None
    """Not finished: run another session after this long."""
    position: int = -1
    error: str = ""
    elapsed_ms: float = 0.0
    """How long the session took (the dispatcher's billed time, on AWS)."""


def _metadata(plan: Plan) -> str:
    """``trigger[;retry=OFFSET:TRIES][;pin=FIRST:END]``: what a session must remember."""
    out = METADATA
    if plan.failing is not None:
        out += f";retry={plan.failing.encode()}"
    if plan.pinned is not None:
        out += f";pin={plan.pinned[0]}:{plan.pinned[1]}"
    return out


def _remembered(metadata: str) -> tuple[Failing | None, tuple[int, int] | None]:
    """What :func:`_metadata` wrote: the failing batch and the pinned one."""
    fields = dict(part.partition("=")[::2] for part in metadata.split(";")[1:])
    failing = Failing.decode(fields.get("retry", ""))
    first, _, end = fields.get("pin", "").partition(":")
    pinned = (int(first), int(end)) if first.isdigit() and end.isdigit() else None
    return failing, pinned


class Dispatcher:
    """Runs delivery sessions for a set of triggers over one Streamlet deployment.

    Args:
        transport: the deployment (the engine in direct mode: groups, fetch, append).
        triggers: what to deliver.
        targets: trigger name -> where its batches go.
        dead_letters: trigger name -> its on-failure destination (absent: none).
        token: what names this dispatcher's claims (see :mod:`.claims`).
        inline_wait_ms: batching-window waits up to this long are slept here; longer ones
            end the session with ``wake_after_ms``.
        backoff_ms: first and largest pause between retries of a failing batch.
    """

    def __init__(self, transport: Transport, triggers: Iterable[Trigger],
                 targets: Mapping[str, Target],
                 dead_letters: Mapping[str, DeadLetters] | None = None, *, token: str,
                 clock: Clock = SYSTEM, sleep: Callable[[float], None] = time.sleep,
                 inline_wait_ms: int = 1000, backoff_ms: tuple[int, int] = (100, 10_000)
                 ) -> None:
        self.transport = transport
        self.triggers = {t.name: t for t in triggers}
        self.targets = dict(targets)
        self.dead_letters = dict(dead_letters or {})
        self.token = token
        self.clock = clock
        self.sleep = sleep
        self.inline_wait_ms = inline_wait_ms
        self.backoff_ms = backoff_ms

    def add(self, trigger: Trigger, target: Target,
            dead_letters: DeadLetters | None = None) -> None:
        """Deliver ``trigger`` too (replacing one of the same name)."""
        self.triggers[trigger.name] = trigger
        self.targets[trigger.name] = target
        if dead_letters is not None:
            self.dead_letters[trigger.name] = dead_letters

    def for_topic(self, topic: str) -> list[Trigger]:
        """The triggers reading ``topic``."""
        return [t for t in self.triggers.values() if t.topic == topic]

    def now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def dispatch(self, name: str, partition: int, *, hint: int | None = None,
                 deadline: float | None = None, force: bool = False) -> Result:
        """One session for partition ``partition`` of trigger ``name``.

        ``hint``: the lowest base offset the waking signals named (where LATEST starts in
        a partition the trigger has never read); ``deadline``: monotonic time by which the
        session ends; ``force``: take the claim even from another live session (a local
        runner restarting after a crash).
        """
        trigger = self.triggers[name]
        deadline = deadline if deadline is not None else \
            self.clock.monotonic() + DEFAULT_BUDGET_S
        session = _Session(self, trigger, partition, deadline)
        started = self.clock.monotonic()
        try:
            session.run(hint, force)
        except CommitFailed as error:
            session.result.error = f"fenced: {error}"  # reset-offsets, or a newer claim
        except (TopicNotFound, PartitionNotFound, DataUnavailable) as error:
            session.result.error = f"{type(error).__name__}: {error}"
            log.error("trigger %s partition %d stopped: %s", name, partition, error)
        session.result.elapsed_ms = (self.clock.monotonic() - started) * 1000
        return session.result

    def activate(self, name: str) -> list[int]:
        """Give every partition of the trigger's topic a committed offset (its starting
        position) where it has none; returns the partitions with records to deliver."""
        trigger = self.triggers[name]
        groups = self.transport.groups
        backlog = []
        for partition in range(self.transport.topic_metadata(trigger.topic).partitions):
            tp = TopicPartition(trigger.topic, partition)
            lease = groups.lease(trigger.group, tp)
            if lease is None or lease.committed is None:
                _Session(self, trigger, partition, self.clock.monotonic()).activate()
            lease = groups.lease(trigger.group, tp)
            if lease is not None and lease.committed is not None and \
                    lease.committed < self.transport.watermarks(trigger.topic, partition)[1]:
                backlog.append(partition)
        return backlog

    def start_offset(self, trigger: Trigger, tp: TopicPartition, hint: int | None) -> int:
        """Where a partition without a committed offset starts."""
        low, high = self.transport.watermarks(tp.topic, tp.partition)
        if trigger.starting_position is StartingPosition.TRIM_HORIZON:
            return low
        if trigger.starting_position is StartingPosition.AT_TIMESTAMP:
            assert trigger.starting_position_timestamp_ms is not None
            found = self.transport.offset_for_time(tp.topic, tp.partition,
                                                   trigger.starting_position_timestamp_ms)
            return high if found is None else found
        return min(max(hint, low), high) if hint is not None else high


class _Session:
    """One claim on one partition, from acquiring it to releasing it."""

    def __init__(self, dispatcher: Dispatcher, trigger: Trigger, partition: int,
                 deadline: float) -> None:
        self.d = dispatcher
        self.trigger = trigger
        self.tp = TopicPartition(trigger.topic, partition)
        self.deadline = deadline
        self.result = Result(trigger.name, partition)
        self.target = dispatcher.targets[trigger.name]
        self.lease: Lease | None = None
        self.held = False
        self.plan: Plan | None = None

    # ---- the claim ------------------------------------------------------------------------

    def _acquire(self, force: bool) -> bool:
        until = self.d.now_ms() + int((self.deadline - self.d.clock.monotonic()) * 1000) \
            + CLAIM_MARGIN_MS
        self.lease = claims.acquire(self.d.transport.groups, self.trigger.group, self.tp,
                                    self.d.token, until, self.d.now_ms(), force)
        self.result.busy = self.lease is None
        self.held = self.lease is not None
        return self.held

    def _commit(self, offset: int) -> None:
        assert self.lease is not None and self.plan is not None
        self.plan.committed(offset)
        metadata = _metadata(self.plan)
        self._retrying(lambda: self.d.transport.groups.commit(
            self.trigger.group, self.lease.owner or "",  # type: ignore[union-attr]
            {self.tp: (self.lease.epoch, self.plan.position, metadata)}))  # type: ignore[union-attr]
        self.result.position = self.plan.position

    def _retrying(self, call: Callable[[], object], attempts: int = 4) -> None:
        for attempt in range(attempts):
            try:
                call()
                return
            except RetriableError:
                if attempt == attempts - 1:
                    raise
                self.d.sleep(0.05 * 2 ** attempt)

    # ---- the session ----------------------------------------------------------------------

    def run(self, hint: int | None, force: bool) -> None:
        try:
            if not self._start(hint, force):
                return
            while True:
                if not self._deliver():
                    return  # ended early: wake_after_ms says when to go on
                if not self._release():
                    return
                if not self._more():
                    self._held_back()
                    return
                if not self._acquire(False):
                    return
        except RetriableError as error:  # storage or target unavailable: later
            self.result.error = f"{type(error).__name__}: {error}"
            self.result.wake_after_ms = max(self._backoff(1), 10)
            if self.held:
                with contextlib.suppress(StreamletError):
                    self._release()

    def _start(self, hint: int | None, force: bool) -> bool:
        """Claim the partition and know where to start (committing the starting position
        the first time); False if another session holds it."""
        if not self._acquire(force):
            return False
        assert self.lease is not None
        position = self.lease.committed
        start = self.d.start_offset(self.trigger, self.tp, hint) if position is None \
            else position
        failing, pinned = _remembered(self.lease.metadata)
        self.plan = Plan(self.trigger, start, failing, self.target.max_batch_bytes, pinned)
        if position is None:
            self._commit(start)
        return True

    def activate(self) -> None:
        """Claim, set the starting position if there is none, release."""
        if self._start(None, False):
            self._release()

    def _release(self) -> bool:
        assert self.lease is not None
        self.held = False
        released = claims.release(self.d.transport.groups, self.trigger.group, self.lease)
        return released is not None

    def _more(self) -> bool:
        """After releasing: did records arrive since the last read?"""
        assert self.plan is not None
        self.plan.stale()
        self._fetch(self.plan.fetch_position)
        return self.plan.next(self.d.now_ms()) is not None

    def _held_back(self) -> None:
        """Caught up: if the log goes on past what read_committed returned, an open
        transaction holds those records back; ask to be woken to look again."""
        assert self.plan is not None
        _, end = self.d.transport.watermarks(self.tp.topic, self.tp.partition)
        if end > self.plan.fetch_position:
            self.result.wake_after_ms = HELD_BACK_WAKE_MS

    def _deliver(self) -> bool:
        """Act until caught up (True) or out of budget / waiting long (False)."""
        assert self.plan is not None
        while (step := self.plan.next(self.d.now_ms())) is not None:
            if isinstance(step, Fetch):
                self._fetch(step.position)
            elif isinstance(step, Skip):
                self.result.skipped += step.commit - self.plan.position
                self._commit(step.commit)
            elif isinstance(step, Wait):
                if not self._wait(step.ms):
                    return False
            elif isinstance(step, DeadLetter):
                self._dead_letter(step)
            elif not self._invoke(step):
                return False
        return True

    def _left_s(self) -> float:
        return self.deadline - self.d.clock.monotonic() - RESERVE_S

    def _wait(self, ms: int) -> bool:
        if ms > self.d.inline_wait_ms or ms / 1000 > self._left_s():
            self.result.wake_after_ms = ms
            self._release()
            return False
        self.d.sleep(ms / 1000)
        assert self.plan is not None
        self.plan.stale()
        return True

    def _fetch(self, position: int) -> None:
        assert self.plan is not None
        wanted = self.trigger.batch_size
        fetched = fetch_records(self.d.transport, self.tp, position, "earliest",
                                self.target.max_batch_bytes, wanted)
        if fetched.position != position:  # retention (or a new incarnation) moved the log
            log.warning("trigger %s: %s partition %d moved from offset %d to %d before "
                        "delivery", self.trigger.name, self.tp.topic, self.tp.partition,
                        position, fetched.position)
            self.result.skipped += max(0, fetched.position - position)
            self.plan.reset(fetched.position)
            self._commit(fetched.position)
        self.plan.feed(fetched.records, caught_up=len(fetched.records) < wanted,
                       end=fetched.end if fetched.end >= 0 else None)

    def _invoke(self, step: Invoke) -> bool:
        assert self.plan is not None
        if self._left_s() <= 0:
            self.result.wake_after_ms = 0
            self._release()
            return False
        pin = (step.records[0].offset, step.commit)
        if self.target.pins_batches and self.plan.pinned != pin:
            self.plan.pinned = pin
            self._commit(self.plan.position)  # a retry after a crash redoes exactly this
        self.result.invocations += 1
        delivered = self.target.deliver(self.trigger, step.records)
        answer = delivered.answer
        if delivered.rejected:
            rejected = [r for r in step.records if r.offset in delivered.rejected]
            self._send_dead([Failure(r, delivered.rejected[r.offset], 1) for r in rejected])
        if answer.ok:
            self.result.delivered += len(step.records) - len(delivered.rejected)
            self._commit(step.commit)
            self.plan.stale()  # read again before giving the claim up: a steady flow keeps it
            return True
        self.result.failed_invocations += 1
        log.warning("trigger %s: %s partition %d batch %d..%d failed: %s", self.trigger.name,
                    self.tp.topic, self.tp.partition, step.records[0].offset,
                    step.records[-1].offset, answer.error)
        done = self.plan.failed(step, answer)
        if done is not None:
            self.result.delivered += sum(r.offset < done for r in step.records)
            self._commit(done)
        tries = self.plan.failing.tries if self.plan.failing else 0
        pause = self._backoff(tries) / 1000
        if pause > self._left_s():
            self._commit(self.plan.position)  # keeps the retry count for the next session
            self.result.wake_after_ms = int(pause * 1000)
            self._release()
            return False
        if pause:
            self.d.sleep(pause)
        return True

    def _backoff(self, tries: int) -> int:
        first, most = self.d.backoff_ms
        return min(most, first * 2 ** max(0, tries - 1)) if first else 0

    def _dead_letter(self, step: DeadLetter) -> None:
        assert self.plan is not None
        self._send_dead([Failure(r, step.error, step.attempts) for r in step.records])
        self._commit(step.commit)

    def _send_dead(self, failures: list[Failure]) -> None:
        if not failures:
            return
        destination = self.d.dead_letters.get(self.trigger.name)
        if destination is None:
            self.result.discarded += len(failures)
            log.error("trigger %s: %d record(s) of %s partition %d discarded (no on_failure "
                      "destination): offsets %s", self.trigger.name, len(failures),
                      self.tp.topic, self.tp.partition,
                      [f.record.offset for f in failures][:20])
            return
        destination.send(self.trigger, failures)
        self.result.dead_lettered += len(failures)


__all__ = ["Dispatcher", "Result", "failed"]
