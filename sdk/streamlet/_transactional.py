"""A transactional producer's state: Kafka's state machine, on the Transport's
transaction calls.

States: ``uninitialized`` -> (init_transactions) ``ready`` -> (begin_transaction)
``in_transaction`` -> (commit or abort) ``ready``. A send that failed inside a
transaction, or a commit the log refused, leaves it ``abortable``: only
``abort_transaction`` goes on. Fenced by a newer instance (ProducerFenced) it is
``fatal``: close the producer. Every misuse raises InvalidTxnState naming the state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

from ._values import is_int
from .errors import (
    CommitFailed,
    InvalidRequest,
    InvalidTxnState,
    ProducerFenced,
    StreamletError,
    TransactionAborted,
)
from .records import (
    ConsumerGroupMetadata,
    OffsetAndMetadata,
    ProducerIdentity,
    TopicPartition,
    TransactionInfo,
    TxnOffsets,
)
from .transport.base import Transport
from .txn import MAX_BATCHES, check_size, validate_timeout, validate_transactional_id

T = TypeVar("T")
Retry = Callable[[Callable[[], T]], T]
UNINITIALIZED, READY, IN_TRANSACTION = "uninitialized", "ready", "in_transaction"
ABORTABLE, FATAL = "abortable", "fatal"
OffsetLike = int | OffsetAndMetadata | tuple[int, str]


class Transactions:
    """One transactional id's state in a producer (thread-safe)."""

    def __init__(self, transport: Transport, transactional_id: str, timeout_ms: int) -> None:
        self.transactional_id = validate_transactional_id(transactional_id)
        self.timeout_ms = validate_timeout(timeout_ms)
        self._transport = transport
        self._lock = threading.Lock()
        self.state = UNINITIALIZED
        self.who: ProducerIdentity | None = None
        self.number = -1
        self._batches: dict[tuple[str, int], list[int]] = {}
        self._opened = 0
        self._offsets: dict[TopicPartition, tuple[int, int, str]] = {}
        self._group: tuple[str, str] | None = None
        self._error: BaseException | None = None

    # ---- what the producer asks ---------------------------------------------------------

    def current(self) -> tuple[ProducerIdentity, int]:
        """The identity and transaction number a send goes into (InvalidTxnState outside
        a transaction, ProducerFenced once fenced)."""
        with self._lock:
            self._expect(IN_TRANSACTION, ABORTABLE, action="send")
            assert self.who is not None
            return self.who, self.number

    def opened_batch(self) -> None:
        """A new batch of this transaction: TransactionTooLarge past MAX_BATCHES."""
        with self._lock:
            self._opened += 1
            if self._opened > MAX_BATCHES:
                check_size(len(self._offsets), self._opened)

    def sent(self, number: int, topic: str, partition: int, base_offset: int) -> None:
        with self._lock:
            if number == self.number:
                self._batches.setdefault((topic, partition), []).append(base_offset)

    def failed(self, number: int, error: BaseException) -> None:
        """A batch of transaction ``number`` failed: it cannot commit any more."""
        with self._lock:
            if number != self.number:
                return
            if isinstance(error, ProducerFenced):
                self.state, self._error = FATAL, error
            elif self.state == IN_TRANSACTION:
                self.state, self._error = ABORTABLE, error

    # ---- the API ----------------------------------------------------------------------------

    def init(self, retry: Retry[ProducerIdentity]) -> ProducerIdentity:
        with self._lock:
            if self.state not in (UNINITIALIZED, READY, FATAL):
                raise InvalidTxnState(self._misuse("init_transactions"))
        who = retry(lambda: self._transport.init_transactions(self.transactional_id,
                                                              self.timeout_ms))
        with self._lock:
            self.who, self.state, self._error = who, READY, None
        return who

    def begin(self, retry: Retry[int]) -> int:
        with self._lock:
            self._expect(READY, action="begin_transaction")
            who = self.who
        assert who is not None
        try:
            number = retry(lambda: self._transport.begin_transaction(who))
        except ProducerFenced as fenced:
            self._fatal(fenced)
            raise
        with self._lock:
            self.state, self.number, self._error = IN_TRANSACTION, number, None
            self._batches, self._offsets, self._group, self._opened = {}, {}, None, 0
        return number

    def add_offsets(self, offsets: Mapping[TopicPartition, OffsetLike],
                    group: ConsumerGroupMetadata) -> None:
        """Kafka's sendOffsetsToTransaction: committed with the transaction or not at all,
        fenced by the lease epochs in ``group`` (``consumer.group_metadata()``)."""
        if not isinstance(group, ConsumerGroupMetadata):
            raise InvalidRequest("send_offsets_to_transaction takes consumer.group_metadata() "
                                 f"as its second argument, got {type(group).__name__}.")
        entries = {tp: _entry(tp, value, group) for tp, value in offsets.items()}
        with self._lock:
            self._expect(IN_TRANSACTION, action="send_offsets_to_transaction")
            if self._group not in (None, (group.group_id, group.member_id)):
                raise InvalidTxnState(
                    f"Transaction {self.number} of '{self.transactional_id}' already carries "
                    f"offsets of group '{self._group[0]}' (member {self._group[1]}); one group "
                    "per transaction.")
            merged = {**self._offsets, **entries}
            check_size(len(merged), self._opened)  # refused before anything is kept
            self._offsets, self._group = merged, (group.group_id, group.member_id)

    def commit(self, flush: Callable[[], None], retry: Retry[TransactionInfo]
               ) -> TransactionInfo:
        """Flush, then commit what the transaction sent and the offsets it carries."""
        with self._lock:
            self._expect(IN_TRANSACTION, ABORTABLE, action="commit_transaction")
        flush()
        with self._lock:
            if self.state == ABORTABLE:
                raise TransactionAborted(
                    f"A send in transaction {self.number} of '{self.transactional_id}' "
                    f"failed ({type(self._error).__name__}: {self._error}); it cannot "
                    "commit: call abort_transaction().") from self._error
            self._expect(IN_TRANSACTION, action="commit_transaction")
            who, number, batches = self.who, self.number, dict(self._batches)
            offsets = None if self._group is None else TxnOffsets(*self._group,
                                                                 dict(self._offsets))
        assert who is not None
        try:
            info = retry(lambda: self._transport.commit_transaction(who, number, batches,
                                                                    offsets))
        except ProducerFenced as fenced:
            self._fatal(fenced)
            raise
        except (TransactionAborted, CommitFailed):
            self._ended()  # the log aborted it: nothing of it is visible
            raise
        except StreamletError as error:
            if error.retriable:  # it may have landed: only the log knows
                error.add_note("The commit's outcome is unknown: call commit_transaction() "
                               "again (a commit is idempotent) or abort_transaction().")
            else:
                with self._lock:
                    self.state, self._error = ABORTABLE, error
            raise
        self._ended()
        return info

    def abort(self, flush: Callable[[], None], retry: Retry[TransactionInfo]
              ) -> TransactionInfo:
        with self._lock:
            self._expect(IN_TRANSACTION, ABORTABLE, action="abort_transaction")
            who, number = self.who, self.number
        assert who is not None
        flush()  # every batch lands or fails before the abort: none is left to land after
        try:
            info = retry(lambda: self._transport.abort_transaction(who, number))
        except ProducerFenced as fenced:
            self._fatal(fenced)
            raise
        self._ended()
        return info

    # ---- helpers ------------------------------------------------------------------------------

    def _ended(self) -> None:
        with self._lock:
            self.state, self._error = READY, None
            self._batches, self._offsets, self._group, self._opened = {}, {}, None, 0

    def _fatal(self, fenced: ProducerFenced) -> None:
        with self._lock:
            self.state, self._error = FATAL, fenced

    def _expect(self, *states: str, action: str) -> None:
        if self.state == FATAL and isinstance(self._error, ProducerFenced):
            raise self._error
        if self.state not in states:
            raise InvalidTxnState(self._misuse(action))

    def _misuse(self, action: str) -> str:
        hint = {UNINITIALIZED: "call init_transactions() first",
                READY: "call begin_transaction() first",
                IN_TRANSACTION: "commit_transaction() or abort_transaction() first",
                ABORTABLE: "a send failed: call abort_transaction()",
                FATAL: "the producer is fenced: close it"}[self.state]
        return (f"{action} on transactional producer '{self.transactional_id}' in state "
                f"{self.state}: {hint}.")


def _entry(tp: TopicPartition, value: OffsetLike, group: ConsumerGroupMetadata
           ) -> tuple[int, int, str]:
    """(lease epoch, offset, metadata) of one offset sent with a transaction."""
    if not isinstance(tp, TopicPartition):
        raise InvalidRequest(f"Offsets are keyed by TopicPartition, got {tp!r}.")
    if isinstance(value, OffsetAndMetadata):
        offset, metadata = value.offset, value.metadata
    elif isinstance(value, tuple):
        offset, metadata = value
    else:
        offset, metadata = value, ""
    if not is_int(offset) or offset < 0 or not isinstance(metadata, str):
        raise InvalidRequest(f"Offset for {tp.topic} partition {tp.partition} must be an int "
                             f">= 0 (with str metadata), got {value!r}.")
    epoch = group.lease_epochs.get(tp)
    if epoch is None:
        raise CommitFailed(group.group_id, [tp], detail="this member does not own it: "
                                                        "nothing was sent")
    return epoch, offset, metadata
