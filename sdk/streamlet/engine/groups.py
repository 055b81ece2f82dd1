"""Consumer-group state on DynamoDB: members, partition leases and committed offsets.

One lease item per (group, topic, partition) holds the owner, an ``epoch`` bumped on
every take (the fencing token) and the committed offset. One member item per live
member holds a heartbeat counter that the member bumps; observers judge a member dead
when its counter has not moved for the session timeout *on their own monotonic clock*
(the KCL rule), so wall-clock skew between hosts cannot cause a steal.

Every mutation is a conditional write. A conditional failure after an SDK retry may be
our own earlier success whose reply was lost: take and commit re-read and recognise it.

The HTTP handlers use a store *bound* to the caller (:meth:`GroupStore.bound`): member
items and taken leases record the caller's principal, and another principal's heartbeat,
take, release, commit or removal of them is refused (AccessDenied, nothing written);
leases, takes and commits must name existing topics and partitions.

Example:
    >>> store = GroupStore(dynamodb, Names())                       # doctest: +SKIP
    >>> mine = store.bound("role:aws:123456789012:billing", topics)  # doctest: +SKIP
    >>> mine.heartbeat("billing", Member("m-1", 0, topics=("orders",)))  # doctest: +SKIP
    1
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from ..clock import SYSTEM, Clock
from ..errors import AccessDenied, CommitFailed, GroupActive, GroupNotFound, InvalidRequest
from ..groups.leases import GroupSnapshot, Lease, Member, check_member
from ..groups.leases import validate_group as _validate_group
from ..records import TopicPartition
from . import schema
from .aws import batch_write, conditional, error_code, items, transacted, translated

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

MEMBER_TTL_S = 24 * 3600
MAX_COMMIT_PARTITIONS = 100  # one TransactWriteItems


def _lease_from(item: Mapping[str, Any]) -> Lease:
    topic, partition = item[schema.SK]["S"][len(schema.LEASE_PREFIX):].rsplit("#", 1)
    committed = item.get("committed", {}).get("N")
    return Lease(TopicPartition(topic, int(partition)), item.get("owner", {}).get("S"),
                 int(item["epoch"]["N"]), None if committed is None else int(committed),
                 item.get("metadata", {}).get("S", ""),
                 int(item.get("committed_ms", {}).get("N", "0")))


def _member_from(item: Mapping[str, Any]) -> Member:
    return Member(item[schema.SK]["S"][len(schema.MEMBER_PREFIX):], int(item["beat"]["N"]),
                  item.get("client_id", {}).get("S", ""), item.get("host", {}).get("S", ""),
                  item.get("instance_id", {}).get("S", ""),
                  tuple(item.get("topics", {}).get("SS", ())),
                  int(item.get("heartbeat_ms", {}).get("N", "3000")),
                  int(item.get("session_ms", {}).get("N", "0")))


class _Partitions(Protocol):
    def check_partition(self, partition: int) -> None: ...


class TopicLookup(Protocol):
    """What existence checks need (the engine's ``TopicStore``)."""

    def get(self, name: str, *, fresh: bool = False) -> _Partitions: ...


def _foreign(kind: str, name: str, group: str) -> AccessDenied:
    return AccessDenied(f"The {kind} '{name}' of group '{group}' belongs to another "
                        "principal (or has not joined: send a heartbeat first); nothing "
                        "was changed.")


class GroupStore:
    """Reads and conditionally writes one deployment's group items."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names, clock: Clock = SYSTEM):
        self._ddb = dynamodb
        self._table = names.groups_table
        self._clock = clock
        self._principal: str | None = None
        self._topics: TopicLookup | None = None

    def bound(self, principal: str, topics: TopicLookup | None = None) -> GroupStore:
        """This store acting for ``principal``; with ``topics``, partitions must exist.

        Members it creates and leases it takes record ``principal``; another principal's
        members and leases are refused (AccessDenied), never silently ignored.
        """
        store = copy.copy(self)
        store._principal, store._topics = principal, topics
        return store

    def check_partitions(self, group: str, tps: Iterable[TopicPartition]) -> None:
        """The group id's shape, then (a bound store with topics) TopicNotFound /
        PartitionNotFound unless each partition exists."""
        _validate_group(group)
        if self._topics is None:
            return
        for tp in tps:
            self._topics.get(tp.topic).check_partition(tp.partition)

    def _principal_of(self, group: str, sk: str) -> str | None:
        with translated(f"read group '{group}'"):
            item = self._ddb.get_item(TableName=self._table, Key=self._key(group, sk),
                                      ConsistentRead=True).get("Item")
        return None if item is None else item.get(schema.A_PRINCIPAL, {}).get("S", "")

    def _key(self, group: str, sk: str) -> dict[str, Any]:
        return {schema.PK: {"S": schema.group_pk(_validate_group(group))}, schema.SK: {"S": sk}}

    def _lease_key(self, group: str, tp: TopicPartition) -> dict[str, Any]:
        return self._key(group, schema.lease_sk(tp.topic, tp.partition))

    # ---- reads ----------------------------------------------------------------------

    def snapshot(self, group: str) -> GroupSnapshot:
        snap = GroupSnapshot()
        for item in self._query(group):
            sk = item[schema.SK]["S"]
            if sk.startswith(schema.LEASE_PREFIX):
                lease = _lease_from(item)
                snap.leases[lease.tp] = lease
            elif sk.startswith(schema.MEMBER_PREFIX):
                member = _member_from(item)
                snap.members[member.member_id] = member
        return snap

    def _query(self, group: str) -> Iterable[dict[str, Any]]:
        return items(self._ddb.query, f"read group '{group}'", TableName=self._table,
                     ConsistentRead=True, KeyConditionExpression="#pk = :pk",
                     ExpressionAttributeNames={"#pk": schema.PK},
                     ExpressionAttributeValues={
                         ":pk": {"S": schema.group_pk(_validate_group(group))}})

    def lease(self, group: str, tp: TopicPartition) -> Lease | None:
        with translated(f"read group '{group}'"):
            item = self._ddb.get_item(TableName=self._table, Key=self._lease_key(group, tp),
                                      ConsistentRead=True).get("Item")
        return None if item is None else _lease_from(item)

    def list_groups(self) -> list[str]:
        found = items(self._ddb.scan, "list groups", TableName=self._table,
                      ProjectionExpression="#pk", ExpressionAttributeNames={"#pk": schema.PK})
        return sorted({i[schema.PK]["S"][len(schema.GROUP_PREFIX):] for i in found
                       if i[schema.PK]["S"].startswith(schema.GROUP_PREFIX)})

    # ---- membership -----------------------------------------------------------------

    def heartbeat(self, group: str, member: Member) -> int:
        """Create or renew a member item; returns its new heartbeat counter.

        Bound: a new member records the principal; another principal's is AccessDenied.
        """
        check_member(member)
        values: dict[str, Any] = {
            ":one": {"N": "1"}, ":client": {"S": member.client_id or "-"},
            ":host": {"S": member.host or "-"}, ":inst": {"S": member.instance_id or "-"},
            ":hb": {"N": str(member.heartbeat_ms)}, ":session": {"N": str(member.session_ms)},
            ":ttl": {"N": str(int(self._clock.time()) + MEMBER_TTL_S)},
        }
        sets = ("client_id = :client, host = :host, instance_id = :inst, "
                "heartbeat_ms = :hb, session_ms = :session, #ttl = :ttl")
        if member.topics:
            values[":topics"] = {"SS": sorted(set(member.topics))}
            sets += ", topics = :topics"
        names = {"#ttl": schema.TTL}
        bound = self._bound_condition(values, "#pk")
        if bound:
            names.update({"#pk": schema.PK, "#principal": schema.A_PRINCIPAL})
            sets += ", #principal = :principal"
        try:
            with translated(f"heartbeat in group '{group}'"):
                out = self._ddb.update_item(
                    TableName=self._table,
                    Key=self._key(group, schema.member_sk(member.member_id)),
                    UpdateExpression=f"ADD beat :one SET {sets}", ReturnValues="UPDATED_NEW",
                    ExpressionAttributeNames=names, ExpressionAttributeValues=values, **bound)
        except ClientError as e:
            if error_code(e) != "ConditionalCheckFailedException":
                raise
            raise _foreign("member", member.member_id, group) from None
        beat = int(out["Attributes"]["beat"]["N"])
        if beat == 1:  # a new member: not beside Kafka clients (the Kafka gateway)
            self._refuse_beside_kafka_clients(group, member.member_id)
        return beat

    def _refuse_beside_kafka_clients(self, group: str, member_id: str) -> None:
        from .kafka_groups import KafkaGroupStore

        live = KafkaGroupStore(self._ddb, self._table).live_members(
            group, int(self._clock.time() * 1000))
        if live:
            with translated(f"leave group '{group}'"):
                self._ddb.delete_item(TableName=self._table,
                                      Key=self._key(group, schema.member_sk(member_id)))
            raise GroupActive(group, [f"Kafka clients through the Kafka gateway: {m}"
                                      for m in live])

    def _bound_condition(self, values: dict[str, Any], new: str) -> dict[str, Any]:
        """Bound: ``{ConditionExpression: the item is new (``new`` absent), ours, or from
        before identities were recorded (claimed by its first heartbeat since)}``."""
        if self._principal is None:
            return {}
        values[":principal"] = {"S": self._principal}
        return {"ConditionExpression": f"attribute_not_exists({new}) OR "
                                       "attribute_not_exists(#principal) OR "
                                       "#principal = :principal"}

    def remove_member(self, group: str, member_id: str, seen_beat: int | None = None) -> None:
        """Delete a member item (a leaving member, or a dead one whose beat did not move).

        Bound: only the principal's own members (another's: AccessDenied); a dead member of
        another principal stays until its TTL (liveness ignores it meanwhile), so its id
        cannot be freed and claimed by someone else.
        """
        sk = schema.member_sk(member_id)
        kwargs: dict[str, Any] = {"TableName": self._table, "Key": self._key(group, sk)}
        conditions, values, names = [], {}, {}
        if seen_beat is not None:
            conditions.append("beat = :b")
            values[":b"] = {"N": str(seen_beat)}
        if self._principal is not None:
            conditions.append("#principal = :principal")
            values[":principal"] = {"S": self._principal}
            names["#principal"] = schema.A_PRINCIPAL
        if conditions:
            kwargs.update(ConditionExpression=" AND ".join(conditions),
                          ExpressionAttributeValues=values)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if not conditional(self._ddb.delete_item, f"remove a member of group '{group}'",
                           **kwargs) and self._is_foreign(group, sk):
            raise _foreign("member", member_id, group)

    def _is_foreign(self, group: str, sk: str) -> bool:
        """Bound: whether the item exists and records another principal (or none)."""
        if self._principal is None:
            return False
        found = self._principal_of(group, sk)
        return found is not None and found != self._principal

    # ---- leases ---------------------------------------------------------------------

    def ensure_leases(self, group: str, tps: Iterable[TopicPartition]) -> None:
        """Create missing lease items (unowned, epoch 0); existing ones are left alone."""
        tps = list(tps)
        self.check_partitions(group, tps)
        for tp in tps:
            conditional(self._ddb.put_item, f"create a lease in group '{group}'",
                        TableName=self._table,
                        Item={**self._lease_key(group, tp), "epoch": {"N": "0"}},
                        ConditionExpression="attribute_not_exists(#sk)",
                        ExpressionAttributeNames={"#sk": schema.SK})

    def take(self, group: str, tp: TopicPartition, member_id: str, seen: Lease) -> Lease | None:
        """Take a lease last seen as ``seen``; None if someone else changed it first.

        Bound: ``member_id`` must not be another principal's member, and the lease records
        the principal (only it can then commit or release at this epoch).
        """
        self.check_partitions(group, [tp])
        sets, names = "SET #owner = :me, epoch = :new", {"#owner": "owner"}
        values = {":me": {"S": member_id}, ":new": {"N": str(seen.epoch + 1)},
                  ":seen": {"N": str(seen.epoch)}}
        if self._principal is not None:
            if self._is_foreign(group, schema.member_sk(member_id)):
                raise _foreign("member", member_id, group)
            sets += ", #principal = :principal"
            names["#principal"] = schema.A_PRINCIPAL
            values[":principal"] = {"S": self._principal}
        epoch = seen.epoch + 1
        try:
            with translated(f"take a lease in group '{group}'"):
                out = self._ddb.update_item(
                    TableName=self._table, Key=self._lease_key(group, tp),
                    UpdateExpression=sets, ConditionExpression="epoch = :seen",
                    ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW")
        except ClientError as e:
            if error_code(e) != "ConditionalCheckFailedException":
                raise
            now = self.lease(group, tp)  # our own retried success, or a lost race?
            return now if now and now.owner == member_id and now.epoch == epoch else None
        # the committed offset as of the take (not as ``seen``: the old owner may have
        # committed since, and no commit of its can land after the epoch moved)
        return _lease_from(out["Attributes"])

    def release(self, group: str, tp: TopicPartition, member_id: str, epoch: int) -> None:
        """Give a lease up (owner removed); a no-op if it was already lost.

        Bound: a lease held at that epoch under another principal is AccessDenied.
        """
        condition, names, values = self._fence(member_id, epoch)
        if not conditional(self._ddb.update_item, f"release a lease in group '{group}'",
                           TableName=self._table, Key=self._lease_key(group, tp),
                           UpdateExpression="REMOVE #owner", ConditionExpression=condition,
                           ExpressionAttributeNames=names, ExpressionAttributeValues=values):
            lease = self.lease(group, tp)
            if self._principal is not None and lease and \
                    (lease.owner, lease.epoch) == (member_id, epoch) and \
                    self._check_principal(group, member_id, {tp: epoch}):
                self.release(group, tp, member_id, epoch)  # adopted: release it now

    def _fence(self, member_id: str, epoch: int, *, legacy: bool = False
               ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The owner-and-epoch condition (and, bound, the principal: ours, or with
        ``legacy`` none yet) of a lease write."""
        condition = "#owner = :me AND epoch = :e"
        names = {"#owner": "owner"}
        values: dict[str, Any] = {":me": {"S": member_id}, ":e": {"N": str(epoch)}}
        if self._principal is not None:
            condition += (" AND attribute_not_exists(#principal)" if legacy
                          else " AND #principal = :principal")
            names["#principal"] = schema.A_PRINCIPAL
            values[":principal"] = {"S": self._principal}
        return condition, names, values

    # ---- commits --------------------------------------------------------------------

    def commit(self, group: str, member_id: str,
               offsets: Mapping[TopicPartition, tuple[int, int, str]]) -> None:
        """Commit ``{tp: (epoch, offset, metadata)}`` atomically, fenced by owner and epoch.

        Raises CommitFailed (nothing written) if any lease is no longer ours at that epoch;
        bound, AccessDenied (nothing written) if one is held under another principal. The
        owner may move its offset backwards (Kafka: the last commit wins), a stale owner
        never. The common case is one request; leases are read only to explain a refusal.
        """
        if not offsets:
            return
        if len(offsets) > MAX_COMMIT_PARTITIONS:
            raise InvalidRequest(f"A commit covers at most {MAX_COMMIT_PARTITIONS} partitions.")
        self.check_partitions(group, offsets)
        pending = dict(offsets)
        for _ in range(3):
            if not pending or self._try_commit(group, member_id, pending):
                return
            stored = {tp: self.lease(group, tp) for tp in pending}
            self._check_owned(group, member_id, pending, stored)
            if self._principal is not None and self._check_principal(
                    group, member_id, {tp: v[0] for tp, v in pending.items()}):
                continue  # adopted a lease from before identities: try again
            # ours at the right epoch: drop what is already applied (our own retry)
            pending = {tp: v for tp, v in pending.items()
                       if stored[tp].committed != v[1]}  # type: ignore[union-attr]
        if pending:
            raise CommitFailed(group, list(pending), detail="concurrent updates")

    def _try_commit(self, group: str, member_id: str,
                    offsets: Mapping[TopicPartition, tuple[int, int, str]]) -> bool:
        """One fenced TransactWriteItems; False if a condition failed (nothing written)."""
        items = [self._commit_item(group, member_id, tp, *v) for tp, v in offsets.items()]
        return transacted(self._ddb.transact_write_items,
                          f"commit offsets of group '{group}'", TransactItems=items)

    def _check_owned(self, group: str, member_id: str,
                     offsets: Mapping[TopicPartition, tuple[int, int, str]],
                     stored: Mapping[TopicPartition, Lease | None]) -> None:
        stale = [tp for tp, (epoch, _, _) in offsets.items()
                 if (lease := stored[tp]) is None or lease.owner != member_id
                 or lease.epoch != epoch]
        if stale:
            raise CommitFailed(group, stale)

    def _check_principal(self, group: str, member_id: str, epochs: Mapping[TopicPartition, int]
                         ) -> bool:
        """AccessDenied unless each lease (held by ``member_id``) is this principal's.

        A lease taken before identities were recorded has none: it is adopted when its
        member is this principal's (claimed by a heartbeat). True if any was adopted.
        """
        adopted = False
        for tp, epoch in epochs.items():
            found = self._principal_of(group, schema.lease_sk(tp.topic, tp.partition))
            if found in (None, self._principal):
                continue
            mine = self._principal_of(group, schema.member_sk(member_id)) == self._principal
            if found or not mine:
                raise _foreign("lease holder", member_id, group)
            condition, names, values = self._fence(member_id, epoch, legacy=True)
            adopted |= conditional(self._ddb.update_item, f"adopt a lease in group '{group}'",
                                   TableName=self._table, Key=self._lease_key(group, tp),
                                   UpdateExpression="SET #principal = :principal",
                                   ConditionExpression=condition,
                                   ExpressionAttributeNames=names,
                                   ExpressionAttributeValues=values)
        return adopted

    def commit_action(self, group: str, member_id: str, tp: TopicPartition, epoch: int,
                      offset: int, metadata: str) -> TransactWriteItemTypeDef:
        """One lease's commit as a TransactWriteItems action, fenced like :meth:`commit`
        (what a transaction's commit carries for the offsets sent with it)."""
        return self._commit_item(group, member_id, tp, epoch, offset, metadata)

    def _commit_item(self, group: str, member_id: str, tp: TopicPartition, epoch: int,
                     offset: int, metadata: str) -> TransactWriteItemTypeDef:
        condition, names, values = self._fence(member_id, epoch)
        values.update({":o": {"N": str(offset)}, ":m": {"S": metadata},
                       ":t": {"N": str(int(self._clock.time() * 1000))}})
        return {"Update": {
            "TableName": self._table, "Key": self._lease_key(group, tp),
            "UpdateExpression": "SET committed = :o, metadata = :m, committed_ms = :t",
            "ConditionExpression": condition, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}}

    # ---- administration -------------------------------------------------------------

    def reset(self, group: str, offsets: Mapping[TopicPartition, int],
              seen: Mapping[TopicPartition, Lease]) -> None:
        """Set committed offsets explicitly (even backwards); fences any old owner."""
        self.check_partitions(group, offsets)
        items: list[TransactWriteItemTypeDef] = []
        for tp, offset in offsets.items():
            lease = seen.get(tp)
            condition = "epoch = :e" if lease else "attribute_not_exists(#sk)"
            values = {":o": {"N": str(offset)}, ":t": {"N": str(int(self._clock.time() * 1000))},
                      ":new": {"N": str(lease.epoch + 1 if lease else 1)}, ":m": {"S": ""}}
            if lease:
                values[":e"] = {"N": str(lease.epoch)}
            items.append({"Update": {
                "TableName": self._table, "Key": self._lease_key(group, tp),
                "UpdateExpression": "SET committed = :o, committed_ms = :t, epoch = :new, "
                                    "metadata = :m REMOVE #owner",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#owner": "owner",
                                             **({} if lease else {"#sk": schema.SK})},
                "ExpressionAttributeValues": values}})
        for i in range(0, len(items), MAX_COMMIT_PARTITIONS):
            try:
                with translated(f"reset offsets of group '{group}'"):
                    self._ddb.transact_write_items(TransactItems=items[i:i + MAX_COMMIT_PARTITIONS])
            except ClientError as e:
                if error_code(e) == "TransactionCanceledException":
                    raise InvalidRequest(f"Group '{group}' changed during the reset; "
                                         "nothing was reset in this batch, retry.") from None
                raise

    def delete(self, group: str) -> None:
        keys = [{schema.PK: item[schema.PK], schema.SK: item[schema.SK]}
                for item in self._query(group)]
        if not keys:
            raise GroupNotFound(group)
        batch_write(self._ddb, self._table, [{"DeleteRequest": {"Key": k}} for k in keys],
                    f"delete group '{group}'")
