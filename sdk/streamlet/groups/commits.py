"""A consumer's offset commits: synchronous and asynchronous ones in call order.

Offsets come as Kafka clients pass them (an int, ``OffsetAndMetadata`` or ``(offset,
metadata)`` per partition). A subscribed member's commit is fenced by the lease epochs it
holds when the commit is made (read on the caller's thread); a consumer that assigned
itself partitions commits them as a simple consumer
(:func:`~streamlet.groups.member.commit_unowned`). ``commit_async`` writes on one
background thread, and a synchronous commit made meanwhile queues behind it, so commits
apply in call order; callbacks run when the consumer calls :meth:`Commits.finish`
(inside its poll, commit and close), as Kafka runs them on the polling thread.

Example:
    >>> commits = Commits(membership)                                    # doctest: +SKIP
    >>> commits.commit_async({tp: OffsetAndMetadata(42, "")}, assigned=False,
    ...                      callback=lambda offsets, error: print(error))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from .._values import is_int
from ..errors import CommitFailed, InvalidRequest
from ..records import OffsetAndMetadata, TopicPartition
from .membership import Membership

OffsetLike = int | tuple[int, str] | OffsetAndMetadata
CommitCallback = Callable[[dict[TopicPartition, OffsetAndMetadata], Exception | None], None]
Offsets = dict[TopicPartition, tuple[int, str]]
MAX_COMMIT_METADATA = 4096
"""Characters of commit metadata (Kafka's ``offset.metadata.max.bytes``)."""


def normalise_offsets(offsets: Mapping[TopicPartition, OffsetLike]) -> Offsets:
    """``{tp: (offset, metadata)}`` from ints, OffsetAndMetadata or (offset, metadata).

    Raises InvalidRequest for a negative offset, a key that is not a TopicPartition or
    metadata that is not a string of at most 4096 characters.

    Example:
        >>> tp = TopicPartition("t", 0)
        >>> [normalise_offsets({tp: v})[tp] for v in (5, OffsetAndMetadata(7, "m"), (9, "x"))]
        [(5, ''), (7, 'm'), (9, 'x')]
    """
    out: Offsets = {}
    for tp, value in offsets.items():
        if not isinstance(tp, TopicPartition):
            raise InvalidRequest(f"Offsets to commit are keyed by TopicPartition, got "
                                 f"{type(tp).__name__}.")
        offset, metadata = (value[0], value[1] if len(value) > 1 else "") \
            if isinstance(value, tuple) else (value, "")
        if not is_int(offset) or offset < 0:
            raise InvalidRequest(f"Cannot commit offset {offset!r} for {tp.topic} "
                                 f"partition {tp.partition}: offsets are >= 0.")
        metadata = "" if metadata is None else metadata
        if not isinstance(metadata, str) or len(metadata) > MAX_COMMIT_METADATA:
            raise InvalidRequest(f"Commit metadata for {tp.topic} partition {tp.partition} "
                                 f"must be a string of at most {MAX_COMMIT_METADATA} "
                                 "characters.")
        out[tp] = (offset, metadata)
    return out


class Commits:
    """The commits of one consumer in a group, and what it last committed per partition."""

    def __init__(self, group: Membership) -> None:
        self._group = group
        self.committed: dict[TopicPartition, int] = {}
        """The offsets this consumer committed (or found committed) per partition."""
        self._order: dict[TopicPartition, int] = {}
        """Per partition: the call number of the commit ``committed`` holds."""
        self._calls = itertools.count()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[Offsets, int, CommitCallback | None, Future[None]]] = deque()
        """commit_async calls in call order, until finished (callbacks run in that order)."""

    def commit(self, offsets: Mapping[TopicPartition, OffsetLike], *, assigned: bool) -> None:
        """Commit now (after any commit_async still running); raises what the write raised."""
        normalised, call = self._prepare(offsets, assigned)
        number = next(self._calls)
        if self._executor is not None:
            self._executor.submit(call).result()
        else:
            call()
        self._record(normalised, number)

    def commit_async(self, offsets: Mapping[TopicPartition, OffsetLike], *, assigned: bool,
                     callback: CommitCallback | None = None) -> Future[None]:
        """Commit on the background thread; a refusal known at once (partitions not held)
        fails the future too. Bad input raises InvalidRequest here."""
        try:
            normalised, call = self._prepare(offsets, assigned)
        except CommitFailed as error:
            failed: Future[None] = Future()
            failed.set_exception(error)
            self._pending.append((normalise_offsets(offsets), -1, callback, failed))
            return failed
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="streamlet-commit")
        number = next(self._calls)
        future = self._executor.submit(call)
        self._pending.append((normalised, number, callback, future))
        return future

    def _prepare(self, offsets: Mapping[TopicPartition, OffsetLike], assigned: bool
                 ) -> tuple[Offsets, Callable[[], None]]:
        normalised = normalise_offsets(offsets)
        if assigned:
            return normalised, functools.partial(self._group.commit_assigned, normalised)
        return normalised, functools.partial(self._group.commit_call,
                                             self._group.fenced(normalised))

    def finish(self) -> bool:
        """Record completed async commits and run their callbacks, in call order, on the
        caller's thread. True if one was refused (CommitFailed): a lease moved."""
        refused = False
        while self._pending and self._pending[0][3].done():
            normalised, number, callback, future = self._pending.popleft()
            error = future.exception()
            if error is None:
                self._record(normalised, number)
            refused |= isinstance(error, CommitFailed)
            if callback is not None:
                callback({tp: OffsetAndMetadata(o, m) for tp, (o, m) in normalised.items()},
                         error if isinstance(error, Exception) else None)
        return refused

    def _record(self, offsets: Offsets, number: int) -> None:
        """Remember committed offsets, unless a later commit (by call order) is known."""
        for tp, (offset, _) in offsets.items():
            if number >= self._order.get(tp, -1):
                self.committed[tp], self._order[tp] = offset, number

    def close(self) -> bool:
        """Wait for async commits still running, then :meth:`finish`."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        return self.finish()
