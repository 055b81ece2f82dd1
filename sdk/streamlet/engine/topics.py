"""Topic metadata: create, list, describe, delete and grow topics.

Each incarnation of a topic has its own ``topic_id``, so a deleted and recreated topic
never sees the old one's items. A topic item records the storage ``layout`` it was made
with; a topic of another layout is refused with :class:`UnsupportedLayout`.

Creating a topic writes one partition item per partition (log start 0, and how long the
empty log is safe to trust, see :mod:`streamlet.engine.log`), then the topic item and its
name-collision item in one transaction: Kafka refuses ``a.b`` beside ``a_b`` (their metric
names collide), and so does Streamlet.

Deleting a topic removes the topic item (lookups fail at once), seals every partition
(:meth:`PartitionLog.seal` puts a seal at the tail, so no writer with a cached view of the
old incarnation can be acknowledged), and records the incarnation for the purge, which
removes its items and objects once no writer can hold a cached view of it any more.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .._values import is_int
from ..clock import SYSTEM, Clock
from ..errors import (
    InvalidConfig,
    InvalidPartitions,
    InvalidTopicName,
    PartitionNotFound,
    TopicExists,
    TopicNotFound,
    UnsupportedLayout,
)
from ..topicconfig import (
    CONFIG_KEYS,
    config_int,
    validate_config,
    validate_partitions,
    validate_topic_name,
)
from . import schema
from .aws import batch_write, cancellation_reasons, conditional, error_code, items, translated

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

CACHE_SECONDS = 5.0
COLLISION_PREFIX = "collision#"
TRUST_MARGIN_MS = 120_000
"""How much earlier than DynamoDB's own clock a batch might expire by ours: writers
vouch for a tail only this long before the TTL that could delete it."""
FOREVER_MS = 2**62


@dataclass(frozen=True)
class TopicMeta:
    """A topic's identity, size and config, as stored in the topics table."""

    name: str
    topic_id: str
    partitions: int
    config: dict[str, str]
    created_ms: int
    overrides: frozenset[str] = frozenset()
    """The config keys set on this topic; the others hold their defaults."""
    config_version: int = 0

    def check_partition(self, partition: int) -> None:
        if not is_int(partition) or not 0 <= partition < self.partitions:
            raise PartitionNotFound(self.name, partition, self.partitions)

    def ref(self, partition: int) -> schema.PartitionRef:
        """The keys of one of this incarnation's partitions."""
        return schema.PartitionRef(self.name, self.topic_id, partition)


@dataclass(frozen=True)
class DeletedTopic:
    """An incarnation deleted at ``sealed_ms`` whose items and objects await the purge."""

    name: str
    topic_id: str
    partitions: int
    sealed_ms: int

    def refs(self) -> list[schema.PartitionRef]:
        return [schema.PartitionRef(self.name, self.topic_id, p) for p in range(self.partitions)]


def _meta_from_item(item: Mapping[str, Any]) -> TopicMeta:
    name = item[schema.A_NAME]["S"]
    layout = int(item.get(schema.A_LAYOUT, {"N": "1"})["N"])
    if layout != schema.LAYOUT:
        raise UnsupportedLayout(name, layout, schema.LAYOUT)
    return TopicMeta(
        name=name,
        topic_id=item[schema.A_TOPIC_ID]["S"],
        partitions=int(item[schema.A_PARTITIONS]["N"]),
        config={k: v["S"] for k, v in item[schema.A_CONFIG]["M"].items()},
        created_ms=int(item[schema.A_CREATED]["N"]),
        overrides=frozenset(item.get(schema.A_OVERRIDES, {}).get("SS", ())),
        config_version=int(item.get(schema.A_CONFIG_VERSION, {"N": "0"})["N"]),
    )


def _overrides_attribute(keys: frozenset[str]) -> dict[str, Any]:
    """A string set of the overridden keys (DynamoDB has no empty sets: absent if none)."""
    return {schema.A_OVERRIDES: {"SS": sorted(keys)}} if keys else {}


def collision_name(name: str) -> str:
    """Kafka's rule: names equal after replacing '.' with '_' collide.

    Example:
        >>> collision_name("orders.v1") == collision_name("orders_v1")
        True
    """
    return name.replace(".", "_")


def initial_safe_until(config: Mapping[str, str], now_ms: int) -> int:
    """How long an empty partition's log is trustworthy without an archiver pass: any batch
    appended from now on expires no sooner than now + local.retention.ms (writers keep
    TRUST_MARGIN_MS off it for clock skew)."""
    retention = config_int(config, "local.retention.ms")
    return FOREVER_MS if retention < 0 else now_ms + retention


class TopicStore:
    """Reads and writes topic items; caches lookups briefly for the hot path."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names, clock: Clock = SYSTEM):
        self._ddb = dynamodb
        self._names = names
        self._clock = clock
        self._cache: dict[str, tuple[float, TopicMeta]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, *, fresh: bool = False) -> TopicMeta:
        """The topic's metadata; raises TopicNotFound (UnsupportedLayout for an old one)."""
        now = self._clock.monotonic()
        with self._lock:
            hit = self._cache.get(name)
        if hit and not fresh and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        validate_topic_name(name)
        with translated(f"describe topic '{name}'"):
            item = self._ddb.get_item(TableName=self._names.topics_table,
                                      Key=schema.topic_key(name), ConsistentRead=True).get("Item")
        if item is None:
            self.forget(name)
            raise TopicNotFound(name)
        meta = _meta_from_item(item)
        with self._lock:
            self._cache[name] = (now, meta)
        return meta

    def forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)

    # ---- create -------------------------------------------------------------------------

    def create(self, name: str, partitions: int,
               config: Mapping[str, object] | None = None) -> TopicMeta:
        """Write the partition items, then the topic item (the commit point)."""
        validate_topic_name(name)
        validate_partitions(name, partitions)
        meta = TopicMeta(name, uuid.uuid4().hex, partitions, validate_config(config),
                         int(self._clock.time() * 1000), frozenset(config or {}))
        self._put_partition_items(meta, range(partitions))
        try:
            self._commit_topic(meta)
        except (TopicExists, InvalidTopicName):
            self._delete_partition_items(meta, range(partitions))
            raise
        with self._lock:
            self._cache[name] = (self._clock.monotonic(), meta)
        return meta

    def _commit_topic(self, meta: TopicMeta) -> None:
        """The topic item and its collision item, both only if absent, in one transaction."""
        table = self._names.topics_table
        actions: list[TransactWriteItemTypeDef] = [
            {"Put": {"TableName": table, "Item": item,
                     "ConditionExpression": "attribute_not_exists(#pk)",
                     "ExpressionAttributeNames": {"#pk": schema.PK}}}
            for item in (self._item(meta), self._collision_item(meta))]
        try:
            with translated(f"create topic '{meta.name}'"):
                self._ddb.transact_write_items(TransactItems=actions)
        except ClientError as e:
            if error_code(e) != "TransactionCanceledException":
                raise
            self._explain_refusal(meta, cancellation_reasons(e))

    def _explain_refusal(self, meta: TopicMeta, reasons: list[dict[str, Any]]) -> None:
        codes = [r.get("Code") for r in reasons]
        if codes and codes[0] == "ConditionalCheckFailed":
            raise TopicExists(meta.name)
        if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            owner = self._collision_owner(meta.name)
            raise InvalidTopicName(
                f"Topic '{meta.name}' collides with existing topic '{owner}': names that "
                "differ only in '.' and '_' are not allowed together (as in Kafka).")
        raise TopicExists(meta.name)  # a concurrent create of the same name

    def _collision_owner(self, name: str) -> str:
        with translated(f"create topic '{name}'"):
            item = self._ddb.get_item(TableName=self._names.topics_table, ConsistentRead=True,
                                      Key=self._collision_key(name)).get("Item")
        return item[schema.A_NAME]["S"] if item else collision_name(name)

    def _collision_key(self, name: str) -> dict[str, Any]:
        return {schema.PK: {"S": COLLISION_PREFIX + collision_name(name)}}

    def _collision_item(self, meta: TopicMeta) -> dict[str, Any]:
        return {**self._collision_key(meta.name), schema.A_NAME: {"S": meta.name},
                schema.A_TOPIC_ID: {"S": meta.topic_id}}

    def _item(self, meta: TopicMeta) -> dict[str, Any]:
        return {
            **schema.topic_key(meta.name),
            schema.A_NAME: {"S": meta.name},
            schema.A_TOPIC_ID: {"S": meta.topic_id},
            schema.A_PARTITIONS: {"N": str(meta.partitions)},
            schema.A_CONFIG: {"M": {k: {"S": v} for k, v in meta.config.items()}},
            schema.A_CREATED: {"N": str(meta.created_ms)},
            schema.A_LAYOUT: {"N": str(schema.LAYOUT)},
            **_overrides_attribute(meta.overrides),
        }

    def _partition_item(self, meta: TopicMeta, partition: int) -> dict[str, Any]:
        safe = initial_safe_until(meta.config, int(self._clock.time() * 1000))
        return {**meta.ref(partition).state_key, schema.A_LOG_START: {"N": "0"},
                schema.A_ARCHIVED: {"N": "0"}, schema.A_ARCHIVED_BYTES: {"N": "0"},
                schema.A_ARCHIVED_TS_MAX: {"N": "-1"},
                schema.A_ARCHIVED_APPEND_MAX: {"N": "0"}, schema.A_SAFE_UNTIL: {"N": str(safe)}}

    def _put_partition_items(self, meta: TopicMeta, partitions: range) -> None:
        self._batch_write([{"PutRequest": {"Item": self._partition_item(meta, p)}}
                           for p in partitions])

    def _delete_partition_items(self, meta: TopicMeta, partitions: range) -> None:
        self._batch_write([{"DeleteRequest": {"Key": meta.ref(p).state_key}}
                           for p in partitions])

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        batch_write(self._ddb, self._names.log_table, requests, "write partition items")

    # ---- list, delete, grow --------------------------------------------------------------

    def list(self) -> list[str]:
        found = items(self._ddb.scan, "list topics", TableName=self._names.topics_table,
                      ConsistentRead=True)
        return sorted(i[schema.A_NAME]["S"] for i in found
                      if i[schema.PK]["S"].startswith(schema.TOPIC_PREFIX))

    def delete(self, name: str) -> TopicMeta:
        """Remove the topic item (the commit point) and its collision item, and record the
        incarnation for the purge. The caller seals its partitions next."""
        meta = self.get(name, fresh=True)
        record = {**schema.deleted_key(meta.topic_id), schema.A_NAME: {"S": meta.name},
                  schema.A_PARTITIONS: {"N": str(meta.partitions)},
                  schema.A_SEALED_AT: {"N": str(int(self._clock.time() * 1000))}}
        with translated(f"delete topic '{name}'"):
            self._ddb.put_item(TableName=self._names.topics_table, Item=record)
        if not conditional(self._ddb.delete_item, f"delete topic '{name}'",
                           TableName=self._names.topics_table, Key=schema.topic_key(name),
                           ConditionExpression="#tid = :tid",
                           ExpressionAttributeNames={"#tid": schema.A_TOPIC_ID},
                           ExpressionAttributeValues={":tid": {"S": meta.topic_id}}):
            raise TopicNotFound(name)
        conditional(self._ddb.delete_item, f"delete topic '{name}'",
                    TableName=self._names.topics_table, Key=self._collision_key(name),
                    ConditionExpression="#tid = :tid",
                    ExpressionAttributeNames={"#tid": schema.A_TOPIC_ID},
                    ExpressionAttributeValues={":tid": {"S": meta.topic_id}})
        self.forget(name)
        return meta

    def deleted(self) -> builtins.list[DeletedTopic]:
        """Incarnations deleted and not yet purged."""
        found = items(self._ddb.scan, "list deleted topics", TableName=self._names.topics_table,
                      ConsistentRead=True)
        return [DeletedTopic(i[schema.A_NAME]["S"],
                             i[schema.PK]["S"][len(schema.DELETED_PREFIX):],
                             int(i[schema.A_PARTITIONS]["N"]), int(i[schema.A_SEALED_AT]["N"]))
                for i in found if i[schema.PK]["S"].startswith(schema.DELETED_PREFIX)]

    def forget_deleted(self, topic_id: str) -> None:
        with translated("forget a purged topic"):
            self._ddb.delete_item(TableName=self._names.topics_table,
                                  Key=schema.deleted_key(topic_id))

    def grow(self, name: str, total: int) -> TopicMeta:
        """Increase the partition count to ``total`` (partitions never shrink)."""
        meta = self.get(name, fresh=True)
        validate_partitions(name, total)
        if total <= meta.partitions:
            raise InvalidPartitions(
                f"Topic '{name}' has {meta.partitions} partitions; the new total must be "
                f"larger, got {total}.")
        for partition in range(meta.partitions, total):
            conditional(self._ddb.put_item, "write a partition item",
                        TableName=self._names.log_table,
                        Item=self._partition_item(meta, partition),
                        ConditionExpression="attribute_not_exists(#pk)",
                        ExpressionAttributeNames={"#pk": schema.PK})
        if not conditional(self._ddb.update_item, f"add partitions to '{name}'",
                           TableName=self._names.topics_table, Key=schema.topic_key(name),
                           UpdateExpression="SET #n = :new",
                           ConditionExpression="#n = :old AND #tid = :tid",
                           ExpressionAttributeNames={"#n": schema.A_PARTITIONS,
                                                     "#tid": schema.A_TOPIC_ID},
                           ExpressionAttributeValues={":new": {"N": str(total)},
                                                      ":old": {"N": str(meta.partitions)},
                                                      ":tid": {"S": meta.topic_id}}):
            raise InvalidPartitions(f"Topic '{name}' changed while adding partitions; retry.")
        self.forget(name)
        return self.get(name, fresh=True)

    def alter(self, name: str, updates: Mapping[str, object] | None = None,
              deletes: Iterable[str] = (), validate_only: bool = False) -> TopicMeta:
        """Set and delete (back to the default) config keys, validated as at creation.

        Compare-and-set on the config version: a concurrent alteration makes this one
        fail with InvalidConfig (retry), never half-applied. Appends, fetches and the
        archiver see it within the metadata cache's few seconds. A lower
        local.retention.ms also shortens how long each partition's tail is vouched for
        (``safe_until``), since batches appended from now on expire sooner.
        """
        meta = self.get(name, fresh=True)
        overrides: dict[str, object] = {k: meta.config[k] for k in meta.overrides}
        for key in deletes:
            if key not in CONFIG_KEYS:
                raise InvalidConfig(f"Unknown topic config {key!r} for '{name}'.")
            overrides.pop(key, None)
        overrides.update(updates or {})
        config = validate_config(overrides)
        altered = replace(meta, config=config, overrides=frozenset(overrides),
                          config_version=meta.config_version + 1)
        if not validate_only:
            self._write_config(meta, altered)
            self._clamp_safe_until(meta, altered)
        return altered

    def _write_config(self, old: TopicMeta, new: TopicMeta) -> None:
        values: dict[str, Any] = {
            ":c": {"M": {k: {"S": v} for k, v in new.config.items()}},
            ":v": {"N": str(new.config_version)}, ":old": {"N": str(old.config_version)},
            ":tid": {"S": old.topic_id}}
        sets = "#c = :c, #v = :v"
        if new.overrides:
            values[":o"] = _overrides_attribute(new.overrides)[schema.A_OVERRIDES]
            sets += ", #o = :o"
        if not conditional(
                self._ddb.update_item, f"alter the config of '{old.name}'",
                TableName=self._names.topics_table, Key=schema.topic_key(old.name),
                UpdateExpression=f"SET {sets}" + ("" if new.overrides else " REMOVE #o"),
                ConditionExpression="#tid = :tid AND "
                                    "(attribute_not_exists(#v) OR #v = :old)",
                ExpressionAttributeNames={"#c": schema.A_CONFIG, "#v": schema.A_CONFIG_VERSION,
                                          "#o": schema.A_OVERRIDES, "#tid": schema.A_TOPIC_ID},
                ExpressionAttributeValues=values):
            raise InvalidConfig(f"The config of '{old.name}' changed (or the topic was "
                                "recreated) during this alteration; nothing was changed, "
                                "retry.")
        self.forget(old.name)

    def _clamp_safe_until(self, old: TopicMeta, new: TopicMeta) -> None:
        before = config_int(old.config, "local.retention.ms")
        after = config_int(new.config, "local.retention.ms")
        if after < 0 or 0 <= before <= after:
            return
        bound = int(self._clock.time() * 1000) + after
        for partition in range(new.partitions):
            conditional(self._ddb.update_item, f"alter the config of '{new.name}'",
                        TableName=self._names.log_table, Key=new.ref(partition).state_key,
                        UpdateExpression="SET #su = :bound",
                        ConditionExpression="#su > :bound",
                        ExpressionAttributeNames={"#su": schema.A_SAFE_UNTIL},
                        ExpressionAttributeValues={":bound": {"N": str(bound)}})

    def next_producer_id(self) -> int:
        """Allocate a producer id (a lost reply only wastes an id)."""
        with translated("allocate a producer id"):
            out = self._ddb.update_item(
                TableName=self._names.topics_table,
                Key={schema.PK: {"S": schema.PRODUCER_ID_COUNTER}},
                UpdateExpression="ADD #v :one", ExpressionAttributeNames={"#v": schema.A_COUNTER},
                ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
        return int(out["Attributes"][schema.A_COUNTER]["N"])
