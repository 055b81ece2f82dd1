"""The one place that names tables, keys and attributes.

The engine, the local platform and the CDK stack all read this module.

Tables
------
``{prefix}-topics`` (key ``pk``)
    ``topic#{name}``           topic metadata: topic_id, partitions, config
    ``counter#producer_id``    producer id allocator
``{prefix}-log`` (key ``pk``, ``sk``; TTL attribute ``expires_at``)
    pk = ``{topic_id}/{partition}``
    ``head``                   next_offset (high watermark), log_start_offset, max_timestamp,
                               bytes appended, archived_offset (archive watermark) and bytes
    ``b/{last_offset:020}``    one record batch: bytes inline, or a pointer to an S3 blob;
                               append time; TTL = append + local.retention.ms
    ``s/{last_offset:020}``    one archived segment (the manifest): offset and time range
                               (min_timestamp, max_timestamp), size, object key
    ``p/{producer_id}``        idempotent producer state: epoch + last 5 batches

Batch and segment items are keyed by their *last* offset, so one forward Query from
``b/{offset}`` (or ``s/{offset}``) starts with the batch (segment) that contains ``offset``.
Offsets below ``archived_offset`` are read from segments, the rest from batch items.

``{prefix}-groups`` (key ``pk``, ``sk``; TTL attribute ``expires_at``)
    pk = ``group#{group}``
    ``lease#{topic}#{partition:06}``   one partition's lease: owner, epoch, committed offset
    ``member#{member_id}``             a live member: heartbeat counter, subscription
    ``instance#{name}``                a REST Proxy v2 consumer instance's state

Bucket ``{bucket}``
    ``blobs/{topic_id}/{partition}/{id}``              batches above the topic's inline limit
    ``segments/{topic_id}/{partition}/{base:020}.seg``  archived segments (immutable)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PK = "pk"
SK = "sk"
TTL = "expires_at"

# topics table
TOPIC_PREFIX = "topic#"
PRODUCER_ID_COUNTER = "counter#producer_id"
A_NAME = "name"
A_TOPIC_ID = "topic_id"
A_PARTITIONS = "partitions"
A_CONFIG = "config"
A_CREATED = "created_ms"
A_COUNTER = "value"

# log table
HEAD_SK = "head"
BATCH_PREFIX = "b/"
PRODUCER_PREFIX = "p/"
A_NEXT_OFFSET = "next_offset"
A_LOG_START = "log_start_offset"
A_MAX_TS = "max_timestamp"
A_BASE = "base_offset"
A_COUNT = "record_count"
A_SIZE = "size"
A_DATA = "data"
A_BLOB = "blob"
A_APPEND_TIME = "append_ms"
A_EPOCH = "epoch"
A_BATCHES = "batches"
A_UPDATED = "updated_ms"
A_BYTES = "bytes_appended"
A_ARCHIVED = "archived_offset"
A_ARCHIVED_BYTES = "archived_bytes"
SEGMENT_SK_PREFIX = "s/"
A_LAST = "last_offset"
A_MIN_TS = "min_timestamp"
A_KEY = "key"
A_INDEX_ENTRIES = "index_entries"

# groups table
GROUP_PREFIX = "group#"
LEASE_PREFIX = "lease#"
MEMBER_PREFIX = "member#"
INSTANCE_PREFIX = "instance#"

BLOB_PREFIX = "blobs/"
SEGMENT_PREFIX = "segments/"
OFFSET_WIDTH = 20


@dataclass(frozen=True)
class Names:
    """Physical names of one Streamlet deployment's tables and bucket."""

    prefix: str = "streamlet"
    bucket: str = "streamlet-data"

    @property
    def topics_table(self) -> str:
        return f"{self.prefix}-topics"

    @property
    def log_table(self) -> str:
        return f"{self.prefix}-log"

    @property
    def groups_table(self) -> str:
        return f"{self.prefix}-groups"


def topic_key(name: str) -> dict[str, Any]:
    return {PK: {"S": TOPIC_PREFIX + name}}


def partition_pk(topic_id: str, partition: int) -> str:
    return f"{topic_id}/{partition}"


def head_key(topic_id: str, partition: int) -> dict[str, Any]:
    return {PK: {"S": partition_pk(topic_id, partition)}, SK: {"S": HEAD_SK}}


def batch_sk(last_offset: int) -> str:
    return f"{BATCH_PREFIX}{last_offset:0{OFFSET_WIDTH}d}"


def segment_sk(last_offset: int) -> str:
    return f"{SEGMENT_SK_PREFIX}{last_offset:0{OFFSET_WIDTH}d}"


def producer_key(topic_id: str, partition: int, producer_id: int) -> dict[str, Any]:
    return {
        PK: {"S": partition_pk(topic_id, partition)},
        SK: {"S": f"{PRODUCER_PREFIX}{producer_id}"},
    }


# ---- scopes for IAM (dynamodb:LeadingKeys, S3 object ARNs) ------------------------------
# The storage layout puts the topic name (the group id) first in every key that belongs to
# a topic (a group), so an IAM pattern over names scopes a role to those topics. These are
# what grant policies use; `pattern` is a name pattern such as "orders.*" or "orders".


def log_pk_pattern(topic_pattern: str) -> str:
    """LeadingKeys pattern of the log-table items of topics matching ``topic_pattern``
    (partition keys are ``{topic}/{topic_id}/{partition}``)."""
    return f"{topic_pattern}/*"


def topic_item_pattern(topic_pattern: str) -> str:
    """LeadingKeys pattern of the topics-table items of those topics."""
    return f"{TOPIC_PREFIX}{topic_pattern}"


def group_pk_pattern(group_pattern: str) -> str:
    """LeadingKeys pattern of the groups-table items of groups matching ``group_pattern``."""
    return f"{GROUP_PREFIX}{group_pattern}"


def object_patterns(topic_pattern: str) -> tuple[str, str]:
    """S3 key patterns of those topics' blobs and segments
    (``blobs/{topic}/{topic_id}/{partition}/...``, ``segments/{topic}/...``)."""
    return f"{BLOB_PREFIX}{topic_pattern}/*", f"{SEGMENT_PREFIX}{topic_pattern}/*"


def group_pk(group: str) -> str:
    return f"{GROUP_PREFIX}{group}"


def lease_sk(topic: str, partition: int) -> str:
    return f"{LEASE_PREFIX}{topic}#{partition:06d}"


def member_sk(member_id: str) -> str:
    return f"{MEMBER_PREFIX}{member_id}"


def instance_sk(name: str) -> str:
    return f"{INSTANCE_PREFIX}{name}"


def blob_key(topic_id: str, partition: int, name: str) -> str:
    return f"{blob_prefix(topic_id, partition)}{name}"


def blob_prefix(topic_id: str, partition: int | None = None) -> str:
    return f"{BLOB_PREFIX}{topic_id}/" + ("" if partition is None else f"{partition}/")


def segment_key(topic_id: str, partition: int, base_offset: int) -> str:
    return f"{segment_prefix(topic_id, partition)}{base_offset:0{OFFSET_WIDTH}d}.seg"


def segment_prefix(topic_id: str, partition: int | None = None) -> str:
    return f"{SEGMENT_PREFIX}{topic_id}/" + ("" if partition is None else f"{partition}/")


@dataclass(frozen=True)
class TableSpec:
    """Key schema of one table: what CreateTable and the CDK stack both build from."""

    name: str
    hash_key: str
    range_key: str | None = None
    ttl_attribute: str | None = None

    def create_table_kwargs(self) -> dict[str, Any]:
        keys = [(self.hash_key, "HASH")] + ([(self.range_key, "RANGE")] if self.range_key else [])
        return {
            "TableName": self.name,
            "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n, _ in keys],
            "BillingMode": "PAY_PER_REQUEST",
        }


def table_specs(names: Names) -> list[TableSpec]:
    return [
        TableSpec(names.topics_table, PK),
        TableSpec(names.log_table, PK, SK, ttl_attribute=TTL),
        TableSpec(names.groups_table, PK, SK, ttl_attribute=TTL),
    ]


# ---- identity binding and state bounds (hardening) --------------------------------------
# Member, lease and REST v2 instance items name the IAM principal that created (or took)
# them; the HTTP handlers' stores refuse another principal's heartbeats, commits, releases
# and instance requests (see GroupStore.bound and ConsumerInstances.bound).

A_PRINCIPAL = "principal"
