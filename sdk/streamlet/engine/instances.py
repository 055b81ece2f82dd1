"""REST Proxy v2 consumer instances: their state lives in the groups table, never in memory.

Any Lambda invocation may serve an instance's next request, so the format, the manual
assignment and the positions are one item, ``group#{group}`` / ``instance#{name}``,
that every request reads and updates. Idle instances expire: each write pushes
``expires_at`` (DynamoDB's TTL attribute) forward, and reads treat an expired item
as gone, since TTL deletes lazily.

Example:
    >>> instances = ConsumerInstances(dynamodb, Names())           # doctest: +SKIP
    >>> instances.create("billing", "c1", "binary", "earliest")    # doctest: +SKIP
    >>> instances.assign("billing", "c1", [TopicPartition("orders", 0)])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest, StreamletError
from ..records import TopicPartition
from . import schema as s
from .aws import conditional, translated

INSTANCE_TIMEOUT_S = 300
"""REST Proxy's ``consumer.instance.timeout.ms`` default: 5 minutes idle."""
MAX_NAME_LENGTH = 200
A_FORMAT = "format"
A_RESET = "auto_offset_reset"
A_REQUEST_TIMEOUT = "request_timeout_ms"
A_ASSIGNMENTS = "assignments"
A_POSITIONS = "positions"
A_CREATED = "created_ms"


class ConsumerInstanceNotFound(StreamletError):
    """No such consumer instance in the group (never created, deleted or expired)."""

    code = "consumer_instance_not_found"
    status = 404
    error_code = 40403

    def __init__(self, group: str, name: str) -> None:
        super().__init__(f"Consumer instance '{name}' of group '{group}' does not exist "
                         "(it may have expired after being idle).")
        self.group, self.name = group, name


class ConsumerInstanceExists(StreamletError):
    """``create`` with a name the group already uses."""

    code = "consumer_instance_exists"
    status = 409
    error_code = 40902

    def __init__(self, group: str, name: str) -> None:
        super().__init__(f"Consumer instance '{name}' already exists in group '{group}'.")
        self.group, self.name = group, name


@dataclass(frozen=True)
class ConsumerInstance:
    """One v2 consumer instance's state."""

    group: str
    name: str
    format: str
    auto_offset_reset: str
    request_timeout_ms: int = 1000
    assignments: tuple[TopicPartition, ...] = ()
    positions: dict[TopicPartition, int] = field(default_factory=dict)


def _position_key(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


def _from_position_key(key: str) -> TopicPartition:
    topic, _, partition = key.rpartition("/")
    return TopicPartition(topic, int(partition))


def validate_name(kind: str, value: str) -> str:
    """Group and instance names: 1..200 printable characters."""
    if not 1 <= len(value) <= MAX_NAME_LENGTH or not value.isprintable():
        raise InvalidRequest(f"The {kind} name must be 1 to {MAX_NAME_LENGTH} printable "
                             "characters.")
    return value


class ConsumerInstances:
    """Creates, reads, updates and deletes consumer instance items."""

    def __init__(self, dynamodb: Any, names: s.Names, clock: Callable[[], float] = time.time,
                 timeout_s: int = INSTANCE_TIMEOUT_S) -> None:
        self._ddb = dynamodb
        self._table = names.groups_table
        self._clock = clock
        self._timeout_s = timeout_s

    def _key(self, group: str, name: str) -> dict[str, Any]:
        validate_name("group", group)
        validate_name("instance", name)
        return {s.PK: {"S": s.group_pk(group)}, s.SK: {"S": s.instance_sk(name)}}

    def create(self, group: str, name: str, format: str, auto_offset_reset: str,
               request_timeout_ms: int = 1000) -> ConsumerInstance:
        """A new instance; raises ConsumerInstanceExists if a live one has the name."""
        instance = ConsumerInstance(group, name, format, auto_offset_reset, request_timeout_ms)
        now = int(self._clock())
        if not conditional(self._ddb.put_item, f"create consumer instance '{name}'",
                           TableName=self._table, Item=self._new_item(instance, now),
                           ConditionExpression="attribute_not_exists(#pk) OR #exp <= :now",
                           ExpressionAttributeNames={"#pk": s.PK, "#exp": s.TTL},
                           ExpressionAttributeValues={":now": {"N": str(now)}}):
            raise ConsumerInstanceExists(group, name)
        return instance

    def _new_item(self, instance: ConsumerInstance, now: int) -> dict[str, Any]:
        return {**self._key(instance.group, instance.name),
                A_FORMAT: {"S": instance.format}, A_RESET: {"S": instance.auto_offset_reset},
                A_REQUEST_TIMEOUT: {"N": str(instance.request_timeout_ms)},
                A_ASSIGNMENTS: {"L": []}, A_POSITIONS: {"M": {}},
                A_CREATED: {"N": str(now * 1000)}, s.TTL: {"N": str(now + self._timeout_s)}}

    def get(self, group: str, name: str) -> ConsumerInstance:
        """The instance's state (strongly consistent); raises ConsumerInstanceNotFound."""
        with translated(f"read consumer instance '{name}'"):
            item = self._ddb.get_item(TableName=self._table, Key=self._key(group, name),
                                      ConsistentRead=True).get("Item")
        if item is None or int(item[s.TTL]["N"]) <= int(self._clock()):
            raise ConsumerInstanceNotFound(group, name)
        return ConsumerInstance(
            group, name, item[A_FORMAT]["S"], item[A_RESET]["S"],
            int(item[A_REQUEST_TIMEOUT]["N"]),
            tuple(TopicPartition(a["M"]["topic"]["S"], int(a["M"]["partition"]["N"]))
                  for a in item[A_ASSIGNMENTS]["L"]),
            {_from_position_key(k): int(v["N"]) for k, v in item[A_POSITIONS]["M"].items()})

    def delete(self, group: str, name: str) -> None:
        """Remove the instance; raises ConsumerInstanceNotFound if it is not there."""
        if not conditional(self._ddb.delete_item, f"delete consumer instance '{name}'",
                           TableName=self._table, Key=self._key(group, name),
                           **self._live_condition()):
            raise ConsumerInstanceNotFound(group, name)

    def assign(self, group: str, name: str, partitions: Iterable[TopicPartition]
               ) -> ConsumerInstance:
        """Replace the manual assignment; positions of partitions kept stay, others go."""
        current = self.get(group, name)
        assigned = tuple(dict.fromkeys(partitions))
        kept = {tp: off for tp, off in current.positions.items() if tp in assigned}
        values = {":a": {"L": [{"M": {"topic": {"S": tp.topic},
                                      "partition": {"N": str(tp.partition)}}}
                               for tp in assigned]},
                  ":p": {"M": {_position_key(tp): {"N": str(o)} for tp, o in kept.items()}}}
        self._update(group, name, "#a = :a, #p = :p", {"#a": A_ASSIGNMENTS, "#p": A_POSITIONS},
                     values)
        return ConsumerInstance(group, name, current.format, current.auto_offset_reset,
                                current.request_timeout_ms, assigned, kept)

    def set_positions(self, group: str, name: str, positions: Mapping[TopicPartition, int]
                      ) -> None:
        """Set the next offset of some partitions (and keep the instance alive)."""
        names: dict[str, str] = {"#p": A_POSITIONS} if positions else {}
        values: dict[str, Any] = {}
        sets = []
        for i, (tp, offset) in enumerate(positions.items()):
            names[f"#k{i}"] = _position_key(tp)
            values[f":v{i}"] = {"N": str(offset)}
            sets.append(f"#p.#k{i} = :v{i}")
        self._update(group, name, ", ".join(sets), names, values)

    def _update(self, group: str, name: str, sets: str, names: dict[str, str],
                values: dict[str, Any]) -> None:
        """SET ``sets`` on a live instance and push its expiry forward."""
        live = self._live_condition()
        until = {":until": {"N": str(int(self._clock()) + self._timeout_s)}}
        if not conditional(
                self._ddb.update_item, f"update consumer instance '{name}'",
                TableName=self._table, Key=self._key(group, name),
                UpdateExpression=f"SET #exp = :until{', ' + sets if sets else ''}",
                ConditionExpression=live["ConditionExpression"],
                ExpressionAttributeNames={**live["ExpressionAttributeNames"], **names},
                ExpressionAttributeValues={**live["ExpressionAttributeValues"], **values,
                                           **until}):
            raise ConsumerInstanceNotFound(group, name)

    def _live_condition(self) -> dict[str, Any]:
        return {"ConditionExpression": "attribute_exists(#pk) AND #exp > :now",
                "ExpressionAttributeNames": {"#pk": s.PK, "#exp": s.TTL},
                "ExpressionAttributeValues": {":now": {"N": str(int(self._clock()))}}}
