"""Transactions: a producer's batches in any number of partitions, and its consumer group's
offsets, become visible at once or never.

How (the argument of docs/architecture.md, "Transactions"):

- A transactional batch is appended like any other, by ONE conditional PutItem at its
  partition's tail, as it is sent: a busy partition cannot starve a transaction, because
  nothing of the commit depends on any partition's tail. The batch item names its
  transaction (transactional id and number).
- Each transaction has a record in the groups table (``txn#{id}`` / ``t/{number}``),
  created open by ``begin`` with a deadline (now + transaction_timeout_ms). Readers in
  read_committed mode consult it for every transactional batch they meet: open, they stop
  before the batch (Kafka's last stable offset); committed, the batch is visible if the
  commit listed its base offset; aborted (or not listed: a late resend), it is skipped and
  its offsets stay spent.
- Commit is ONE TransactWriteItems: the record (open -> committed, with every batch's base
  offset per partition; condition: open and not past its deadline), the transactional
  id's item (condition: same epoch, this transaction open) and, for
  ``send_offsets_to_transaction``, each input lease (condition: owner and lease epoch).
  All or nothing: the outputs and the input offsets appear together.
- Idempotent commit: a retry finds the record committed and answers as the first attempt
  did, whoever sends it (a new process, another Lambda). The request carries a
  ClientRequestToken derived from (id, epoch, number) and the request itself, so
  botocore's own resend of it is recognised by DynamoDB too.
- Fencing: ``init_transactions`` bumps the id's epoch and aborts the transaction the old
  epoch left open; the old instance's begin, commit and sends then fail with
  ProducerFenced, and nothing it wrote is ever visible.
- Timeouts: a record open past its deadline is aborted by whoever finds it (a reader, the
  archiver's pass, the id's next begin or init), with the condition ``deadline < now``;
  the commit's condition is ``deadline >= now``: one of them wins, never both.

Example:
    >>> store = TransactionStore(dynamodb, names, topics, groups)     # doctest: +SKIP
    >>> who = store.init("enricher-1", timeout_ms=60_000)               # doctest: +SKIP
    >>> n = store.begin(who)                                            # doctest: +SKIP
    >>> # ... engine.append(..., transaction=(who.transactional_id, n)) for each batch
    >>> store.commit(who, n, {("orders", 0): [17]})                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..clock import SYSTEM, Clock
from ..errors import (
    AppendConflict,
    CommitFailed,
    DataUnavailable,
    InvalidTxnState,
    ProducerFenced,
    RequestTimedOut,
    Throttled,
    TransactionAborted,
)
from ..records import ProducerIdentity, TransactionInfo, TxnOffsets
from ..txn import (
    KEEP_S,
    TIMEOUT_DEFAULT_MS,
    check_size,
    validate_timeout,
    validate_transactional_id,
)
from . import schema
from .aws import cancellation_reasons, conditional, error_code, items, transacted, translated
from .groups import GroupStore
from .kafka_groups import ClassicTxnOffsets, KafkaGroupStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from .topics import TopicStore

OPEN, COMMITTED, ABORTED = "open", "committed", "aborted"
EPOCH_MAX = 32767
"""Kafka's producer epoch is an int16: past it the id gets a new producer id."""
FINAL_CACHE = 4096
ATTEMPTS = 8


class Visibility(Enum):
    """What a read_committed reader does with a transactional batch."""

    VISIBLE = "visible"
    SKIP = "skip"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction's record."""

    transactional_id: str
    number: int
    producer_id: int
    epoch: int
    status: str
    started_ms: int
    deadline_ms: int
    ended_ms: int = 0
    reason: str = ""
    batches: Mapping[str, frozenset[int]] = field(default_factory=dict)
    """Committed: base offsets of its batches per ``{topic_id}/{partition}``."""

    @property
    def final(self) -> bool:
        return self.status != OPEN

    def lists(self, topic_id: str, partition: int, base: int) -> bool:
        return base in self.batches.get(f"{topic_id}/{partition}", frozenset())

    @property
    def info(self) -> TransactionInfo:
        return TransactionInfo(self.transactional_id, self.number, self.producer_id,
                               self.epoch, self.status, self.started_ms, self.deadline_ms,
                               self.ended_ms, self.reason, len(self.batches),
                               sum(len(b) for b in self.batches.values()))


@dataclass(frozen=True, slots=True)
class _IdState:
    producer_id: int
    epoch: int
    next: int
    open: int | None
    timeout_ms: int


def _record(transactional_id: str, item: Mapping[str, Any]) -> Transaction:
    def number(name: str, default: int = 0) -> int:
        return int(item[name]["N"]) if name in item else default

    batches = {key: frozenset(int(b) for b in value["NS"])
               for key, value in item.get("batches", {}).get("M", {}).items()}
    return Transaction(transactional_id, int(item[schema.SK]["S"][len(schema.TXN_SK_PREFIX):]),
                       number("producer_id", -1), number("epoch"), item["status"]["S"],
                       number("started_ms"), number("deadline_ms"), number("ended_ms"),
                       item.get("reason", {}).get("S", ""), batches)


def _id_state(item: Mapping[str, Any]) -> _IdState:
    return _IdState(int(item["producer_id"]["N"]), int(item["epoch"]["N"]),
                    int(item["next"]["N"]),
                    int(item["open"]["N"]) if "open" in item else None,
                    int(item.get("timeout_ms", {}).get("N", str(TIMEOUT_DEFAULT_MS))))


class TransactionStore:
    """Transactional ids and transaction records in the groups table."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names, topics: TopicStore,
                 groups: GroupStore, clock: Clock = SYSTEM) -> None:
        self._ddb = dynamodb
        self._table = names.groups_table
        self._topics = topics
        self._groups = groups
        self._classic = KafkaGroupStore(dynamodb, names.groups_table)
        self._clock = clock
        self._final: OrderedDict[tuple[str, int], Transaction] = OrderedDict()
        self._lock = threading.Lock()

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def _id_key(self, transactional_id: str) -> dict[str, Any]:
        return {schema.PK: {"S": schema.txn_pk(transactional_id)},
                schema.SK: {"S": schema.TXN_ID_SK}}

    def _key(self, transactional_id: str, number: int) -> dict[str, Any]:
        return {schema.PK: {"S": schema.txn_pk(transactional_id)},
                schema.SK: {"S": schema.txn_sk(number)}}

    # ---- reads ------------------------------------------------------------------------

    def _id(self, transactional_id: str) -> _IdState | None:
        with translated(f"read transactional id '{transactional_id}'"):
            item = self._ddb.get_item(TableName=self._table,
                                      Key=self._id_key(transactional_id),
                                      ConsistentRead=True).get("Item")
        return None if item is None else _id_state(item)

    def record(self, transactional_id: str, number: int) -> Transaction | None:
        """A transaction's record: from the cache once final (it never changes again),
        else strongly consistent."""
        with self._lock:
            cached = self._final.get((transactional_id, number))
        if cached is not None:
            return cached
        with translated(f"read transaction {number} of '{transactional_id}'"):
            item = self._ddb.get_item(TableName=self._table,
                                      Key=self._key(transactional_id, number),
                                      ConsistentRead=True).get("Item")
        if item is None:
            return None
        found = _record(transactional_id, item)
        if found.final:
            with self._lock:
                self._final[(transactional_id, number)] = found
                while len(self._final) > FINAL_CACHE:
                    self._final.popitem(last=False)
        return found

    def listing(self, include_ended: bool = False) -> list[TransactionInfo]:
        """Every open transaction (and, with ``include_ended``, every record still kept):
        one Scan of the groups table, an operator's tool."""
        found = items(self._ddb.scan, "list transactions", TableName=self._table,
                      FilterExpression="begins_with(#pk, :p) AND begins_with(#sk, :t)",
                      ExpressionAttributeNames={"#pk": schema.PK, "#sk": schema.SK},
                      ExpressionAttributeValues={":p": {"S": schema.TXN_PREFIX},
                                                 ":t": {"S": schema.TXN_SK_PREFIX}})
        records = [_record(i[schema.PK]["S"][len(schema.TXN_PREFIX):], i) for i in found]
        return sorted((r.info for r in records if include_ended or not r.final),
                      key=lambda t: (t.transactional_id, t.number))

    # ---- a producer's lifecycle -------------------------------------------------------

    def init(self, transactional_id: str, timeout_ms: int = TIMEOUT_DEFAULT_MS,
             expected: tuple[int, int] | None = None) -> ProducerIdentity:
        """Kafka's InitProducerId for a transactional id: bump its epoch (a new producer
        id past epoch 32767) and abort the transaction an older epoch left open.
        ``expected``: the (producer id, epoch) the caller holds (KIP-360's bump by a
        running producer): ProducerFenced unless it is still the id's current one."""
        validate_transactional_id(transactional_id)
        validate_timeout(timeout_ms)
        for _ in range(ATTEMPTS):
            seen = self._id(transactional_id)
            if expected is not None and seen is not None and \
                    (seen.producer_id, seen.epoch) != expected:
                raise ProducerFenced.transactional(transactional_id, expected[1], seen.epoch)
            producer_id, epoch = (seen.producer_id, seen.epoch + 1) if seen else (-1, 0)
            if seen is None or epoch > EPOCH_MAX:
                producer_id, epoch = self._topics.next_producer_id(), 0
            if self._bump(transactional_id, seen, producer_id, epoch, timeout_ms):
                if seen is not None and seen.open is not None:
                    self._abort_open(transactional_id, seen.open,
                                     f"fenced: init_transactions started epoch {epoch}")
                return ProducerIdentity(transactional_id, producer_id, epoch)
        raise AppendConflict(f"Transactional id '{transactional_id}' kept changing during "
                             "init_transactions; retry.")

    def _bump(self, transactional_id: str, seen: _IdState | None, producer_id: int,
              epoch: int, timeout_ms: int) -> bool:
        values: dict[str, Any] = {":pid": {"N": str(producer_id)}, ":e": {"N": str(epoch)},
                                  ":t": {"N": str(timeout_ms)}, ":zero": {"N": "0"}}
        if seen is None:
            condition = "attribute_not_exists(#pk)"
        else:  # nothing began or bumped since we read it
            condition = "epoch = :old AND #next = :next"
            values.update({":old": {"N": str(seen.epoch)}, ":next": {"N": str(seen.next)}})
        return conditional(
            self._ddb.update_item, f"init transactional id '{transactional_id}'",
            TableName=self._table, Key=self._id_key(transactional_id),
            UpdateExpression="SET producer_id = :pid, epoch = :e, timeout_ms = :t, "
                             "#next = if_not_exists(#next, :zero)",
            ConditionExpression=condition, ExpressionAttributeValues=values,
            ExpressionAttributeNames={"#next": "next", **(
                {"#pk": schema.PK} if seen is None else {})})

    def begin(self, who: ProducerIdentity) -> int:
        """Open the id's next transaction; returns its number. A retried begin whose
        first attempt landed gets the same number back."""
        tid = who.transactional_id
        for _ in range(ATTEMPTS):
            seen = self._current(who)
            if seen.open is not None:
                adopted = self._resolve_open(who, seen.open)
                if adopted is not None:
                    return adopted
                continue
            if self._open(who, seen):
                return seen.next
        raise AppendConflict(f"Transactional id '{tid}' kept changing during "
                             "begin_transaction; retry.")

    def positions(self, who: ProducerIdentity) -> tuple[int | None, int]:
        """(the transaction open now, the number the next begin takes) of ``who``'s
        transactional id; ProducerFenced unless ``who`` is its current epoch."""
        seen = self._current(who)
        return seen.open, seen.next

    def _current(self, who: ProducerIdentity) -> _IdState:
        seen = self._id(validate_transactional_id(who.transactional_id))
        if seen is None:
            raise InvalidTxnState(f"Transactional id '{who.transactional_id}' is unknown: "
                                  "call init_transactions first.")
        if (seen.producer_id, seen.epoch) != (who.producer_id, who.epoch):
            raise ProducerFenced.transactional(who.transactional_id, who.epoch, seen.epoch)
        return seen

    def _resolve_open(self, who: ProducerIdentity, number: int) -> int | None:
        """The id's open transaction: ours and live (a retried begin): its number; ended,
        expired or left by an older epoch: end it and clear it (None: look again)."""
        found = self.record(who.transactional_id, number)
        if found is not None and found.status == OPEN and found.epoch == who.epoch \
                and found.deadline_ms >= self._now_ms():
            return number
        if found is not None and found.status == OPEN:
            if found.epoch != who.epoch:
                self._end(found, "fenced: left open by an older epoch")
            else:
                self._end(found, self._timed_out(found), if_expired=True)
        else:  # ended: only the id's marker is left
            conditional(self._ddb.update_item, "clear an ended transaction",
                        TableName=self._table, Key=self._id_key(who.transactional_id),
                        UpdateExpression="REMOVE #open", ConditionExpression="#open = :n",
                        ExpressionAttributeNames={"#open": "open"},
                        ExpressionAttributeValues={":n": {"N": str(number)}})
        return None

    def _open(self, who: ProducerIdentity, seen: _IdState) -> bool:
        """One TransactWriteItems: the id's open marker and the new record; False if the
        id changed since ``seen``."""
        tid, number, now = who.transactional_id, seen.next, self._now_ms()
        deadline = now + seen.timeout_ms
        record = {**self._key(tid, number), "producer_id": {"N": str(who.producer_id)},
                  "epoch": {"N": str(who.epoch)}, "status": {"S": OPEN},
                  "started_ms": {"N": str(now)}, "deadline_ms": {"N": str(deadline)},
                  schema.TTL: {"N": str(deadline // 1000 + KEEP_S)}}
        actions: list[TransactWriteItemTypeDef] = [
            {"Update": {"TableName": self._table, "Key": self._id_key(tid),
                        "UpdateExpression": "SET #open = :n, #next = :after",
                        "ConditionExpression": "epoch = :e AND producer_id = :pid AND "
                                               "#next = :n AND attribute_not_exists(#open)",
                        "ExpressionAttributeNames": {"#open": "open", "#next": "next"},
                        "ExpressionAttributeValues": {
                            ":n": {"N": str(number)}, ":after": {"N": str(number + 1)},
                            ":e": {"N": str(who.epoch)},
                            ":pid": {"N": str(who.producer_id)}}}},
            {"Put": {"TableName": self._table, "Item": record,
                     "ConditionExpression": "attribute_not_exists(#sk)",
                     "ExpressionAttributeNames": {"#sk": schema.SK}}}]
        return transacted(self._ddb.transact_write_items,
                          f"begin a transaction of '{tid}'", TransactItems=actions)

    def check(self, who: ProducerIdentity, number: int) -> Transaction:
        """Before a transactional batch is appended: the transaction is this producer's,
        open and within its deadline (else the error the producer must see, nothing
        written). One strongly consistent read."""
        found = self.record(who.transactional_id, number)
        if found is None:
            raise InvalidTxnState(f"Transactional id '{who.transactional_id}' has no "
                                  f"transaction {number}: begin_transaction first.")
        if (found.producer_id, found.epoch) != (who.producer_id, who.epoch):
            raise InvalidTxnState(
                f"Transaction {number} of '{who.transactional_id}' belongs to producer "
                f"{found.producer_id} epoch {found.epoch}, not {who.producer_id} epoch "
                f"{who.epoch} (the batch's producer id and epoch must be the transaction's).")
        if found.status == OPEN and found.deadline_ms < self._now_ms():
            found = self._end(found, self._timed_out(found), if_expired=True)
        self._raise_unless_open(who, found)
        return found

    def _raise_unless_open(self, who: ProducerIdentity, found: Transaction) -> None:
        tid, number = who.transactional_id, found.number
        if found.status == COMMITTED:
            raise InvalidTxnState(f"Transaction {number} of '{tid}' is already committed; "
                                  "begin a new one.")
        if found.status == ABORTED and found.reason.startswith("fenced"):
            current = self._id(tid)
            raise ProducerFenced.transactional(tid, who.epoch,
                                               current.epoch if current else who.epoch)
        if found.status == ABORTED:
            raise TransactionAborted(f"Transaction {number} of '{tid}' was aborted "
                                     f"({found.reason}); none of it is visible. Begin a new "
                                     "transaction.")

    # ---- commit and abort -------------------------------------------------------------

    def commit(self, who: ProducerIdentity, number: int,
               batches: Mapping[tuple[str, int], Iterable[int]],
               offsets: TxnOffsets | None = None, groups: GroupStore | None = None,
               classic: Sequence[ClassicTxnOffsets] = ()) -> Transaction:
        """Make the listed batches (``{(topic, partition): base offsets}``) and the group's
        offsets visible at once; returns the committed record. Idempotent: a retry of a
        commit that landed answers the same. ``groups``: the store the lease commits go
        through (the HTTP handlers bind it to the caller). ``classic``: Kafka clients'
        offsets (the gateway's TxnOffsetCommit), fenced by their classic groups."""
        tid = validate_transactional_id(who.transactional_id)
        given = {key: list(bases) for key, bases in batches.items()}
        lease_count = len(offsets.offsets) if offsets else 0
        check_size(lease_count + sum(len(c.offsets) + 1 for c in classic),
                   sum(len(b) for b in given.values()))
        listed = self._listing(given)
        actions = [self._commit_record(who, number, listed), self._clear_marker(who, number)]
        if offsets is not None and offsets.offsets:
            store = groups or self._groups
            store.check_partitions(offsets.group_id, offsets.offsets)
            actions += [store.commit_action(offsets.group_id, offsets.member_id, tp, *value)
                        for tp, value in offsets.offsets.items()]
        for sent in classic:
            self._groups.check_partitions(sent.group_id, sent.offsets)
            actions += self._classic.txn_actions(sent, self._now_ms())
        token = _token(tid, who.epoch, number, actions)
        for attempt in range(ATTEMPTS):
            outcome = self._try_commit(who, number, actions, token, offsets, classic)
            if outcome is not None:
                return outcome
            time.sleep(random.uniform(0, min(0.2, 0.01 * 2**attempt)))
        raise AppendConflict(f"Transaction {number} of '{tid}' met concurrent writes "
                             f"{ATTEMPTS} times; it is still open: commit again or abort.")

    def _listing(self, batches: Mapping[tuple[str, int], Iterable[int]]) -> dict[str, Any]:
        listed: dict[str, Any] = {}
        for (topic, partition), bases in batches.items():
            meta = self._topics.get(topic)
            meta.check_partition(partition)
            numbers = sorted({int(b) for b in bases})
            if numbers:
                listed[f"{meta.topic_id}/{partition}"] = {"NS": [str(b) for b in numbers]}
        return listed

    def _commit_record(self, who: ProducerIdentity, number: int, listed: dict[str, Any]
                       ) -> TransactWriteItemTypeDef:
        now = self._now_ms()
        return {"Update": {
            "TableName": self._table, "Key": self._key(who.transactional_id, number),
            "UpdateExpression": "SET #status = :c, batches = :b, ended_ms = :now, #ttl = :ttl",
            "ConditionExpression": "#status = :open AND epoch = :e AND producer_id = :pid "
                                   "AND deadline_ms >= :now",
            "ExpressionAttributeNames": {"#status": "status", "#ttl": schema.TTL},
            "ExpressionAttributeValues": {
                ":c": {"S": COMMITTED}, ":open": {"S": OPEN}, ":b": {"M": listed},
                ":now": {"N": str(now)}, ":ttl": {"N": str(now // 1000 + KEEP_S)},
                ":e": {"N": str(who.epoch)}, ":pid": {"N": str(who.producer_id)}}}}

    def _clear_marker(self, who: ProducerIdentity, number: int) -> TransactWriteItemTypeDef:
        """The id's item: still this epoch (else fenced), this transaction open."""
        return {"Update": {
            "TableName": self._table, "Key": self._id_key(who.transactional_id),
            "UpdateExpression": "REMOVE #open",
            "ConditionExpression": "epoch = :e AND producer_id = :pid AND #open = :n",
            "ExpressionAttributeNames": {"#open": "open"},
            "ExpressionAttributeValues": {":e": {"N": str(who.epoch)},
                                          ":pid": {"N": str(who.producer_id)},
                                          ":n": {"N": str(number)}}}}

    def _try_commit(self, who: ProducerIdentity, number: int,
                    actions: list[TransactWriteItemTypeDef], token: str,
                    offsets: TxnOffsets | None, classic: Sequence[ClassicTxnOffsets] = ()
                    ) -> Transaction | None:
        """One attempt: the committed record, or None to try again (a conflict, or an
        answer lost on the way); the error the producer must see otherwise."""
        tid = who.transactional_id
        try:
            with translated(f"commit transaction {number} of '{tid}'"):
                self._ddb.transact_write_items(TransactItems=actions, ClientRequestToken=token)
        except (RequestTimedOut, Throttled):
            pass  # applied or not: the record tells
        except ClientError as e:
            code = error_code(e)
            if code not in ("TransactionCanceledException", "TransactionConflictException",
                            "IdempotentParameterMismatchException"):
                raise
            return self._after_refusal(who, number, cancellation_reasons(e), offsets, classic)
        found = self.record(tid, number)
        return found if found is not None and found.status == COMMITTED else None

    def _after_refusal(self, who: ProducerIdentity, number: int,
                       reasons: list[dict[str, Any]], offsets: TxnOffsets | None,
                       classic: Sequence[ClassicTxnOffsets] = ()) -> Transaction | None:
        """Why a commit was refused, from the record and the id (never from the refusal
        alone: it may be our own earlier attempt that landed)."""
        tid = who.transactional_id
        found = self.record(tid, number)
        if found is None:
            raise InvalidTxnState(f"Transactional id '{tid}' has no transaction {number}.")
        if found.status == COMMITTED:
            return found
        current = self._id(tid)
        if current is None or (current.producer_id, current.epoch) != (who.producer_id,
                                                                       who.epoch):
            raise ProducerFenced.transactional(tid, who.epoch, current.epoch if current else -1)
        if found.status == OPEN and found.deadline_ms < self._now_ms():
            found = self._end(found, self._timed_out(found), if_expired=True)
        self._raise_unless_open(who, found)
        lost = [tp for (tp, reason) in zip(offsets.offsets if offsets else (), reasons[2:],
                                            strict=False)
                if reason.get("Code") == "ConditionalCheckFailed"]
        if lost and offsets is not None:
            self._end(found, "a consumer-group lease it committed offsets for moved")
            raise CommitFailed(offsets.group_id, lost,
                               detail=f"transaction {number} of '{tid}' was aborted: none "
                                      "of it is visible")
        self._raise_if_left_group(found, reasons[2 + len(offsets.offsets if offsets else ()):],
                                  classic)
        return None  # a conflict with a concurrent request: try again

    def _raise_if_left_group(self, found: Transaction, reasons: list[dict[str, Any]],
                             classic: Sequence[ClassicTxnOffsets]) -> None:
        """A classic group's fence (the first action of each group's part) refused: the
        member left the group or its generation moved on; abort, CommitFailed."""
        at = 0
        for sent in classic:
            if at < len(reasons) and reasons[at].get("Code") == "ConditionalCheckFailed":
                self._end(found, f"member left group '{sent.group_id}' or its generation "
                                 "moved on")
                raise CommitFailed(sent.group_id, list(sent.offsets),
                                   detail=f"transaction {found.number} of "
                                          f"'{found.transactional_id}' was aborted: none of "
                                          "it is visible")
            at += 1 + len(sent.offsets)

    def abort(self, who: ProducerIdentity, number: int) -> Transaction:
        """The producer aborts its transaction: none of it becomes visible. Aborting one
        already aborted is a no-op; one already committed is InvalidTxnState."""
        found = self.record(validate_transactional_id(who.transactional_id), number)
        if found is None:
            raise InvalidTxnState(f"Transactional id '{who.transactional_id}' has no "
                                  f"transaction {number}.")
        if found.status == OPEN:
            found = self._end(found, "aborted by the producer")
        if found.status == COMMITTED:
            raise InvalidTxnState(f"Transaction {number} of '{who.transactional_id}' is "
                                  "already committed; it cannot be aborted.")
        return found

    def _abort_open(self, transactional_id: str, number: int, reason: str) -> None:
        found = self.record(transactional_id, number)
        if found is not None and found.status == OPEN:
            self._end(found, reason)

    def _end(self, found: Transaction, reason: str,
             if_expired: bool = False) -> Transaction:
        """Abort an open transaction (and clear the id's marker) unless it ended first;
        returns the record as it ends up. ``if_expired``: only past its deadline."""
        now = self._now_ms()
        condition = "#status = :open" + (" AND deadline_ms < :now" if if_expired else "")
        record: TransactWriteItemTypeDef = {"Update": {
            "TableName": self._table, "Key": self._key(found.transactional_id, found.number),
            "UpdateExpression": "SET #status = :s, reason = :r, ended_ms = :now, #ttl = :ttl",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status", "#ttl": schema.TTL},
            "ExpressionAttributeValues": {
                ":s": {"S": ABORTED}, ":r": {"S": reason}, ":open": {"S": OPEN},
                ":now": {"N": str(now)}, ":ttl": {"N": str(now // 1000 + KEEP_S)}}}}
        marker: TransactWriteItemTypeDef = {"Update": {
            "TableName": self._table, "Key": self._id_key(found.transactional_id),
            "UpdateExpression": "REMOVE #open", "ConditionExpression": "#open = :n",
            "ExpressionAttributeNames": {"#open": "open"},
            "ExpressionAttributeValues": {":n": {"N": str(found.number)}}}}
        try:
            with translated(f"abort transaction {found.number} of '{found.transactional_id}'"):
                self._ddb.transact_write_items(TransactItems=[record, marker])
        except ClientError as e:
            if error_code(e) not in ("TransactionCanceledException",
                                     "TransactionConflictException"):
                raise
            reasons = cancellation_reasons(e)
            if len(reasons) == 2 and reasons[0].get("Code") in (None, "None") and \
                    reasons[1].get("Code") == "ConditionalCheckFailed":
                # the id's marker is gone or moved on (never while the record is open, but
                # tolerate it): end the record alone
                update = dict(record["Update"])
                update.pop("TableName")
                conditional(self._ddb.update_item, "abort a transaction",
                            TableName=self._table, **update)
        latest = self.record(found.transactional_id, found.number)
        if latest is None:
            raise DataUnavailable(f"The record of transaction {found.number} of "
                                  f"'{found.transactional_id}' vanished.")
        return latest

    @staticmethod
    def _timed_out(found: Transaction) -> str:
        return (f"timed out: open longer than its transaction_timeout_ms "
                f"({found.deadline_ms - found.started_ms} ms)")

    # ---- readers ----------------------------------------------------------------------

    def visibility(self, tag: tuple[str, int], topic_id: str, partition: int, base: int
                   ) -> Visibility:
        """What a read_committed reader does with the batch at ``base`` that names
        transaction ``tag``; an open transaction past its deadline is aborted here."""
        found = self.record(*tag)
        if found is None:
            raise DataUnavailable(
                f"The batch at offset {base} belongs to transaction {tag[1]} of '{tag[0]}', "
                f"whose record is gone (kept {KEEP_S // 86400} days after it ended): the "
                "partition was left unarchived that long.")
        if found.status == OPEN and found.deadline_ms < self._now_ms():
            found = self._expire(found)
        if found.status == OPEN:
            return Visibility.WAIT
        if found.status == COMMITTED and found.lists(topic_id, partition, base):
            return Visibility.VISIBLE
        return Visibility.SKIP

    def _expire(self, found: Transaction) -> Transaction:
        """Abort a transaction past its deadline, if this caller may (a direct-mode
        consumer whose role cannot write the record waits for the archiver instead)."""
        try:
            return self._end(found, self._timed_out(found), if_expired=True)
        except ClientError as e:
            if error_code(e) in ("AccessDeniedException", "UnauthorizedOperation"):
                return found
            raise


def _token(transactional_id: str, epoch: int, number: int,
           actions: list[TransactWriteItemTypeDef]) -> str:
    """A ClientRequestToken (at most 36 characters) for this very request."""
    digest = hashlib.sha256(json.dumps([transactional_id, epoch, number, actions],
                                       sort_keys=True, default=str).encode())
    return digest.hexdigest()[:36]
