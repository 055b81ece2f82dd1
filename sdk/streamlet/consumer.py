"""The consumer: reads assigned partitions (or every partition of its topics) in order."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Self

from ._values import is_int
from .clock import SYSTEM, Clock
from .errors import (
    CommitFailed,
    InvalidRequest,
    OffsetOutOfRange,
    StreamletError,
    TopicNotFound,
)
from .fetching import check_reset_policy, fetch_records, reset_offset
from .groups.membership import Changes, Membership
from .records import DEFAULT_FETCH_BYTES, Record, TopicPartition
from .topicconfig import validate_topic_name
from .transport import Transport, connect

Listener = Callable[[list[TopicPartition]], None]

METADATA_MAX_AGE_S = 30.0
IDLE_PAUSE_S = 0.005
"""First pause between empty fetch rounds; it doubles while idle up to
``fetch_max_wait_ms``, and is back to this when data arrives or positions change. The
pause spans ``poll`` calls: a new call does not fetch before the pause is over."""
MAX_FETCH_WAIT_MS = 300_000


class Consumer:
    """Polls records from Streamlet topics.

    Without ``assign``, the consumer reads every partition of the topics it was given
    (partitions added later are picked up). Positions start per ``auto_offset_reset``.

    While nothing arrives, the consumer fetches again after a pause that doubles from 5 ms
    up to ``fetch_max_wait_ms`` (default 500, as in Kafka), whatever ``poll`` timeouts
    the application uses. Each fetch reads a partition's head (one DynamoDB read unit),
    so the cap sets what an idle consumer costs and how soon it sees the first record
    after a quiet spell.

    Example:
        >>> with Consumer("orders", auto_offset_reset="earliest") as consumer:  # doctest: +SKIP
        ...     for record in consumer.poll(timeout=1.0):
        ...         print(record.partition, record.offset, record.value)
    """

    def __init__(self, *topics: str, endpoint: str | None = None, group_id: str | None = None,
                 group_instance_id: str | None = None, client_id: str = "streamlet",
                 auto_offset_reset: str = "latest", enable_auto_commit: bool = True,
                 auto_commit_interval_ms: int = 5000, session_timeout_ms: int = 10_000,
                 heartbeat_interval_ms: int | None = None, max_poll_records: int = 500,
                 fetch_max_bytes: int = DEFAULT_FETCH_BYTES, fetch_max_wait_ms: int = 500,
                 consumer_timeout_ms: float | None = None,
                 on_assign: Listener | None = None, on_revoke: Listener | None = None,
                 on_lost: Listener | None = None, transport: Transport | None = None,
                 clock: Clock | None = None) -> None:
        check_reset_policy(auto_offset_reset)
        if max_poll_records < 1:
            raise InvalidRequest(f"max_poll_records must be >= 1, got {max_poll_records}.")
        if not is_int(fetch_max_wait_ms) \
                or not 0 <= fetch_max_wait_ms <= MAX_FETCH_WAIT_MS:
            raise InvalidRequest(f"fetch_max_wait_ms must be an integer from 0 to "
                                 f"{MAX_FETCH_WAIT_MS}, got {fetch_max_wait_ms!r}.")
        self._owns_transport = transport is None
        self._transport = transport or connect(endpoint)
        self._clock = clock or SYSTEM
        self._reset = auto_offset_reset
        self._max_records = max_poll_records
        self._max_bytes = fetch_max_bytes
        self._iter_timeout = None if consumer_timeout_ms is None else consumer_timeout_ms / 1000
        self._topics: list[str] = []
        self._assigned: list[TopicPartition] | None = None
        self._partitions: list[TopicPartition] = []
        self._metadata_at = -METADATA_MAX_AGE_S
        self._positions: dict[TopicPartition, int | None] = {}
        self._buffers: dict[TopicPartition, deque[Record]] = {}
        self._ends: dict[TopicPartition, tuple[int, str]] = {}
        """Per partition: the end of the last batch fetched and its topic id."""
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
            clock=self._clock)
        self._next_tick = self._next_commit = 0.0
        self._committed: dict[TopicPartition, int] = {}
        if topics:
            self.subscribe(topics)

    # ---- assignment -------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str], *, on_assign: Listener | None = None,
                  on_revoke: Listener | None = None, on_lost: Listener | None = None) -> None:
        """Read ``topics``: every partition, or with a ``group_id`` this member's share.

        The listeners run inside ``poll``/``close`` like Kafka's ConsumerRebalanceListener:
        ``on_revoke`` before partitions are given up (after their auto-commit),
        ``on_assign`` after new ones are taken, ``on_lost`` when a lease was lost.
        """
        self._topics = [validate_topic_name(t) for t in topics]
        self._assigned = None
        for name, listener in (("assign", on_assign), ("revoke", on_revoke), ("lost", on_lost)):
            if listener is not None:
                self._listeners[name] = listener
        if self._group is not None:
            self._group.start(self._topics)
            self._next_tick = 0.0
            self._set_partitions([])
            return
        self._refresh(force=True)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (replaces any subscription; not with a group)."""
        if self._group is not None:
            raise InvalidRequest("A consumer with a group_id gets its partitions from the "
                                 "group: use subscribe(), not assign().")
        tps = list(partitions)
        for tp in tps:
            self._check_partition(tp)
        self._topics, self._assigned = [], tps
        self._set_partitions(tps)

    def assignment(self) -> set[TopicPartition]:
        self._refresh()
        return set(self._partitions)

    def _check_partition(self, tp: TopicPartition) -> None:
        if not isinstance(tp, TopicPartition):
            raise InvalidRequest(f"Expected a TopicPartition, got {type(tp).__name__}.")
        self._transport.watermarks(tp.topic, tp.partition)  # raises TopicNotFound / Partition

    def _refresh(self, force: bool = False) -> None:
        if self._assigned is not None or self._group is not None:
            return
        if not force and self._clock.monotonic() - self._metadata_at < METADATA_MAX_AGE_S:
            return
        self._set_partitions(self._all_partitions())

    def _all_partitions(self) -> list[TopicPartition]:
        """Every partition of the subscribed topics; a topic that does not exist yet is
        skipped and picked up once it is created (as Kafka consumers do)."""
        tps = []
        for topic in self._topics:
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

    # ---- positions ----------------------------------------------------------------------------

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp``."""
        self._require(tp)
        position = self._positions[tp]
        if position is None:
            position = self._reset_position(tp)
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

    def _require(self, tp: TopicPartition) -> None:
        self._refresh()
        if tp not in self._positions:
            raise InvalidRequest(f"{tp.topic} partition {tp.partition} is not assigned to "
                                 "this consumer.")

    def _reset_position(self, tp: TopicPartition, error: OffsetOutOfRange | None = None) -> int:
        position = reset_offset(self._transport, tp, self._reset, error)
        self._reset_position_to(tp, position)
        return position

    # ---- polling ------------------------------------------------------------------------------

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """Up to ``max_poll_records`` records, waiting up to ``timeout`` seconds for some."""
        if self._closed:
            raise StreamletError("The consumer is closed.")
        deadline = self._clock.monotonic() + max(timeout, 0)
        while True:
            self._refresh()
            self._group_tick()
            now = self._clock.monotonic()
            if now < self._next_fetch:  # idle: the next round is not due yet
                if self._next_fetch >= deadline:
                    time.sleep(max(0.0, deadline - now))
                    return []
                time.sleep(self._next_fetch - now)
            records = self._poll_once()
            if records:
                self._wake()
                return records
            self._next_fetch = self._clock.monotonic() + self._idle
            self._idle = min(self._idle * 2, self._max_wait)
            if self._clock.monotonic() >= deadline:
                return records

    def _wake(self) -> None:
        """Fetch at once next time, and start the idle pause over (data, or new positions)."""
        self._idle = min(IDLE_PAUSE_S, self._max_wait)
        self._next_fetch = 0.0

    def _poll_once(self) -> list[Record]:
        out: list[Record] = []
        count = len(self._partitions)
        for i in range(count):
            tp = self._partitions[(self._next + i) % count]
            out += self._take(tp, self._max_records - len(out))
            if len(out) >= self._max_records:
                break
        self._next = (self._next + 1) % max(count, 1)
        return out

    def _take(self, tp: TopicPartition, limit: int) -> list[Record]:
        buffer = self._buffers[tp]
        if not buffer:
            self._fill(tp, limit)
        taken = [buffer.popleft() for _ in range(min(limit, len(buffer)))]
        if taken:
            self._positions[tp] = taken[-1].offset + 1
        return taken

    def _fill(self, tp: TopicPartition, limit: int) -> None:
        position = self.position(tp)
        end = self._ends.get(tp)
        boundary = end[1] if end is not None and end[0] == position else None
        fetched = fetch_records(self._transport, tp, position, self._reset, self._max_bytes,
                                limit, boundary)
        if fetched.position != self._positions[tp]:
            self._reset_position_to(tp, fetched.position)
        if fetched.end >= 0:
            self._ends[tp] = (fetched.end, fetched.topic_id)
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
        if self._group is None:
            return
        now = self._clock.monotonic()
        if self._auto_commit and now >= self._next_commit:
            self._next_commit = now + self._commit_interval
            try:
                self._commit_positions(self._group.owned)
            except CommitFailed:
                force = True  # a lease moved: find out which now
        if not force and now < self._next_tick:
            return
        self._next_tick = now + self._group.interval / 2  # see groups/leases.py: hand-off time
        self._apply(self._group, *self._group.rebalance(self._all_partitions()))

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

    def _drop(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self._positions.pop(tp, None)
            self._buffers.pop(tp, None)
            self._ends.pop(tp, None)
            self._committed.pop(tp, None)
        self._partitions = [tp for tp in self._partitions if tp not in tps]

    def _call(self, name: str, tps: list[TopicPartition]) -> None:
        listener = self._listeners[name]
        if listener is not None:
            listener(list(tps))

    def _commit_positions(self, tps: Iterable[TopicPartition]) -> None:
        offsets = {tp: pos for tp in tps
                   if (pos := self._positions.get(tp)) is not None
                   and pos != self._committed.get(tp)}
        if offsets:
            self.commit(offsets)

    def commit(self, offsets: Mapping[TopicPartition, int | tuple[int, str]] | None = None
               ) -> None:
        """Commit offsets (default: the current positions) for partitions this member owns.

        Each offset is the next record to read. Raises CommitFailed, writing nothing, if
        any partition's lease is no longer held at the epoch it was granted.
        """
        group = self._require_group()
        if offsets is None:
            offsets = {tp: p for tp in group.owned if (p := self._positions.get(tp)) is not None}
        normalised = {tp: (v, "") if isinstance(v, int) else v for tp, v in offsets.items()}
        for tp, (offset, _) in normalised.items():
            if not is_int(offset) or offset < 0:
                raise InvalidRequest(f"Cannot commit offset {offset!r} for {tp.topic} "
                                     f"partition {tp.partition}: offsets are >= 0.")
        group.commit(normalised)
        self._committed.update({tp: offset for tp, (offset, _) in normalised.items()})

    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp`` (None if nothing was committed)."""
        group = self._require_group()
        lease = self._transport.groups.lease(group.group, tp)
        return None if lease is None else lease.committed

    def lease_epoch(self, tp: TopicPartition) -> int:
        """The fencing token this member holds for ``tp`` (-1 if it does not own it)."""
        return self._group.owned.get(tp, -1) if self._group is not None else -1

    def _require_group(self) -> Membership:
        if self._group is None:
            raise InvalidRequest("Commits need a consumer created with group_id=...")
        return self._group

    def close(self) -> None:
        """Commit (with auto-commit), run on_revoke and leave the group: others take over.

        Closes the transport's connections too, unless it was passed in.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._group is not None and self._group.topics:
                self._leave(self._group)
        finally:
            if self._owns_transport:
                self._transport.close()

    def _leave(self, group: Membership) -> None:
        try:
            if self._auto_commit:
                self._final_commit(group)
        finally:
            owned = sorted(group.owned)
            if owned:
                self._call("revoke", owned)
            group.leave()

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
