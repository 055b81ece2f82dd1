"""Request bodies of the HTTP API (pydantic): what Powertools validates and documents.

Shapes follow Confluent REST Proxy v3 (admin, produce) and v2 (consumer instances).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from streamlet.groups.instance import DEFAULT_SESSION_MS

INT64_MAX = 2**63 - 1
# StrictInt everywhere a body carries a number: JSON true is not 1 ("partition_id": true).
Offset = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]
PartitionId = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]
ConfigValue = StrictStr | StrictInt | StrictBool | float | None



# ---- v3 administration ----------------------------------------------------------------


class ConfigEntry(BaseModel):
    """One topic config, e.g. ``{"name": "retention.ms", "value": "86400000"}``."""

    name: StrictStr
    value: ConfigValue = None


class CreateTopic(BaseModel):
    """``POST /v3/clusters/{cluster_id}/topics``."""

    topic_name: StrictStr
    partitions_count: StrictInt = 1
    replication_factor: StrictInt | None = None
    """Accepted for compatibility and ignored: DynamoDB and S3 replicate across zones."""
    configs: list[ConfigEntry] = Field(default_factory=list, max_length=100)
    validate_only: StrictBool = False


class UpdateTopic(BaseModel):
    """``PATCH /v3/clusters/{cluster_id}/topics/{topic}``: grow the partition count."""

    partitions_count: StrictInt


# ---- v3 produce -----------------------------------------------------------------------


class RecordData(BaseModel):
    """A key or value: ``{"type": "JSON"|"BINARY"|"STRING", "data": ...}`` (BINARY is base64)."""

    type: Literal["BINARY", "JSON", "STRING", "AVRO", "JSONSCHEMA", "PROTOBUF"] = "JSON"
    data: Any = None


class RecordHeader(BaseModel):
    """A record header; ``value`` is base64 (or null)."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=1024)]
    value: StrictStr | None = None


class ProduceRecord(BaseModel):
    """``POST /v3/clusters/{cluster_id}/topics/{topic}/records``: one record."""

    partition_id: PartitionId | None = None
    headers: list[RecordHeader] = Field(default_factory=list, max_length=1000)
    key: RecordData | None = None
    value: RecordData | None = None
    timestamp: datetime | None = None


class BatchEntry(ProduceRecord):
    """One entry of ``records:batch``, named by ``id``."""

    id: Annotated[StrictStr, Field(min_length=1, max_length=80)]


class ProduceBatch(BaseModel):
    """``POST /v3/clusters/{cluster_id}/topics/{topic}/records:batch``."""

    entries: list[BatchEntry] = Field(min_length=1, max_length=1000)


# ---- v2 consumer instances ------------------------------------------------------------


class CreateInstance(BaseModel):
    """``POST /consumers/{group}``: REST Proxy v2's consumer instance settings."""

    model_config = ConfigDict(populate_by_name=True)

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    format: Literal["binary", "json"] = "binary"
    auto_offset_reset: Literal["earliest", "latest", "none"] = Field(
        "latest", alias="auto.offset.reset")
    request_timeout_ms: Annotated[int, Field(ge=0, le=20_000)] = Field(
        1000, alias="consumer.request.timeout.ms")
    session_timeout_ms: Annotated[int, Field(ge=1000, le=300_000)] = Field(
        DEFAULT_SESSION_MS, alias="session.timeout.ms")
    """Streamlet's extension: the group session of a subscribed instance (30 s default)."""

    @field_validator("request_timeout_ms", "session_timeout_ms", mode="before")
    @classmethod
    def _not_boolean(cls, value: Any) -> Any:
        """REST Proxy's configs travel as strings ("6000") or numbers, never booleans."""
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        return value


class TopicPartitionRef(BaseModel):
    """``{"topic": "orders", "partition": 0}``."""

    topic: StrictStr
    partition: PartitionId


class Partitions(BaseModel):
    """A list of partitions (assignments, positions/beginning, positions/end)."""

    partitions: list[TopicPartitionRef] = Field(max_length=1000)


class OffsetPosition(TopicPartitionRef):
    """Seek ``topic``/``partition`` to ``offset``."""

    offset: Offset
    metadata: str | None = None


class TimestampPosition(TopicPartitionRef):
    """Seek ``topic``/``partition`` to the first record at or after ``timestamp``."""

    timestamp: datetime
    metadata: str | None = None


class Positions(BaseModel):
    """``POST .../positions``: ``offsets`` or ``timestamps`` (seek by time)."""

    offsets: list[OffsetPosition] = Field(default_factory=list, max_length=1000)
    timestamps: list[TimestampPosition] = Field(default_factory=list, max_length=1000)


class Subscription(BaseModel):
    """``POST .../subscription``: ``{"topics": [...]}`` or ``{"topic_pattern": "regex"}``."""

    topics: list[Annotated[StrictStr, Field(max_length=249)]] | None = Field(
        None, min_length=1, max_length=1000)
    topic_pattern: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Subscription:
        if (self.topics is None) == (self.topic_pattern is None):
            raise ValueError("give exactly one of topics (a non-empty list) or topic_pattern")
        return self


class CommitOffset(TopicPartitionRef):
    """Commit ``offset`` as the last record processed: the group resumes at ``offset + 1``."""

    offset: Annotated[StrictInt, Field(ge=0, le=INT64_MAX - 1)]
    metadata: Annotated[StrictStr, Field(max_length=4096)] | None = None


class CommitOffsets(BaseModel):
    """``POST .../offsets``: these offsets, or without ``offsets`` every current position."""

    offsets: list[CommitOffset] | None = Field(None, max_length=100)
