"""The one place that names tables, keys and attributes.

The engine, the local platform and the CDK stack all read this module.

Tables
------
``{prefix}-topics`` (key ``pk``)
    ``topic#{name}``           topic metadata: topic_id, partitions, config, storage layout
    ``deleted#{topic_id}``     a deleted incarnation awaiting its purge (name, partitions, when)
    ``counter#producer_id``    producer id allocator
``{prefix}-log`` (key ``pk``, ``sk``; TTL attribute ``expires_at``)
    pk = ``{topic}/{topic_id}/{partition}``: the topic name first, so IAM's
    ``dynamodb:LeadingKeys`` can scope a role to topics; the id tells incarnations apart.
    ``b/{base_offset:020}``    one record batch, keyed by its BASE offset: bytes inline or a
                               pointer to an S3 blob, record count and size, the producer's id,
                               epoch and base sequence, and running values of the chain up to
                               it (max append time, max record timestamp, bytes appended);
                               TTL = running max append time + local.retention.ms;
                               a transactional batch also names its transaction (id, number)
    ``a/{producer_id}/{epoch}`` the first batch of an idempotent producer's epoch on the
                               partition was attempted (sorts before every batch key): the
                               tail offset then, below which no attempt of it can be
                               (written by appends that hold batches to their sequence)
    ``p``                      the partition item (sorts after every batch key): log start,
                               archive watermark and the running values there, ``safe_until``
                               (when the oldest unarchived batch can start to expire), seal
    ``s/{last_offset:020}``    one archived segment (the manifest): offset and time range,
                               size, object key, the offset ranges of aborted transactions

An append is ONE conditional PutItem of ``b/{next offset}`` (``attribute_not_exists``);
there is no head item. Writers that read the same tail compute the same key, so exactly
one wins; a writer with an older view targets a key that is taken. One Query from
``b/{offset}`` to ``p`` returns the batches from ``offset`` on and then the partition item.
Manifest items are keyed by their *last* offset, so a forward Query from ``s/{offset}``
starts with the segment holding ``offset``.

``{prefix}-groups`` (key ``pk``, ``sk``; TTL attribute ``expires_at``)
    pk = ``group#{group}``
    ``lease#{topic}#{partition:06}``   one partition's lease: owner, epoch, committed offset
    ``member#{member_id}``             a live member: heartbeat counter, subscription
    ``instance#{name}``                a REST Proxy v2 consumer instance's state
    pk = ``txn#{transactional_id}``
    ``id``                             the transactional id: producer id, epoch (bumped by
                                       every init_transactions), the next transaction
                                       number and the open one
    ``t/{number:012}``                 one transaction: epoch, status (open, committed,
                                       aborted), deadline, why it was aborted, and once
                                       committed the base offsets of its batches per
                                       ``{topic_id}/{partition}``

Bucket ``{bucket}``
    ``blobs/{topic}/{topic_id}/{partition}/{id}``              batches above the inline limit
    ``segments/{topic}/{topic_id}/{partition}/{base:020}.seg``  archived segments (immutable)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PK = "pk"
SK = "sk"
TTL = "expires_at"
LAYOUT = 2
"""The storage layout this engine reads and writes, stored with each topic."""

# topics table
TOPIC_PREFIX = "topic#"
DELETED_PREFIX = "deleted#"
PRODUCER_ID_COUNTER = "counter#producer_id"
A_NAME = "name"
A_TOPIC_ID = "topic_id"
A_PARTITIONS = "partitions"
A_CONFIG = "config"
A_CREATED = "created_ms"
A_COUNTER = "value"
A_LAYOUT = "layout"
A_OVERRIDES = "overrides"
"""The config keys set on the topic (the others are defaults)."""
A_CONFIG_VERSION = "config_version"
A_SEALED_AT = "sealed_ms"

# log table: batch items (short attribute names: every byte counts toward 1 KB write units)
BATCH_PREFIX = "b/"
A_DATA = "d"
"""The batch bytes (inline), base offset patched in."""
A_BLOB = "o"
"""The S3 key of the batch bytes, for batches above the inline limit."""
A_COUNT = "n"
A_SIZE = "z"
A_APPEND_MAX = "a"
"""Running max append time (ms) up to this batch: never decreases along the log."""
A_TS_MAX = "m"
"""Running max record timestamp (ms) up to this batch."""
A_BYTES = "c"
"""Bytes appended to the partition up to and including this batch (cumulative)."""
A_PRODUCER = "i"
A_EPOCH = "e"
A_SEQUENCE = "q"
A_TXN = "x"
"""A transactional batch: its transactional id (with A_TXN_NUMBER, its transaction)."""
A_TXN_NUMBER = "xn"
SEAL = "sealed"
"""A batch item holding this attribute (and no batch) seals a deleted incarnation."""

# log table: first-batch claims
CLAIM_PREFIX = "a/"
A_MARK = "mk"
"""The tail offset when an attempt of the producer epoch's first batch began."""
CLAIM_SECONDS = 24 * 3600
"""How long a claim is kept (DynamoDB's TTL): far past any retry of the batch."""


# log table: the partition item
STATE_SK = "p"
A_LOG_START = "ls"
A_ARCHIVED = "ar"
"""The archive watermark: offsets below it are in S3 segments."""
A_ARCHIVED_BYTES = "ab"
A_ARCHIVED_TS_MAX = "am"
A_ARCHIVED_APPEND_MAX = "aa"
A_SAFE_UNTIL = "su"
"""Until when (ms) every unarchived batch is certain to be present: writers refuse to
trust a tail they cannot vouch for after it."""

# log table: manifest items (one per archived segment)
SEGMENT_SK_PREFIX = "s/"
A_BASE = "base_offset"
A_LAST = "last_offset"
A_MAX_TS = "max_timestamp"
A_MIN_TS = "min_timestamp"
A_KEY = "key"
A_INDEX_ENTRIES = "index_entries"
A_SEG_SIZE = "size"
A_SKIPPED = "skipped"
"""[base, end) offset ranges of batches read_committed readers skip (aborted transactions)."""

# groups table
GROUP_PREFIX = "group#"
LEASE_PREFIX = "lease#"
MEMBER_PREFIX = "member#"
INSTANCE_PREFIX = "instance#"
TXN_PREFIX = "txn#"
TXN_ID_SK = "id"
TXN_SK_PREFIX = "t/"

BLOB_PREFIX = "blobs/"
SEGMENT_PREFIX = "segments/"
OFFSET_WIDTH = 20
MAX_OFFSET = 10**OFFSET_WIDTH - 1


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


def deleted_key(topic_id: str) -> dict[str, Any]:
    return {PK: {"S": DELETED_PREFIX + topic_id}}


@dataclass(frozen=True)
class PartitionRef:
    """One partition of one topic incarnation: every key it owns in DynamoDB and S3."""

    topic: str
    topic_id: str
    partition: int

    @property
    def pk(self) -> str:
        return f"{self.topic}/{self.topic_id}/{self.partition}"

    def key(self, sk: str) -> dict[str, Any]:
        return {PK: {"S": self.pk}, SK: {"S": sk}}

    @property
    def state_key(self) -> dict[str, Any]:
        return self.key(STATE_SK)

    def batch_key(self, base_offset: int) -> dict[str, Any]:
        return self.key(batch_sk(base_offset))

    @property
    def blob_prefix(self) -> str:
        return f"{topic_prefix(BLOB_PREFIX, self.topic, self.topic_id)}{self.partition}/"

    def blob_key(self, name: str) -> str:
        return f"{self.blob_prefix}{name}"

    @property
    def segment_prefix(self) -> str:
        return f"{topic_prefix(SEGMENT_PREFIX, self.topic, self.topic_id)}{self.partition}/"

    def segment_key(self, base_offset: int) -> str:
        return f"{self.segment_prefix}{base_offset:0{OFFSET_WIDTH}d}.seg"


def topic_prefix(root: str, topic: str, topic_id: str) -> str:
    """``blobs/{topic}/{topic_id}/`` or ``segments/...``: every object of an incarnation."""
    return f"{root}{topic}/{topic_id}/"


def batch_sk(base_offset: int) -> str:
    return f"{BATCH_PREFIX}{base_offset:0{OFFSET_WIDTH}d}"


def segment_sk(last_offset: int) -> str:
    return f"{SEGMENT_SK_PREFIX}{last_offset:0{OFFSET_WIDTH}d}"


def claim_sk(producer_id: int, epoch: int) -> str:
    return f"{CLAIM_PREFIX}{producer_id}/{epoch}"


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


def txn_pk(transactional_id: str) -> str:
    return f"{TXN_PREFIX}{transactional_id}"


def txn_sk(number: int) -> str:
    return f"{TXN_SK_PREFIX}{number:012d}"


def txn_pk_pattern(transactional_id_pattern: str) -> str:
    """LeadingKeys pattern of the groups-table items of matching transactional ids."""
    return f"{TXN_PREFIX}{transactional_id_pattern}"


def lease_sk(topic: str, partition: int) -> str:
    return f"{LEASE_PREFIX}{topic}#{partition:06d}"


def member_sk(member_id: str) -> str:
    return f"{MEMBER_PREFIX}{member_id}"


def instance_sk(name: str) -> str:
    return f"{INSTANCE_PREFIX}{name}"


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


# ---- Kafka classic consumer groups (the Kafka gateway: streamlet.kafka) ------------------
# One item per group beside the SDK's member and lease items, holding the classic group
# protocol's state (JoinGroup/SyncGroup) as JSON, compare-and-set on a version; member
# heartbeats in a map updated without that version. Committed offsets go to the group's
# lease items (A_COMMITTED...), so every tool sees one set of offsets.

CLASSIC_SK = "kafka#classic"
A_CLASSIC = "classic"
A_CLASSIC_VERSION = "classic_version"
A_GENERATION = "generation"
A_BEATS = "beats"
A_COMMITTED = "committed"
A_COMMIT_METADATA = "metadata"
A_COMMITTED_MS = "committed_ms"
A_LEASE_EPOCH = "epoch"
