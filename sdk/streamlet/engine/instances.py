"""REST Proxy v2 consumer instances: their state lives in the groups table, never in memory.

Any Lambda invocation may serve an instance's next request, so the format, the manual
assignment or the subscription, the positions and (for a subscription) the leases held
and the liveness observations are one item, ``group#{group}`` / ``instance#{name}``,
that every request reads and updates (group membership: ``streamlet.groups.subscriptions``).
Idle instances expire: each write pushes ``expires_at`` (DynamoDB's TTL attribute)
forward, and reads treat an expired item as gone, since TTL deletes lazily.

An instance belongs to the IAM principal that created it: the HTTP handlers use a store
bound to the caller (:meth:`ConsumerInstances.bound`), which refuses any request about
another principal's instance with AccessDenied and writes nothing.

Example:
    >>> instances = ConsumerInstances(dynamodb, Names())           # doctest: +SKIP
    >>> instances.create("billing", "c1", "binary", "earliest")    # doctest: +SKIP
    >>> instances.assign("billing", "c1", [TopicPartition("orders", 0)])  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..clock import SYSTEM, Clock
from ..errors import (
    AccessDenied,
    ConsumerIllegalState,
    ConsumerInstanceExists,
    ConsumerInstanceNotFound,
    InvalidRequest,
)
from ..groups.instance import DEFAULT_SESSION_MS, ConsumerInstance
from ..groups.leases import validate_group
from ..records import TopicPartition
from . import schema
from .aws import conditional, translated

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INSTANCE_TIMEOUT_S = 300
"""REST Proxy's ``consumer.instance.timeout.ms`` default: 5 minutes idle."""
MAX_NAME_LENGTH = 200
A_FORMAT = "format"
A_RESET = "auto_offset_reset"
A_REQUEST_TIMEOUT = "request_timeout_ms"
A_ASSIGNMENTS = "assignments"
A_POSITIONS = "positions"
A_CREATED = "created_ms"
A_MEMBER = "member_id"
A_SESSION = "session_ms"
A_TOPICS = "topics"
A_PATTERN = "topic_pattern"
A_OWNED = "owned"
A_SEEN = "seen"
def _position_key(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


def _from_position_key(key: str) -> TopicPartition:
    topic, _, partition = key.rpartition("/")
    return TopicPartition(topic, int(partition))


def _numbers(values: Mapping[TopicPartition, int]) -> dict[str, Any]:
    return {"M": {_position_key(tp): {"N": str(v)} for tp, v in values.items()}}


def _from_numbers(item: Mapping[str, Any], name: str) -> dict[TopicPartition, int]:
    return {_from_position_key(k): int(v["N"])
            for k, v in item.get(name, {}).get("M", {}).items()}


def _seen_item(seen: Mapping[str, tuple[int, float]]) -> dict[str, Any]:
    return {"M": {m: {"L": [{"N": str(beat)}, {"N": repr(at)}]}
                  for m, (beat, at) in seen.items()}}


def _from_seen(item: Mapping[str, Any]) -> dict[str, tuple[int, float]]:
    return {m: (int(v["L"][0]["N"]), float(v["L"][1]["N"]))
            for m, v in item.get(A_SEEN, {}).get("M", {}).items()}


def _state(group: str, name: str, item: Mapping[str, Any]) -> ConsumerInstance:
    pattern = item.get(A_PATTERN, {}).get("S")
    return ConsumerInstance(
        group, name, item[A_FORMAT]["S"], item[A_RESET]["S"],
        int(item[A_REQUEST_TIMEOUT]["N"]),
        tuple(TopicPartition(a["M"]["topic"]["S"], int(a["M"]["partition"]["N"]))
              for a in item[A_ASSIGNMENTS]["L"]),
        _from_numbers(item, A_POSITIONS), item.get(A_MEMBER, {}).get("S", name),
        int(item.get(A_SESSION, {}).get("N", DEFAULT_SESSION_MS)),
        tuple(t["S"] for t in item.get(A_TOPICS, {}).get("L", [])), pattern,
        _from_numbers(item, A_OWNED), _from_seen(item),
        item.get(schema.A_PRINCIPAL, {}).get("S", ""))


def validate_name(kind: str, value: str) -> str:
    """Instance names: 1..200 printable characters (group ids: ``validate_group``)."""
    if not 1 <= len(value) <= MAX_NAME_LENGTH or not value.isprintable():
        raise InvalidRequest(f"The {kind} name must be 1 to {MAX_NAME_LENGTH} printable "
                             "characters.")
    return value


class ConsumerInstances:
    """Creates, reads, updates and deletes consumer instance items."""

    def __init__(self, dynamodb: DynamoDBClient, names: schema.Names, clock: Clock = SYSTEM,
                 timeout_s: int = INSTANCE_TIMEOUT_S) -> None:
        self._ddb = dynamodb
        self._table = names.groups_table
        self._clock = clock
        self._timeout_s = timeout_s
        self._principal: str | None = None

    def bound(self, principal: str) -> ConsumerInstances:
        """This store acting for ``principal``: it creates instances that record it and
        refuses (AccessDenied) to read, update or delete another principal's."""
        store = copy.copy(self)
        store._principal = principal
        return store

    def _key(self, group: str, name: str) -> dict[str, Any]:
        validate_group(group)
        validate_name("instance", name)
        return {schema.PK: {"S": schema.group_pk(group)},
                schema.SK: {"S": schema.instance_sk(name)}}

    def create(self, group: str, name: str, format: str, auto_offset_reset: str,
               request_timeout_ms: int = 1000, session_ms: int = DEFAULT_SESSION_MS
               ) -> ConsumerInstance:
        """A new instance; raises ConsumerInstanceExists if a live one has the name.

        Its group member id, should it subscribe, is ``{name}-{12 hex digits}``: unique
        per incarnation, so a recreated instance never inherits an old one's leases.
        """
        instance = ConsumerInstance(group, name, format, auto_offset_reset, request_timeout_ms,
                                    member_id=f"{name}-{uuid.uuid4().hex[:12]}",
                                    session_ms=session_ms, principal=self._principal or "")
        now = int(self._clock.time())
        if not conditional(self._ddb.put_item, f"create consumer instance '{name}'",
                           TableName=self._table, Item=self._new_item(instance, now),
                           ConditionExpression="attribute_not_exists(#pk) OR #exp <= :now",
                           ExpressionAttributeNames={"#pk": schema.PK, "#exp": schema.TTL},
                           ExpressionAttributeValues={":now": {"N": str(now)}}):
            raise ConsumerInstanceExists(group, name)
        return instance

    def _new_item(self, instance: ConsumerInstance, now: int) -> dict[str, Any]:
        return {**self._key(instance.group, instance.name),
                A_FORMAT: {"S": instance.format}, A_RESET: {"S": instance.auto_offset_reset},
                A_REQUEST_TIMEOUT: {"N": str(instance.request_timeout_ms)},
                A_ASSIGNMENTS: {"L": []}, A_POSITIONS: {"M": {}},
                A_MEMBER: {"S": instance.member_id}, A_SESSION: {"N": str(instance.session_ms)},
                A_CREATED: {"N": str(now * 1000)}, schema.TTL: {"N": str(now + self._timeout_s)},
                **({schema.A_PRINCIPAL: {"S": instance.principal}} if instance.principal
                   else {})}

    def get(self, group: str, name: str) -> ConsumerInstance:
        """The instance's state (strongly consistent); raises ConsumerInstanceNotFound."""
        with translated(f"read consumer instance '{name}'"):
            item = self._ddb.get_item(TableName=self._table, Key=self._key(group, name),
                                      ConsistentRead=True).get("Item")
        if item is None or int(item[schema.TTL]["N"]) <= int(self._clock.time()):
            raise ConsumerInstanceNotFound(group, name)
        state = _state(group, name, item)
        if self._principal is not None and state.principal != self._principal:
            raise AccessDenied(f"Consumer instance '{name}' of group '{group}' belongs to "
                               "another principal; nothing was changed.")
        return state

    def delete(self, group: str, name: str) -> None:
        """Remove the instance; raises ConsumerInstanceNotFound if it is not there."""
        if not conditional(self._ddb.delete_item, f"delete consumer instance '{name}'",
                           TableName=self._table, Key=self._key(group, name),
                           **self._live_condition()):
            raise self._refusal(group, name)

    def assign(self, group: str, name: str, partitions: Iterable[TopicPartition]
               ) -> ConsumerInstance:
        """Replace the manual assignment; positions of partitions kept stay, others go.

        Raises ConsumerIllegalState while the instance is subscribed.
        """
        current = self.get(group, name)
        if current.subscribed:
            raise ConsumerIllegalState(f"Consumer instance '{name}' is subscribed: "
                                       "subscription and manual assignment are mutually "
                                       "exclusive (DELETE the subscription first).")
        assigned = tuple(dict.fromkeys(partitions))
        kept = {tp: off for tp, off in current.positions.items() if tp in assigned}
        values = {":a": {"L": [{"M": {"topic": {"S": tp.topic},
                                      "partition": {"N": str(tp.partition)}}}
                               for tp in assigned]},
                  ":p": {"M": {_position_key(tp): {"N": str(o)} for tp, o in kept.items()}}}
        self._update(group, name, "#a = :a, #p = :p", {"#a": A_ASSIGNMENTS, "#p": A_POSITIONS},
                     values)
        return replace(current, assignments=assigned, positions=kept)

    def subscribe(self, group: str, name: str, topics: Iterable[str], pattern: str | None
                  ) -> None:
        """Store the subscription (a topic list or a pattern); leases stay as they are."""
        names: dict[str, str] = {"#t": A_TOPICS, "#pat": A_PATTERN}
        values: dict[str, Any] = {":t": {"L": [{"S": t} for t in topics]}}
        sets = "#t = :t"
        if pattern is not None:
            values[":pat"] = {"S": pattern}
            sets += ", #pat = :pat"
        self._update(group, name, sets, names, values,
                     remove="" if pattern is not None else "#pat")

    def save_membership(self, state: ConsumerInstance) -> None:
        """Write a subscribed instance's owned leases, positions and liveness memory."""
        self._update(state.group, state.name, "#o = :o, #p = :p, #seen = :seen",
                     {"#o": A_OWNED, "#p": A_POSITIONS, "#seen": A_SEEN},
                     {":o": _numbers(state.owned), ":p": _numbers(state.positions),
                      ":seen": _seen_item(state.seen)})

    def unsubscribe(self, group: str, name: str) -> None:
        """Forget the subscription or manual assignment, leases, positions, observations."""
        self._update(group, name, "#t = :l, #a = :l, #o = :e, #p = :e, #seen = :e",
                     {"#t": A_TOPICS, "#a": A_ASSIGNMENTS, "#o": A_OWNED, "#p": A_POSITIONS,
                      "#seen": A_SEEN, "#pat": A_PATTERN}, {":l": {"L": []}, ":e": {"M": {}}},
                     remove="#pat")

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
                values: dict[str, Any], remove: str = "") -> None:
        """SET ``sets`` (and REMOVE ``remove``) on a live instance; push its expiry forward."""
        live = self._live_condition()
        until = {":until": {"N": str(int(self._clock.time()) + self._timeout_s)}}
        if not conditional(
                self._ddb.update_item, f"update consumer instance '{name}'",
                TableName=self._table, Key=self._key(group, name),
                UpdateExpression=f"SET #exp = :until{', ' + sets if sets else ''}"
                                 f"{' REMOVE ' + remove if remove else ''}",
                ConditionExpression=live["ConditionExpression"],
                ExpressionAttributeNames={**live["ExpressionAttributeNames"], **names},
                ExpressionAttributeValues={**live["ExpressionAttributeValues"], **values,
                                           **until}):
            raise self._refusal(group, name)

    def _refusal(self, group: str, name: str) -> Exception:
        """Why a conditional write on a live instance failed: gone, or another's."""
        if self._principal is not None:
            self.get(group, name)  # AccessDenied if another principal's
        return ConsumerInstanceNotFound(group, name)

    def _live_condition(self) -> dict[str, Any]:
        """A live instance (bound: of this principal; :meth:`get` told others apart)."""
        expression = "attribute_exists(#pk) AND #exp > :now"
        names = {"#pk": schema.PK, "#exp": schema.TTL}
        values: dict[str, Any] = {":now": {"N": str(int(self._clock.time()))}}
        if self._principal is not None:
            expression += " AND #principal = :principal"
            names["#principal"] = schema.A_PRINCIPAL
            values[":principal"] = {"S": self._principal}
        return {"ConditionExpression": expression, "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values}
