"""Kafka's classic consumer groups (JoinGroup/SyncGroup) on DynamoDB, for the Kafka gateway.

The coordinator's state lives in one item per group (``kafka#classic`` beside the SDK's
member and lease items), so any gateway serves any member: the group's state as JSON,
written compare-and-set on a version; member heartbeats in a separate map that a
heartbeat updates alone (no version bump, so heartbeats never conflict with each other).

Committed offsets are written to the group's lease items, the very items the SDK's
consumers commit to: ``streamlet groups describe``, lag, reset-offsets and REST Proxy v3
see Kafka clients' commits. A commit is one ``TransactWriteItems``: a condition check that
the member is in the group at that generation, plus the offsets (at most 99 partitions
per transaction).

Example:
    >>> store = KafkaGroupStore(dynamodb, Names().groups_table)              # doctest: +SKIP
    >>> store.load("billing") is None                              # doctest: +SKIP
    True
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..groups.leases import validate_group
from ..records import TopicPartition
from . import schema
from .aws import conditional, error_code, translated

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

MAX_COMMIT_PARTITIONS = 99
"""Offsets per commit transaction (plus the one condition check: DynamoDB's 100)."""


@dataclass(frozen=True, slots=True)
class ClassicTxnOffsets:
    """A Kafka client's offsets sent with a transaction (TxnOffsetCommit): committed with
    the transaction, fenced by the member's place in the classic group's generation."""

    group_id: str
    generation: int
    """-1 (with no member id): a standalone commit, fenced as :meth:`KafkaGroupStore.commit`
    fences one."""
    member_id: str
    offsets: Mapping[TopicPartition, tuple[int, str]]
    """``{partition: (next offset to read, metadata)}``."""


@dataclass
class ClassicMember:
    """One member of a classic group, as JoinGroup described it."""

    member_id: str
    client_id: str = ""
    host: str = ""
    instance_id: str | None = None
    session_ms: int = 10_000
    rebalance_ms: int = 300_000
    protocols: list[tuple[str, str]] = field(default_factory=list)
    """(protocol name, metadata as base64)."""
    joined: int = 0
    """The rebalance round this member (re)joined for."""
    beat_ms: int = 0
    assignment: str = ""
    """Its assignment (base64) in the current generation."""

    def metadata(self, protocol: str | None) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return base64.b64decode(data)
        return b""


@dataclass
class ClassicGroup:
    """A classic group's coordinator state (Kafka's GroupMetadata)."""

    group_id: str
    state: str = "Empty"
    generation: int = 0
    round: int = 0
    formed: int = 0
    """The round whose generation was formed last."""
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str | None = None
    deadline_ms: int = 0
    ready_ms: int = 0
    """A new group's rebalance waits until then for more members (initial delay)."""
    members: dict[str, ClassicMember] = field(default_factory=dict)
    version: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("version")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, version: int) -> ClassicGroup:
        data = json.loads(text)
        members = {k: ClassicMember(**{**v, "protocols": [tuple(p) for p in v["protocols"]]})
                   for k, v in data.pop("members").items()}
        return cls(**data, members=members, version=version)


class KafkaGroupStore:
    """Reads and conditionally writes classic group items and Kafka clients' commits."""

    def __init__(self, dynamodb: DynamoDBClient, groups_table: str) -> None:
        self._ddb = dynamodb
        self._table = groups_table

    def _key(self, group: str, sk: str = schema.CLASSIC_SK) -> dict[str, Any]:
        return {schema.PK: {"S": schema.group_pk(validate_group(group))}, schema.SK: {"S": sk}}

    def load(self, group: str) -> ClassicGroup | None:
        """The group's state, heartbeats merged in (strongly consistent), or None."""
        with translated(f"read group '{group}'"):
            item = self._ddb.get_item(TableName=self._table, Key=self._key(group),
                                      ConsistentRead=True).get("Item")
        if item is None:
            return None
        loaded = ClassicGroup.from_json(item[schema.A_CLASSIC]["S"],
                                        int(item[schema.A_CLASSIC_VERSION]["N"]))
        for member_id, beat in item.get(schema.A_BEATS, {}).get("M", {}).items():
            member = loaded.members.get(member_id)
            if member is not None:
                member.beat_ms = max(member.beat_ms, int(beat["N"]))
        return loaded

    def save(self, group: ClassicGroup) -> bool:
        """Write ``group`` if nobody wrote since it was loaded (its version); False if
        someone did (nothing written). Its version moves on when written."""
        beats = {m.member_id: {"N": str(m.beat_ms)} for m in group.members.values()}
        item = {**self._key(group.group_id),
                schema.A_CLASSIC: {"S": group.to_json()},
                schema.A_CLASSIC_VERSION: {"N": str(group.version + 1)},
                schema.A_GENERATION: {"N": str(group.generation)},
                schema.A_BEATS: {"M": beats}}
        if group.version == 0:
            condition, values = "attribute_not_exists(#sk)", None
        else:
            condition, values = "#v = :v", {":v": {"N": str(group.version)}}
        kwargs: dict[str, Any] = {
            "TableName": self._table, "Item": item, "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#sk": schema.SK} if values is None
            else {"#v": schema.A_CLASSIC_VERSION}}
        if values is not None:
            kwargs["ExpressionAttributeValues"] = values
        if not conditional(self._ddb.put_item, f"write group '{group.group_id}'", **kwargs):
            return False
        group.version += 1
        return True

    def live_members(self, group: str, now_ms: int) -> list[str]:
        """Members of the group's classic (Kafka client) generation still within their
        session: an SDK consumer may not join such a group."""
        loaded = self.load(group)
        if loaded is None:
            return []
        return [m.member_id for m in loaded.members.values()
                if m.beat_ms + m.session_ms >= now_ms]

    def beat(self, group: str, member_id: str, now_ms: int) -> bool:
        """Record a member's heartbeat; False if the member is not in the group."""
        return conditional(
            self._ddb.update_item, f"heartbeat in group '{group}'", TableName=self._table,
            Key=self._key(group), UpdateExpression="SET #b.#m = :now",
            ConditionExpression="attribute_exists(#b.#m)",
            ExpressionAttributeNames={"#b": schema.A_BEATS, "#m": member_id},
            ExpressionAttributeValues={":now": {"N": str(now_ms)}})

    def delete(self, group: ClassicGroup) -> bool:
        return conditional(
            self._ddb.delete_item, f"delete group '{group.group_id}'", TableName=self._table,
            Key=self._key(group.group_id), ConditionExpression="#v = :v",
            ExpressionAttributeNames={"#v": schema.A_CLASSIC_VERSION},
            ExpressionAttributeValues={":v": {"N": str(group.version)}})

    def commit(self, group: str, offsets: Mapping[TopicPartition, tuple[int, str]],
               now_ms: int, generation: int | None = None, member_id: str = "") -> bool:
        """Write committed offsets; with a generation, only while ``member_id`` is in the
        group at that generation (False, nothing written, otherwise). Without one (a
        standalone commit), only while no classic generation is active."""
        tps = list(offsets)
        for start in range(0, len(tps), MAX_COMMIT_PARTITIONS):
            chunk = tps[start:start + MAX_COMMIT_PARTITIONS]
            items = [self._fence(group, generation, member_id)]
            items += [self._offset(group, tp, *offsets[tp], now_ms) for tp in chunk]
            try:
                with translated(f"commit offsets of group '{group}'"):
                    self._ddb.transact_write_items(TransactItems=items)
            except ClientError as e:
                if error_code(e) == "TransactionCanceledException":
                    return False
                raise
        return True

    def txn_actions(self, sent: ClassicTxnOffsets, now_ms: int
                    ) -> list[TransactWriteItemTypeDef]:
        """The condition check and offset writes a transaction's commit carries for
        ``sent`` (the fence first, then one action per partition)."""
        generation = None if sent.generation < 0 and not sent.member_id else sent.generation
        return [self._fence(sent.group_id, generation, sent.member_id),
                *(self._offset(sent.group_id, tp, *value, now_ms)
                  for tp, value in sent.offsets.items())]

    def _fence(self, group: str, generation: int | None, member_id: str
               ) -> TransactWriteItemTypeDef:
        names = {"#b": schema.A_BEATS}
        if generation is None:
            condition = "attribute_not_exists(#sk) OR size(#b) = :zero"
            return {"ConditionCheck": {
                "TableName": self._table, "Key": self._key(group),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {**names, "#sk": schema.SK},
                "ExpressionAttributeValues": {":zero": {"N": "0"}}}}
        return {"ConditionCheck": {
            "TableName": self._table, "Key": self._key(group),
            "ConditionExpression": "attribute_exists(#b.#m) AND #g = :g",
            "ExpressionAttributeNames": {**names, "#m": member_id, "#g": schema.A_GENERATION},
            "ExpressionAttributeValues": {":g": {"N": str(generation)}}}}

    def _offset(self, group: str, tp: TopicPartition, offset: int, metadata: str,
                now_ms: int) -> TransactWriteItemTypeDef:
        return {"Update": {
            "TableName": self._table,
            "Key": self._key(group, schema.lease_sk(tp.topic, tp.partition)),
            "UpdateExpression": "SET #c = :o, #md = :m, #t = :t, #e = if_not_exists(#e, :z)",
            "ExpressionAttributeNames": {"#c": schema.A_COMMITTED,
                                         "#md": schema.A_COMMIT_METADATA,
                                         "#t": schema.A_COMMITTED_MS,
                                         "#e": schema.A_LEASE_EPOCH},
            "ExpressionAttributeValues": {":o": {"N": str(offset)}, ":m": {"S": metadata},
                                          ":t": {"N": str(now_ms)}, ":z": {"N": "0"}}}}


__all__ = ["ClassicGroup", "ClassicMember", "ClassicTxnOffsets", "KafkaGroupStore"]
