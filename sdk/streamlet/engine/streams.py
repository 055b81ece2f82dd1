"""DynamoDB Streams on Streamlet's tables, read as *signals*, never as data.

Triggers (``streamlet.triggers``) are woken by two streams:

- the **log table's** (``KEYS_ONLY``): a new batch item ``b/{base offset}`` under
  ``{topic}/{topic id}/{partition}`` means that partition has records past what was
  there; the dispatcher then reads from the group's committed offset through the normal
  fetch path. Nothing else in the record is trusted: REMOVE records (TTL deletes them late
  and in any order; their ``userIdentity`` is the DynamoDB service) and the partition and
  manifest items are not signals, and the order of records across items means nothing.
- the **groups table's** (``NEW_IMAGE``): ``reset-offsets`` rewrites a lease with no owner
  and empty metadata (what no dispatcher commit writes), which re-drives that group's
  partition from its new committed offset.

:func:`log_filter` and :func:`redrive_filter` are the same rules as Lambda event filter
patterns, so on AWS only the records that matter invoke the dispatcher (and cost nothing
otherwise); the dispatcher applies :func:`signal` and :func:`redrive` again regardless.

Example:
    >>> record = {"eventName": "INSERT", "dynamodb": {"Keys": {
    ...     "pk": {"S": "orders/4f2a/3"}, "sk": {"S": "b/00000000000000000120"}}}}
    >>> signal(record)
    Signal(topic='orders', partition=3, base_offset=120)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import schema

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL_PRINCIPAL = "dynamodb.amazonaws.com"
View = Literal["KEYS_ONLY", "NEW_IMAGE"]
LOG_VIEW: View = "KEYS_ONLY"
GROUPS_VIEW: View = "NEW_IMAGE"
_OWNER = "owner"  # the lease attributes GroupStore writes (engine/groups.py)
_METADATA = "metadata"
_COMMITTED = "committed"


@dataclass(frozen=True)
class Signal:
    """A partition has a batch starting at ``base_offset`` (or later ones)."""

    topic: str
    partition: int
    base_offset: int


@dataclass(frozen=True)
class Redrive:
    """A group's committed offset for a partition was reset: deliver from there."""

    group: str
    topic: str
    partition: int


def _keys(record: Mapping[str, Any]) -> tuple[str, str] | None:
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    pk, sk = keys.get(schema.PK, {}).get("S"), keys.get(schema.SK, {}).get("S")
    return (pk, sk) if isinstance(pk, str) and isinstance(sk, str) else None


def is_ttl_delete(record: Mapping[str, Any]) -> bool:
    """A deletion by DynamoDB's TTL (it arrives late, in any order)."""
    identity = record.get("userIdentity") or {}
    return identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL


def signal(record: Mapping[str, Any]) -> Signal | None:
    """The partition a log-table stream record says has new batches, or None."""
    if record.get("eventName") != "INSERT" or is_ttl_delete(record):
        return None
    keys = _keys(record)
    if keys is None or not keys[1].startswith(schema.BATCH_PREFIX):
        return None
    parts = keys[0].rsplit("/", 2)
    offset = keys[1][len(schema.BATCH_PREFIX):]
    if len(parts) != 3 or not parts[2].isdigit() or not offset.isdigit():
        return None
    return Signal(parts[0], int(parts[2]), int(offset))


def redrive(record: Mapping[str, Any]) -> Redrive | None:
    """The partition a groups-table stream record says was reset, or None."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    keys = _keys(record)
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    if keys is None or not keys[0].startswith(schema.GROUP_PREFIX) or \
            not keys[1].startswith(schema.LEASE_PREFIX):
        return None
    if _OWNER in image or image.get(_METADATA, {}).get("S") != "" or _COMMITTED not in image:
        return None
    topic, _, partition = keys[1][len(schema.LEASE_PREFIX):].rpartition("#")
    if not topic or not partition.isdigit():
        return None
    return Redrive(keys[0][len(schema.GROUP_PREFIX):], topic, int(partition))


def log_filter(topics: Iterable[str]) -> dict[str, Any]:
    """The Lambda event filter pattern of :func:`signal` for these topics."""
    return {"eventName": ["INSERT"], "dynamodb": {"Keys": {
        schema.SK: {"S": [{"prefix": schema.BATCH_PREFIX}]},
        schema.PK: {"S": [{"prefix": f"{t}/"} for t in sorted(set(topics))]}}}}


def redrive_filter(groups: Iterable[str]) -> dict[str, Any]:
    """The Lambda event filter pattern of :func:`redrive` for these groups."""
    return {"eventName": ["INSERT", "MODIFY"], "dynamodb": {
        "Keys": {schema.PK: {"S": [schema.group_pk(g) for g in sorted(set(groups))]},
                 schema.SK: {"S": [{"prefix": schema.LEASE_PREFIX}]}},
        "NewImage": {_METADATA: {"S": [""]}, _OWNER: {"S": [{"exists": False}]}}}}


def enable_streams(dynamodb: DynamoDBClient, names: schema.Names) -> tuple[str, str]:
    """Turn on both streams (the local platform; CDK does it on AWS); their ARNs."""
    arns = []
    views: tuple[tuple[str, View], ...] = ((names.log_table, LOG_VIEW),
                                           (names.groups_table, GROUPS_VIEW))
    for table, view in views:
        found: Any = dynamodb.describe_table(TableName=table)["Table"]
        spec: Any = found.get("StreamSpecification") or {}
        if not spec.get("StreamEnabled"):
            found = dynamodb.update_table(
                TableName=table, StreamSpecification={"StreamEnabled": True,
                                                      "StreamViewType": view},
            )["TableDescription"]
        elif view == GROUPS_VIEW and spec.get("StreamViewType") not in (
                GROUPS_VIEW, "NEW_AND_OLD_IMAGES"):
            raise ValueError(f"Table {table} has a {spec.get('StreamViewType')} stream; "
                             f"triggers need {view}.")
        arns.append(str(found["LatestStreamArn"]))
    return arns[0], arns[1]
