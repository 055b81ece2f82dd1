"""Topic metadata: create, list, describe, delete and grow topics."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._values import is_int
from ..clock import SYSTEM, Clock
from ..errors import InvalidPartitions, PartitionNotFound, TopicExists, TopicNotFound
from ..topicconfig import validate_config, validate_partitions, validate_topic_name
from . import schema
from .aws import batch_write, conditional, items, translated

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class TopicMeta:
    """A topic's identity, size and config, as stored in the topics table."""

    name: str
    topic_id: str
    partitions: int
    config: dict[str, str]
    created_ms: int

    def check_partition(self, partition: int) -> None:
        if not is_int(partition):
            raise PartitionNotFound(self.name, partition, self.partitions)
        if not 0 <= partition < self.partitions:
            raise PartitionNotFound(self.name, partition, self.partitions)


def _meta_from_item(item: Mapping[str, Any]) -> TopicMeta:
    return TopicMeta(
        name=item[schema.A_NAME]["S"],
        topic_id=item[schema.A_TOPIC_ID]["S"],
        partitions=int(item[schema.A_PARTITIONS]["N"]),
        config={k: v["S"] for k, v in item[schema.A_CONFIG]["M"].items()},
        created_ms=int(item[schema.A_CREATED]["N"]),
    )


def _head_item(topic_id: str, partition: int) -> dict[str, Any]:
    return {
        **schema.head_key(topic_id, partition),
        schema.A_NEXT_OFFSET: {"N": "0"},
        schema.A_LOG_START: {"N": "0"},
        schema.A_MAX_TS: {"N": "-1"},
    }


class TopicStore:
    """Reads and writes topic items; caches lookups briefly for the hot path."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names, clock: Clock = SYSTEM):
        self._ddb = dynamodb
        self._names = names
        self._clock = clock
        self._cache: dict[str, tuple[float, TopicMeta]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, *, fresh: bool = False) -> TopicMeta:
        """The topic's metadata; raises TopicNotFound."""
        now = time.monotonic()
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

    def create(self, name: str, partitions: int,
               config: Mapping[str, object] | None = None) -> TopicMeta:
        """Write the partition heads, then the topic item (the commit point)."""
        validate_topic_name(name)
        validate_partitions(name, partitions)
        meta = TopicMeta(name, uuid.uuid4().hex, partitions, validate_config(config),
                         int(self._clock.time() * 1000))
        self._put_heads(meta.topic_id, range(partitions))
        if not conditional(self._ddb.put_item, f"create topic '{name}'",
                           TableName=self._names.topics_table, Item=self._item(meta),
                           ConditionExpression="attribute_not_exists(#pk)",
                           ExpressionAttributeNames={"#pk": schema.PK}):
            self._delete_heads(meta.topic_id, range(partitions))
            raise TopicExists(name)
        return meta

    def _item(self, meta: TopicMeta) -> dict[str, Any]:
        return {
            **schema.topic_key(meta.name),
            schema.A_NAME: {"S": meta.name},
            schema.A_TOPIC_ID: {"S": meta.topic_id},
            schema.A_PARTITIONS: {"N": str(meta.partitions)},
            schema.A_CONFIG: {"M": {k: {"S": v} for k, v in meta.config.items()}},
            schema.A_CREATED: {"N": str(meta.created_ms)},
        }

    def _put_heads(self, topic_id: str, partitions: range) -> None:
        self._batch_write([{"PutRequest": {"Item": _head_item(topic_id, p)}} for p in partitions])

    def _put_head_if_absent(self, topic_id: str, partition: int) -> None:
        """Never overwrite a live head: a concurrent grow may have created it."""
        conditional(self._ddb.put_item, "write partition head", TableName=self._names.log_table,
                    Item=_head_item(topic_id, partition),
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": schema.PK})

    def _delete_heads(self, topic_id: str, partitions: range) -> None:
        keys = [schema.head_key(topic_id, p) for p in partitions]
        self._batch_write([{"DeleteRequest": {"Key": k}} for k in keys])

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        batch_write(self._ddb, self._names.log_table, requests, "write partition heads")

    def list(self) -> list[str]:
        found = items(self._ddb.scan, "list topics", TableName=self._names.topics_table,
                      ConsistentRead=True)
        return sorted(i[schema.A_NAME]["S"] for i in found if schema.A_NAME in i)

    def delete(self, name: str) -> TopicMeta:
        """Remove the topic item (the commit point), then its partition heads."""
        meta = self.get(name, fresh=True)
        if not conditional(self._ddb.delete_item, f"delete topic '{name}'",
                           TableName=self._names.topics_table, Key=schema.topic_key(name),
                           ConditionExpression="#tid = :tid",
                           ExpressionAttributeNames={"#tid": schema.A_TOPIC_ID},
                           ExpressionAttributeValues={":tid": {"S": meta.topic_id}}):
            raise TopicNotFound(name)
        self.forget(name)
        self._delete_heads(meta.topic_id, range(meta.partitions))
        return meta

    def grow(self, name: str, total: int) -> TopicMeta:
        """Increase the partition count to ``total`` (partitions never shrink)."""
        meta = self.get(name, fresh=True)
        validate_partitions(name, total)
        if total <= meta.partitions:
            raise InvalidPartitions(
                f"Topic '{name}' has {meta.partitions} partitions; the new total must be "
                f"larger, got {total}.")
        for partition in range(meta.partitions, total):
            self._put_head_if_absent(meta.topic_id, partition)
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

    def next_producer_id(self) -> int:
        """Allocate a producer id (a lost reply only wastes an id)."""
        with translated("allocate a producer id"):
            out = self._ddb.update_item(
                TableName=self._names.topics_table,
                Key={schema.PK: {"S": schema.PRODUCER_ID_COUNTER}},
                UpdateExpression="ADD #v :one", ExpressionAttributeNames={"#v": schema.A_COUNTER},
                ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
        return int(out["Attributes"][schema.A_COUNTER]["N"])
