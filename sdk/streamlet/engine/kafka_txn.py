"""Kafka clients' transactions (the Kafka gateway's AddPartitionsToTxn, Produce,
TxnOffsetCommit and EndTxn) on :mod:`.transactions`.

A Kafka producer never tells its coordinator which batches it sent (a broker learns it
from its own log), and any gateway may serve any of a transaction's requests. So what a
transaction sent is kept in its record as it goes, and EndTxn reads it back from there:

- each transactional batch's (topic, partition, base offset) is ADDed to a string set
  on the record (``k_batches``, one UpdateItem conditioned on the transaction being open
  at this epoch) after the log took the batch and before the producer is answered. A
  batch whose staging never happened was never acknowledged: the producer resends it,
  the resend is recognised as a duplicate (same producer id, epoch and sequence) and
  staged then. A batch appended but never staged is not listed at commit: invisible, as
  the engine treats late resends.
- each TxnOffsetCommit's offsets, per group with its generation and member id, in a JSON
  attribute (``k_offsets``, written compare-and-set).
- EndTxn(commit) reads both (one strongly consistent read) and commits them with the
  engine's ONE TransactWriteItems; the classic groups' fences ride in it
  (:meth:`KafkaGroupStore.txn_actions`). Clients send EndTxn only once every produce of
  the transaction was answered.

Kafka begins a transaction implicitly at the first AddPartitionsToTxn or AddOffsetsToTxn;
:meth:`KafkaTransactions.begin` joins the transaction open now, or begins the next. A
transaction the log aborted behind the producer's back (timed out, or refused at commit
because the member left its group) is not silently followed by a new one: until the
producer's EndTxn(abort) acknowledges it (``k_acked``), adding to a transaction answers
TransactionAborted, so the producer aborts instead of committing half of what it sent.

Example:
    >>> kafka = KafkaTransactions(dynamodb, names, engine.transactions)   # doctest: +SKIP
    >>> n = kafka.begin(who)                                              # doctest: +SKIP
    >>> kafka.stage_batch(who, n, "orders", 0, 17)                        # doctest: +SKIP
    >>> kafka.end(who, commit=True)                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AppendConflict, InvalidTxnState, ProducerFenced, TransactionAborted
from ..records import ProducerIdentity, TopicPartition
from . import schema
from .aws import conditional, translated
from .kafka_groups import ClassicTxnOffsets
from .transactions import ABORTED, COMMITTED, OPEN, Transaction, TransactionStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCHES, OFFSETS, ACKED = "k_batches", "k_offsets", "k_acked"
BY_PRODUCER = "aborted by the producer"
"""The reason :meth:`TransactionStore.abort` records: the producer knows of that abort."""
ATTEMPTS = 8
Batches = dict[tuple[str, int], list[int]]


class KafkaTransactions:
    """What Kafka clients' transactions sent, in their records, and their begin and end."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names,
                 store: TransactionStore) -> None:
        self._ddb = dynamodb
        self._table = names.groups_table
        self.store = store

    def _key(self, transactional_id: str, number: int) -> dict[str, Any]:
        return {schema.PK: {"S": schema.txn_pk(transactional_id)},
                schema.SK: {"S": schema.txn_sk(number)}}

    def _item(self, transactional_id: str, number: int) -> Mapping[str, Any]:
        with translated(f"read transaction {number} of '{transactional_id}'"):
            return self._ddb.get_item(TableName=self._table,
                                      Key=self._key(transactional_id, number),
                                      ConsistentRead=True).get("Item", {})

    # ---- begin, and the transaction a produce goes into ---------------------------------

    def begin(self, who: ProducerIdentity) -> int:
        """AddPartitionsToTxn / AddOffsetsToTxn: the transaction open now (this producer's,
        live) or a new one."""
        open_, after = self.store.positions(who)
        if open_ is None:
            self._refuse_unacknowledged(who, after - 1)
            return self.store.begin(who)
        found = self.store.record(who.transactional_id, open_)
        if found is not None and found.epoch != who.epoch:
            return self.store.begin(who)  # left open by an older epoch: begin ends it
        self.store.check(who, open_)  # expired: aborted now, TransactionAborted
        return open_

    def current(self, who: ProducerIdentity) -> int:
        """The transaction a transactional Produce appends to: the one open now."""
        open_, after = self.store.positions(who)
        if open_ is None:
            self._refuse_unacknowledged(who, after - 1)
            raise InvalidTxnState(f"Transactional id '{who.transactional_id}' has no open "
                                  "transaction: AddPartitionsToTxn first.")
        return open_

    def _refuse_unacknowledged(self, who: ProducerIdentity, last: int) -> None:
        """TransactionAborted if the id's last transaction was aborted by the log (not
        by the producer) and the producer has not acknowledged it with EndTxn(abort)."""
        if last < 0:
            return
        found = self.store.record(who.transactional_id, last)
        if found is None or found.epoch != who.epoch or found.status != ABORTED \
                or found.reason == BY_PRODUCER:
            return
        if self._item(who.transactional_id, last).get(ACKED, {}).get("BOOL"):
            return
        raise TransactionAborted(f"Transaction {last} of '{who.transactional_id}' was "
                                 f"aborted ({found.reason}); none of it is visible. Abort "
                                 "the transaction, then begin a new one.")

    # ---- what it sent -------------------------------------------------------------------

    def stage_batch(self, who: ProducerIdentity, number: int, topic: str, partition: int,
                    base_offset: int) -> None:
        """Keep a batch the log took for transaction ``number`` (idempotent)."""
        staged = conditional(
            self._ddb.update_item, f"stage a batch of transaction {number}",
            TableName=self._table, Key=self._key(who.transactional_id, number),
            UpdateExpression=f"ADD {BATCHES} :b", **self._open_condition(who),
            ExpressionAttributeValues={":b": {"SS": [f"{partition}/{base_offset}/{topic}"]},
                                       **self._open_values(who)})
        if not staged:
            self._refused(who, number)

    def stage_offsets(self, who: ProducerIdentity, number: int,
                      sent: ClassicTxnOffsets) -> None:
        """Keep a TxnOffsetCommit's offsets for transaction ``number`` (a later one for the
        same group and partition replaces the earlier)."""
        for _ in range(ATTEMPTS):
            item = self._item(who.transactional_id, number)
            old = item.get(OFFSETS, {}).get("S")
            groups = _offsets_of(old)
            earlier = groups.get(sent.group_id)
            offsets = {**(earlier.offsets if earlier and earlier.member_id == sent.member_id
                          and earlier.generation == sent.generation else {}), **sent.offsets}
            groups[sent.group_id] = ClassicTxnOffsets(sent.group_id, sent.generation,
                                                      sent.member_id, offsets)
            condition = self._open_condition(who)
            unchanged = f"attribute_not_exists({OFFSETS})" if old is None else f"{OFFSETS} = :old"
            condition["ConditionExpression"] += f" AND {unchanged}"
            values = {":o": {"S": _offsets_text(groups)}, **self._open_values(who),
                      **({} if old is None else {":old": {"S": old}})}
            if conditional(self._ddb.update_item, f"stage offsets of transaction {number}",
                           TableName=self._table, Key=self._key(who.transactional_id, number),
                           UpdateExpression=f"SET {OFFSETS} = :o", **condition,
                           ExpressionAttributeValues=values):
                return
            self.store.check(who, number)  # ended or fenced: raises; else a race: again
        raise AppendConflict(f"Offsets of transaction {number} of '{who.transactional_id}' "
                             "kept changing; retry.")

    @staticmethod
    def _open_condition(who: ProducerIdentity) -> dict[str, Any]:
        return {"ConditionExpression": "#status = :open AND epoch = :e AND producer_id = :pid",
                "ExpressionAttributeNames": {"#status": "status"}}

    @staticmethod
    def _open_values(who: ProducerIdentity) -> dict[str, Any]:
        return {":open": {"S": OPEN}, ":e": {"N": str(who.epoch)},
                ":pid": {"N": str(who.producer_id)}}

    def _refused(self, who: ProducerIdentity, number: int) -> None:
        self.store.check(who, number)  # raises the reason
        raise InvalidTxnState(f"Transaction {number} of '{who.transactional_id}' refused "
                              "a batch.")

    def staged(self, transactional_id: str, number: int
               ) -> tuple[Batches, list[ClassicTxnOffsets]]:
        """What transaction ``number`` sent: base offsets per (topic, partition), and the
        offsets per group."""
        item = self._item(transactional_id, number)
        batches: Batches = {}
        for entry in item.get(BATCHES, {}).get("SS", []):
            partition, base, topic = entry.split("/", 2)
            batches.setdefault((topic, int(partition)), []).append(int(base))
        return batches, list(_offsets_of(item.get(OFFSETS, {}).get("S")).values())

    # ---- EndTxn -------------------------------------------------------------------------

    def end(self, who: ProducerIdentity, commit: bool) -> Transaction:
        """EndTxn: commit what the open transaction sent, or abort it. A retried EndTxn
        (the transaction already ended as asked) answers the same again; an abort of a
        transaction the log aborted acknowledges it."""
        tid = who.transactional_id
        open_, after = self.store.positions(who)
        number = open_ if open_ is not None else after - 1
        found = self.store.record(tid, number) if number >= 0 else None
        if found is None or found.epoch != who.epoch:
            raise InvalidTxnState(f"Transactional id '{tid}' has no transaction of epoch "
                                  f"{who.epoch} to {'commit' if commit else 'abort'}.")
        if found.status == OPEN and commit:
            batches, classic = self.staged(tid, number)
            return self.store.commit(who, number, batches, classic=classic)
        if not commit:
            ended = self.store.abort(who, number)
            if ended.reason != BY_PRODUCER:
                self._acknowledge(tid, number)
            return ended
        if found.status == COMMITTED:
            return found
        if found.reason.startswith("fenced"):
            raise ProducerFenced.transactional(tid, who.epoch, who.epoch + 1)
        raise TransactionAborted(f"Transaction {number} of '{tid}' was aborted "
                                 f"({found.reason}); none of it is visible.")

    def _acknowledge(self, transactional_id: str, number: int) -> None:
        with translated(f"acknowledge the abort of transaction {number}"):
            self._ddb.update_item(TableName=self._table,
                                  Key=self._key(transactional_id, number),
                                  UpdateExpression=f"SET {ACKED} = :t",
                                  ExpressionAttributeValues={":t": {"BOOL": True}})


def _offsets_of(text: str | None) -> dict[str, ClassicTxnOffsets]:
    groups: dict[str, ClassicTxnOffsets] = {}
    for group, entry in (json.loads(text) if text else {}).items():
        offsets = {TopicPartition(t, p): (o, m) for t, p, o, m in entry["offsets"]}
        groups[group] = ClassicTxnOffsets(group, entry["generation"], entry["member_id"],
                                          offsets)
    return groups


def _offsets_text(groups: Mapping[str, ClassicTxnOffsets]) -> str:
    return json.dumps({g.group_id: {"generation": g.generation, "member_id": g.member_id,
                                    "offsets": [[tp.topic, tp.partition, o, m] for tp, (o, m)
                                                in g.offsets.items()]}
                       for g in groups.values()}, separators=(",", ":"), sort_keys=True)


__all__ = ["KafkaTransactions"]
