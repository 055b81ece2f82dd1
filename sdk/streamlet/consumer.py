"""The consumer: reads assigned partitions (or every partition of its topics) in order.

kafka-python's ``KafkaConsumer`` names and semantics, on Streamlet's transports: ``poll``
returns :class:`~streamlet.records.ConsumerRecords` (a list of records that also maps each
partition to its records), keys and values go through ``key_deserializer`` /
``value_deserializer``, and a consumer with a ``group_id`` either subscribes (topics or a
pattern: the group shares the partitions) or assigns itself partitions and commits them
for its group where no member reads them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

from ._values import is_int
from .clock import SYSTEM, Clock
from .errors import (
    CommitFailed,
    ConsumerIllegalState,
    InvalidRequest,
    InvalidTxnState,
    OffsetOutOfRange,
    StreamletError,
    TopicNotFound,
)
from .fetching import (
    Deserializer,
    check_reset_policy,
    deserialized,
    fetch_records,
    offsets_for_times,
    reset_offset,
)
from .groups.commits import CommitCallback, Commits, OffsetLike
from .groups.membership import Changes, Membership
from .groups.subscriptions import compile_pattern
from .records import (
    DEFAULT_FETCH_BYTES,
    ConsumerGroupMetadata,
    ConsumerRecords,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    Record,
    TopicPartition,
)
from .topicconfig import validate_topic_name
from .transport import Transport, connect

Listener = Callable[[list[TopicPartition]], None]

METADATA_MAX_AGE_S = 30.0
IDLE_PAUSE_S = 0.005
"""First pause between empty fetch rounds; it doubles while idle up to
``fetch_max_wait_ms``, and is back to this when data arrives or positions change. The
pause spans ``poll`` calls: a new call does not fetch before the pause is over."""
MAX_FETCH_WAIT_MS = 300_000
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")


class Consumer:
    """Polls records from Streamlet topics.

    Without ``assign``, the consumer reads every partition of the topics it was given
    (partitions added later are picked up); with a ``group_id``, its share of them.
    Positions start per ``auto_offset_reset`` (in a group: at the committed offset).

    While nothing arrives, the consumer fetches again after a pause that doubles from 5 ms
    up to ``fetch_max_wait_ms`` (default 500, as in Kafka), whatever ``poll`` timeouts
    the application uses. Each fetch reads a partition's head (one DynamoDB read unit),
    so the cap sets what an idle consumer costs and how soon it sees the first record
    after a quiet spell.

    ``key_deserializer`` / ``value_deserializer`` turn each record's key and value bytes
    into what the record carries (a null key or value stays None). A member of a group
    that does not call ``poll`` for ``max_poll_interval_ms`` leaves the group; its next
    poll rejoins. ``isolation_level``: ``read_committed`` (the default) returns the records
    of committed transactions (and those sent outside any), never those of an aborted
    one, and stops before a transaction still open (at most its transaction_timeout_ms);
    ``read_uncommitted`` returns every record as it is appended.

    Example:
        >>> with Consumer("orders", auto_offset_reset="earliest",           # doctest: +SKIP
        ...               value_deserializer=json.loads) as consumer:
        ...     for record in consumer.poll(timeout_ms=1000):
        ...         print(record.partition, record.offset, record.value)
    """

    def __init__(self, *topics: str, endpoint: str | None = None, group_id: str | None = None,
                 group_instance_id: str | None = None, client_id: str = "streamlet",
                 key_deserializer: Deserializer | None = None,
                 value_deserializer: Deserializer | None = None,
                 auto_offset_reset: str = "latest", enable_auto_commit: bool = True,
                 auto_commit_interval_ms: int = 5000, session_timeout_ms: int = 10_000,
                 heartbeat_interval_ms: int | None = None, max_poll_interval_ms: int = 300_000,
                 max_poll_records: int = 500, fetch_max_bytes: int = DEFAULT_FETCH_BYTES,
                 fetch_max_wait_ms: int = 500, metadata_max_age_ms: int | None = None,
                 isolation_level: str = "read_committed",
                 consumer_timeout_ms: float | None = None,
                 on_assign: Listener | None = None, on_revoke: Listener | None = None,
                 on_lost: Listener | None = None, transport: Transport | None = None,
                 clock: Clock | None = None) -> None:
        _check_options(auto_offset_reset, max_poll_records, fetch_max_wait_ms,
                       max_poll_interval_ms, isolation_level, key_deserializer,
                       value_deserializer)
        self._owns_transport = transport is None
        self._transport = transport or connect(endpoint)
        self._clock = clock or SYSTEM
        self._reset = auto_offset_reset
        self._max_records = max_poll_records
        self._max_bytes = fetch_max_bytes
        self._iter_timeout = None if consumer_timeout_ms is None else consumer_timeout_ms / 1000
        self._deserializers = (key_deserializer, value_deserializer)
        self._isolation_level = isolation_level
        self._metadata_age = METADATA_MAX_AGE_S if metadata_max_age_ms is None \
            else metadata_max_age_ms / 1000
        self._topics: list[str] = []
        self._pattern: Any = None
        self._matched: tuple[float, list[str]] = (-self._metadata_age, [])
        self._assigned: list[TopicPartition] | None = None
        self._partitions: list[TopicPartition] = []
        self._metadata_at = -self._metadata_age
        self._positions: dict[TopicPartition, int | None] = {}
        self._buffers: dict[TopicPartition, deque[Record]] = {}
        self._ends: dict[TopicPartition, tuple[int, str]] = {}
        """Per partition: the end of the last batch fetched and its topic id."""
        self._highwater: dict[TopicPartition, tuple[int, bool]] = {}
        """Per partition: the high watermark seen by the last fetch, and whether exact."""
        self._paused: set[TopicPartition] = set()
        self._error: Exception | None = None
        """A deserializer's error, raised by the next poll (records before it came first)."""
        self._next = 0
        self._max_wait = fetch_max_wait_ms / 1000
        self._idle: float
        self._next_fetch: float
        self._wake()  # sets the idle pause and when the next fetch is due
        self._closed = False
        self._listeners: dict[str, Listener | None] = {
            "assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self._auto_commit = enable_auto_commit
        self._commit_interval = auto_commit_interval_ms / 1000
        self._group = None if group_id is None else Membership(
            self._transport.groups, group_id, instance_id=group_instance_id, client_id=client_id,
            session_timeout_s=session_timeout_ms / 1000,
            heartbeat_interval_s=(heartbeat_interval_ms or session_timeout_ms / 3) / 1000,
            clock=self._clock, max_poll_interval_s=max_poll_interval_ms / 1000)
        self._next_tick = self._next_commit = 0.0
        self._commits = None if self._group is None else Commits(self._group)
        self._committed = {} if self._commits is None else self._commits.committed
        if topics:
            self.subscribe(topics)

    # ---- subscription and assignment --------------------------------------------------------

    def subscribe(self, topics: Iterable[str] = (), pattern: str | re.Pattern[str] | None = None,
                  listener: object = None, *, on_assign: Listener | None = None,
                  on_revoke: Listener | None = None, on_lost: Listener | None = None) -> None:
        """Read ``topics`` (a list), or every topic matching ``pattern`` (RE2, whole names,
        looked up again every ``metadata_max_age_ms``): every partition, or with a
        ``group_id`` this member's share. An empty list unsubscribes.

        The listeners run inside ``poll``/``close`` like Kafka's ConsumerRebalanceListener:
        ``on_revoke`` before partitions are given up (after their auto-commit),
        ``on_assign`` after new ones are taken, ``on_lost`` when a lease was lost.
        ``listener`` may be a kafka-python ConsumerRebalanceListener instead
        (``on_partitions_revoked`` / ``_assigned`` / ``_lost``).
        """
        if isinstance(topics, str | bytes):
            raise TypeError(f"subscribe() takes a list of topics, not a string: "
                            f"subscribe([{topics!r}]) reads that one topic.")
        names = [validate_topic_name(t) for t in topics]
        if self._assigned is not None:
            raise ConsumerIllegalState("This consumer assigned itself partitions: call "
                                       "unsubscribe() before subscribe().")
        if names and pattern is not None:
            raise ConsumerIllegalState("subscribe() takes topics or a pattern, not both.")
        if not names and pattern is None:
            self.unsubscribe()
            return
        compiled = None if pattern is None else _compile(pattern)
        self._set_listeners(listener, on_assign, on_revoke, on_lost)
        self._topics, self._pattern = names, compiled
        self._matched = (-self._metadata_age, [])
        if self._group is not None:
            self._next_tick = 0.0  # the next poll rebalances and gives up dropped topics
            if compiled is None:
                self._group.start(names)
            return
        self._refresh(force=True)

    def _set_listeners(self, listener: object, on_assign: Listener | None,
                       on_revoke: Listener | None, on_lost: Listener | None) -> None:
        if listener is not None:
            on_revoke = getattr(listener, "on_partitions_revoked", None)
            on_assign = getattr(listener, "on_partitions_assigned", None)
            on_lost = getattr(listener, "on_partitions_lost", None) or on_revoke
            if not (callable(on_revoke) and callable(on_assign) and callable(on_lost)):
                raise TypeError("listener must have on_partitions_revoked and "
                                "on_partitions_assigned (a ConsumerRebalanceListener).")
        for name, given in (("assign", on_assign), ("revoke", on_revoke), ("lost", on_lost)):
            if given is not None:
                self._listeners[name] = given

    def unsubscribe(self) -> None:
        """Stop reading every subscribed topic or assigned partition; a group member
        commits (with auto-commit), runs on_revoke and leaves the group at once."""
        self._finish_commits()
        group = self._group
        if group is not None and group.topics:
            self._leave(group, self._auto_commit)
        elif group is not None and self._assigned and self._auto_commit:
            with contextlib.suppress(CommitFailed):
                self._commit_positions(self._assigned)
        self._topics, self._pattern, self._assigned = [], None, None
        self._set_partitions([])

    def subscription(self) -> set[str] | None:
        """The subscribed topics (those a pattern matches now); None when not subscribed."""
        if not self._subscribed():
            return None
        return set(self._subscribed_topics())

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (replacing the previous assignment).

        With a ``group_id`` the consumer reads from the group's committed offsets and may
        commit, but only partitions no member of the group reads (Kafka's "simple consumer
        group"; CommitFailed otherwise). An empty list unassigns.
        """
        if self._subscribed():
            raise ConsumerIllegalState("This consumer subscribed to topics: call unsubscribe() "
                                       "before assign().")
        tps = list(partitions)
        if not tps:
            self.unsubscribe()
            return
        for tp in tps:
            self._check_partition(tp)
        dropped = [tp for tp in self._assigned or () if tp not in tps]
        if self._group is not None and dropped and self._auto_commit:
            with contextlib.suppress(CommitFailed):
                self._commit_positions(dropped)
        self._assigned = tps
        self._set_partitions(tps)

    def assignment(self) -> set[TopicPartition]:
        self._refresh()
        return set(self._partitions)

    def topics(self) -> set[str]:
        """Every topic's name."""
        return set(self._transport.list_topics())

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The partition numbers of ``topic``, or None if it does not exist."""
        try:
            return set(range(self._transport.topic_metadata(topic).partitions))
        except TopicNotFound:
            return None

    def _subscribed(self) -> bool:
        return bool(self._topics) or self._pattern is not None

    def _subscribed_topics(self) -> list[str]:
        """The topics given, or those the pattern matches (listed every metadata age)."""
        if self._pattern is None:
            return self._topics
        at, matched = self._matched
        if self._clock.monotonic() - at >= self._metadata_age:
            matched = sorted(t for t in self._transport.list_topics()
                             if self._pattern.fullmatch(t))
            self._matched = (self._clock.monotonic(), matched)
        return matched

    def _check_partition(self, tp: TopicPartition) -> None:
        if not isinstance(tp, TopicPartition):
            raise InvalidRequest(f"Expected a TopicPartition, got {type(tp).__name__}.")
        self._transport.watermarks(tp.topic, tp.partition)  # raises TopicNotFound / Partition

    def _refresh(self, force: bool = False) -> None:
        if self._assigned is not None or self._group is not None:
            return
        if not force and self._clock.monotonic() - self._metadata_at < self._metadata_age:
            return
        self._set_partitions(self._all_partitions())

    def _all_partitions(self) -> list[TopicPartition]:
        """Every partition of the subscribed topics; a topic that does not exist yet is
        skipped and picked up once it is created (as Kafka consumers do)."""
        tps = []
        for topic in self._subscribed_topics():
            try:
                count = self._transport.topic_metadata(topic).partitions
            except TopicNotFound:
                continue
            tps += [TopicPartition(topic, p) for p in range(count)]
        self._metadata_at = self._clock.monotonic()
        return tps

    def _set_partitions(self, tps: list[TopicPartition]) -> None:
        if tps != self._partitions:
            self._wake()
        self._partitions = tps
        self._positions = {tp: self._positions.get(tp) for tp in tps}
        self._buffers = {tp: self._buffers.get(tp, deque()) for tp in tps}
        self._paused &= set(tps)

    # ---- positions and offsets ----------------------------------------------------------------

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp``."""
        self._require(tp)
        position = self._positions[tp]
        if position is None:
            position = self._initial_position(tp)
        return position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Move ``tp``'s position; the next poll returns records from ``offset`` on."""
        self._require(tp)
        if not is_int(offset) or offset < 0:
            raise InvalidRequest(f"Cannot seek {tp.topic} partition {tp.partition} to "
                                 f"{offset!r}: offsets are non-negative integers.")
        self._positions[tp] = offset
        self._buffers[tp].clear()
        self._wake()

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self.assignment()):
            self.seek(tp, self._transport.watermarks(tp.topic, tp.partition)[0])

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self.assignment()):
            self.seek(tp, self._transport.watermarks(tp.topic, tp.partition)[1])

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop returning records of these assigned partitions until ``resume``.

        Positions and group membership are unaffected (no rebalance)."""
        for tp in partitions:
            self._require(tp)
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        """Return records of these paused partitions again."""
        self._paused.difference_update(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def beginning_offsets(self, partitions: Iterable[TopicPartition]
                          ) -> dict[TopicPartition, int]:
        """Each partition's first readable offset (its log start)."""
        return {tp: self._watermarks(tp)[0] for tp in partitions}

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's high watermark: the offset its next record will get."""
        return {tp: self._watermarks(tp)[1] for tp in partitions}

    def highwater(self, tp: TopicPartition) -> int | None:
        """``tp``'s high watermark as of its last fetch (None before the first), for lag:
        ``highwater(tp) - position(tp)``. Exact when that fetch reached the end of the
        log; otherwise read once (one small read) the first time it is asked after it."""
        self._require(tp)
        known = self._highwater.get(tp)
        if known is None or known[1]:
            return None if known is None else known[0]
        high = max(known[0], self._watermarks(tp)[1])
        self._highwater[tp] = (high, True)
        return high

    def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                          ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition (assigned or not), the first offset whose record timestamp
        is at or after the given ms since the epoch, with that timestamp; None if none."""
        return offsets_for_times(self._transport, timestamps, self._max_bytes)

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        if not isinstance(tp, TopicPartition):
            raise InvalidRequest(f"Expected a TopicPartition, got {type(tp).__name__}.")
        return self._transport.watermarks(tp.topic, tp.partition)

    def _require(self, tp: TopicPartition) -> None:
        self._refresh()
        if tp not in self._positions:
            raise InvalidRequest(f"{tp.topic} partition {tp.partition} is not assigned to "
                                 "this consumer.")

    def _initial_position(self, tp: TopicPartition) -> int:
        """Where reading starts: a manually assigned group consumer's committed offset,
        else ``auto_offset_reset``."""
        if self._group is not None and self._assigned is not None:
            lease = self._transport.groups.lease(self._group.group, tp)
            if lease is not None and lease.committed is not None:
                self._reset_position_to(tp, lease.committed)
                self._committed[tp] = lease.committed
                return lease.committed
        return self._reset_position(tp)

    def _reset_position(self, tp: TopicPartition, error: OffsetOutOfRange | None = None) -> int:
        position = reset_offset(self._transport, tp, self._reset, error)
        self._reset_position_to(tp, position)
        return position

    # ---- polling ------------------------------------------------------------------------------

    def poll(self, timeout: float | None = None, *, timeout_ms: float | None = None,
             max_records: int | None = None) -> ConsumerRecords:
        """Up to ``max_records`` (default ``max_poll_records``) records, waiting up to
        ``timeout`` seconds, or ``timeout_ms`` milliseconds (default 1 s), for some.

        The result is a list of records that also maps each partition to its records
        (:class:`~streamlet.records.ConsumerRecords`). If a deserializer fails, the
        records before the failing one are returned first and the next poll raises its
        error; the position stays at that record (seek past it to skip it).
        """
        wait, limit = _poll_args(timeout, timeout_ms, max_records, self._max_records)
        if self._closed:
            raise StreamletError("The consumer is closed.")
        self._raise_error()
        group = self._group
        if group is not None:
            lost = group.poll_started()  # rejoins if max_poll_interval_ms had passed
            if lost:
                self._lose(lost)
        try:
            return self._poll(wait, limit)
        finally:
            if group is not None:
                group.poll_ended()

    def _poll(self, wait: float, limit: int) -> ConsumerRecords:
        deadline = self._clock.monotonic() + wait
        while True:
            self._finish_commits()
            self._refresh()
            self._group_tick()
            now = self._clock.monotonic()
            if now < self._next_fetch:  # idle: the next round is not due yet
                if self._next_fetch >= deadline:
                    time.sleep(max(0.0, deadline - now))
                    return ConsumerRecords()
                time.sleep(self._next_fetch - now)
            records = self._poll_once(limit)
            if records:
                self._wake()
                return records
            self._raise_error()
            self._next_fetch = self._clock.monotonic() + self._idle
            self._idle = min(self._idle * 2, self._max_wait)
            if self._clock.monotonic() >= deadline:
                return records

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _wake(self) -> None:
        """Fetch at once next time, and start the idle pause over (data, or new positions)."""
        self._idle = min(IDLE_PAUSE_S, self._max_wait)
        self._next_fetch = 0.0

    def _poll_once(self, limit: int) -> ConsumerRecords:
        out = ConsumerRecords()
        active = [tp for tp in self._partitions if tp not in self._paused]
        count = len(active)
        for i in range(count):
            tp = active[(self._next + i) % count]
            out += self._take(tp, limit - len(out))
            if len(out) >= limit or self._error is not None:
                break
        self._next = (self._next + 1) % max(count, 1)
        return out

    def _take(self, tp: TopicPartition, limit: int) -> list[Record]:
        buffer = self._buffers[tp]
        if not buffer:
            self._fill(tp, limit)
        taken: list[Record] = []
        while buffer and len(taken) < limit:
            try:
                taken.append(deserialized(buffer[0], *self._deserializers))
            except Exception as error:  # the user's deserializer: raised by the next poll
                self._error = error
                break
            buffer.popleft()
        if taken:
            self._positions[tp] = taken[-1].offset + 1
        end = self._ends.get(tp)
        if not buffer and end is not None and end[0] > (self._positions[tp] or 0):
            self._positions[tp] = end[0]  # past the batches of aborted transactions
        return taken

    def _fill(self, tp: TopicPartition, limit: int) -> None:
        position = self.position(tp)
        end = self._ends.get(tp)
        boundary = end[1] if end is not None and end[0] == position else None
        fetched = fetch_records(self._transport, tp, position, self._reset, self._max_bytes,
                                limit, boundary, self._isolation_level)
        if fetched.position != self._positions[tp]:
            self._reset_position_to(tp, fetched.position)
        if fetched.end >= 0:
            self._ends[tp] = (fetched.end, fetched.topic_id)
        if fetched.high_watermark >= 0:  # exact when the fetch found nothing more to read
            self._highwater[tp] = (fetched.high_watermark, not fetched.records)
        records = fetched.records
        epoch = self._group.owned.get(tp, -1) if self._group is not None else -1
        if epoch >= 0:
            records = [dataclasses.replace(r, lease_epoch=epoch) for r in records]
        self._buffers[tp].extend(records)

    def _reset_position_to(self, tp: TopicPartition, position: int) -> None:
        self._positions[tp] = position
        self._buffers[tp].clear()

    def __iter__(self) -> Iterator[Record]:
        """Yield records forever, or until ``consumer_timeout_ms`` passes without any."""
        idle_since = self._clock.monotonic()
        while not self._closed:
            records = self.poll(timeout=0.5)
            if records:
                idle_since = self._clock.monotonic()
            elif self._iter_timeout is not None \
                    and self._clock.monotonic() - idle_since >= self._iter_timeout:
                return
            yield from records

    # ---- groups -------------------------------------------------------------------------

    def _group_tick(self, force: bool = False) -> None:
        """Every heartbeat interval: auto-commit, then rebalance (listeners run here)."""
        group = self._group
        if group is None:
            return
        now = self._clock.monotonic()
        if self._auto_commit and now >= self._next_commit:
            self._next_commit = now + self._commit_interval
            try:
                self._commit_positions(self._committable())
            except CommitFailed:
                force = True  # a lease moved: find out which now
        if not self._subscribed() or (not force and now < self._next_tick):
            return
        self._next_tick = now + group.interval / 2  # see groups/leases.py: hand-off time
        topics = self._subscribed_topics()
        if topics != group.topics:  # a pattern matched other topics (or none any more)
            if not topics:
                self._apply(group, *group.rebalance([]))
                group.leave()
                return
            group.start(topics)
        if group.topics:  # else a pattern that matches nothing yet: not in the group
            self._apply(group, *group.rebalance(self._all_partitions()))

    def _apply(self, group: Membership, changes: Changes, release: list[TopicPartition]
               ) -> None:
        if changes.lost:
            self._drop(changes.lost)
            self._call("lost", changes.lost)
        if release:
            if self._auto_commit:
                with contextlib.suppress(CommitFailed):  # already lost: nothing to keep
                    self._commit_positions(release)
            self._call("revoke", release)
            group.release(release)
            self._drop(release)
        if changes.assigned:
            for tp, lease in changes.assigned.items():
                self._positions[tp] = lease.committed
                self._buffers[tp] = deque()
                if lease.committed is not None:
                    self._committed[tp] = lease.committed
            self._call("assign", sorted(changes.assigned))
            self._wake()
        self._partitions = sorted(group.owned)

    def _lose(self, lost: list[TopicPartition]) -> None:
        """Partitions held when max_poll_interval_ms passed: others may read them now."""
        self._drop(lost)
        self._call("lost", lost)
        self._next_tick = 0.0

    def _drop(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self._positions.pop(tp, None)
            self._buffers.pop(tp, None)
            self._ends.pop(tp, None)
            self._committed.pop(tp, None)
            self._highwater.pop(tp, None)
            self._paused.discard(tp)
        self._partitions = [tp for tp in self._partitions if tp not in tps]

    def _call(self, name: str, tps: list[TopicPartition]) -> None:
        listener = self._listeners[name]
        if listener is not None:
            listener(list(tps))

    def _committable(self) -> list[TopicPartition]:
        """What the current positions commit: owned leases, or assigned partitions."""
        if self._group is None:
            return []
        return list(self._assigned) if self._assigned is not None else list(self._group.owned)

    def _commit_positions(self, tps: Iterable[TopicPartition]) -> None:
        offsets = {tp: pos for tp in tps
                   if (pos := self._positions.get(tp)) is not None
                   and pos != self._committed.get(tp)}
        if offsets:
            self.commit(offsets)

    def commit(self, offsets: Mapping[TopicPartition, OffsetLike] | None = None) -> None:
        """Commit offsets (default: the current positions) for the group.

        Each offset is the next record to read: an int, ``OffsetAndMetadata(offset,
        metadata)`` or ``(offset, metadata)``. A subscribed member commits what it owns and
        raises CommitFailed, writing nothing, if any partition's lease is no longer held at
        the epoch it was granted; a consumer using ``assign()`` commits partitions no
        member of the group reads. Commits apply in call order, commit_async ones included.
        """
        commits = self._require_commits()
        self._finish_commits()
        commits.commit(self._offsets(offsets), assigned=self._assigned is not None)

    def commit_async(self, offsets: Mapping[TopicPartition, OffsetLike] | None = None,
                     callback: CommitCallback | None = None) -> Future[None]:
        """Commit on a background thread; returns a Future.

        ``callback(offsets, error)`` (``{tp: OffsetAndMetadata}``, None on success) runs
        inside a later ``poll``, ``commit`` or ``close`` of this consumer, as Kafka's does.
        """
        return self._require_commits().commit_async(
            self._offsets(offsets), assigned=self._assigned is not None, callback=callback)

    def _offsets(self, offsets: Mapping[TopicPartition, OffsetLike] | None
                 ) -> Mapping[TopicPartition, OffsetLike]:
        if offsets is not None:
            return offsets
        return {tp: p for tp in self._committable() if (p := self._positions.get(tp)) is not None}

    def _finish_commits(self) -> None:
        """Run the callbacks of finished commit_async calls; a refusal means a lease moved."""
        if self._commits is not None and self._commits.finish():
            self._next_tick = 0.0

    def committed(self, tp: TopicPartition, metadata: bool = False
                  ) -> int | OffsetAndMetadata | None:
        """The group's committed offset for ``tp`` (None if nothing was committed); with
        ``metadata=True`` an OffsetAndMetadata. Any partition, assigned or not."""
        group = self._require_group()
        if not isinstance(tp, TopicPartition):
            raise InvalidRequest(f"Expected a TopicPartition, got {type(tp).__name__}.")
        lease = self._transport.groups.lease(group.group, tp)
        if lease is None or lease.committed is None:
            return None
        return OffsetAndMetadata(lease.committed, lease.metadata) if metadata \
            else lease.committed

    def group_metadata(self) -> ConsumerGroupMetadata:
        """What ``Producer.send_offsets_to_transaction`` takes: the group, this member and
        the lease epoch of every partition it owns now. The consumer must be subscribed
        (its leases fence the commit) with ``enable_auto_commit=False`` (offsets go only
        into transactions); InvalidTxnState otherwise."""
        group = self._require_group()
        if self._auto_commit:
            raise InvalidTxnState(
                f"Consumer of group '{group.group}' was created with enable_auto_commit=True: "
                "it would commit offsets outside the transactions that send them. Create it "
                "with enable_auto_commit=False.")
        if self._assigned is not None:
            raise InvalidTxnState(
                f"Consumer of group '{group.group}' uses assign(): offsets sent with a "
                "transaction are fenced by the leases a subscribed member holds; subscribe().")
        return ConsumerGroupMetadata(group.group, group.member_id, dict(group.owned))

    def lease_epoch(self, tp: TopicPartition) -> int:
        """The fencing token this member holds for ``tp`` (-1 if it does not own it)."""
        return self._group.owned.get(tp, -1) if self._group is not None else -1

    def _require_group(self) -> Membership:
        if self._group is None:
            raise InvalidRequest("Commits need a consumer created with group_id=...")
        return self._group

    def _require_commits(self) -> Commits:
        self._require_group()
        assert self._commits is not None
        return self._commits

    # ---- closing ------------------------------------------------------------------------------

    def close(self, autocommit: bool = True) -> None:
        """Leave: finish pending commit_async calls, commit the positions (with
        ``enable_auto_commit``, unless ``autocommit=False``), run on_revoke and leave the
        group, so others take over at once.

        Closes the transport's connections too, unless it was passed in.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._commits is not None:
                self._commits.close()
            commit = autocommit and self._auto_commit
            group = self._group
            if group is not None and group.topics:
                self._leave(group, commit)
            elif group is not None and self._assigned and commit:
                with contextlib.suppress(CommitFailed):
                    self._commit_positions(self._assigned)
        finally:
            if self._owns_transport:
                self._transport.close()

    def _leave(self, group: Membership, commit: bool) -> None:
        if group.expired:  # nothing to commit: what it held is lost (others may read it)
            lost = sorted(group.owned)
            self._drop(lost)
            if lost:
                self._call("lost", lost)
            group.leave()
            return
        try:
            if commit:
                self._final_commit(group)
        finally:
            owned = sorted(group.owned)
            if owned:
                self._call("revoke", owned)
            group.leave()
            self._drop(owned)

    def _final_commit(self, group: Membership) -> None:
        """Commit what is still ours; partitions lost meanwhile go to on_lost, not an error."""
        try:
            self._commit_positions(list(group.owned))
        except CommitFailed:
            lost = group.drop_lost()
            self._drop(lost)
            self._call("lost", lost)
            with contextlib.suppress(CommitFailed):
                self._commit_positions(list(group.owned))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _check_options(reset: str, max_poll_records: int, fetch_max_wait_ms: int,
                   max_poll_interval_ms: int, isolation_level: str,
                   *deserializers: Deserializer | None) -> None:
    """InvalidRequest for a configuration Kafka would refuse."""
    check_reset_policy(reset)
    if not is_int(max_poll_records) or max_poll_records < 1:
        raise InvalidRequest(f"max_poll_records must be >= 1, got {max_poll_records!r}.")
    if not is_int(fetch_max_wait_ms) or not 0 <= fetch_max_wait_ms <= MAX_FETCH_WAIT_MS:
        raise InvalidRequest(f"fetch_max_wait_ms must be an integer from 0 to "
                             f"{MAX_FETCH_WAIT_MS}, got {fetch_max_wait_ms!r}.")
    if not is_int(max_poll_interval_ms) or max_poll_interval_ms < 1:
        raise InvalidRequest(f"max_poll_interval_ms must be an integer >= 1, got "
                             f"{max_poll_interval_ms!r}.")
    if isolation_level not in ISOLATION_LEVELS:
        raise InvalidRequest(f"isolation_level={isolation_level!r}: expected one of "
                             f"{', '.join(ISOLATION_LEVELS)}.")
    if any(d is not None and not callable(d) for d in deserializers):
        raise InvalidRequest("key_deserializer and value_deserializer are callables that "
                             "take bytes (e.g. json.loads), or None.")


def _poll_args(timeout: float | None, timeout_ms: float | None, max_records: int | None,
               default_records: int) -> tuple[float, int]:
    """(seconds to wait, record limit) from poll's arguments."""
    if timeout is not None and timeout_ms is not None:
        raise InvalidRequest("poll() takes timeout (seconds) or timeout_ms, not both.")
    if timeout_ms is not None:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) \
                or timeout_ms < 0:
            raise InvalidRequest(f"timeout_ms must be a number >= 0, got {timeout_ms!r}.")
        wait = timeout_ms / 1000
    else:
        wait = max(1.0 if timeout is None else timeout, 0)
    if max_records is None:
        return wait, default_records
    if not is_int(max_records) or max_records < 1:
        raise InvalidRequest(f"max_records must be an integer >= 1, got {max_records!r}.")
    return wait, max_records


def _compile(pattern: object) -> Any:
    """A subscription pattern as RE2 (as REST v2's ``topic_pattern``: whole topic names)."""
    text = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    if not isinstance(text, str):
        raise TypeError(f"pattern must be a str (a regex), got {type(pattern).__name__}.")
    try:
        return compile_pattern(text)
    except ImportError:
        raise ImportError("subscribe(pattern=...) matches topics with RE2: pip install "
                          "google-re2 (streamlet[local] includes it).") from None
