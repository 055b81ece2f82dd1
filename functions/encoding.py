"""REST Proxy JSON records <-> the bytes of Kafka records (pure; no I/O).

The service builds a RecordBatch v2 from JSON records once, with the SDK's own
``BatchBuilder``; stored records are never re-encoded after that.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from streamlet.codec import BatchBuilder
from streamlet.errors import InvalidRecord
from streamlet.partitioner import murmur2_partition
from streamlet.topicconfig import MAX_BATCH_BYTES, config_str

from .models import ProduceRecord, RecordData, RecordHeader

SCHEMA_TYPES = ("AVRO", "JSONSCHEMA", "PROTOBUF")


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A JSON record turned into Kafka's parts, with the partition it goes to."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int
    key_type: str | None
    value_type: str | None


def b64decode(text: str, what: str) -> bytes:
    """Strict base64 (standard alphabet, padding required)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidRecord(f"{what} is not valid base64.") from None


def encode_data(data: RecordData | None, what: str) -> bytes | None:
    """The bytes of a key or value: BINARY is base64, STRING is UTF-8, JSON is compact JSON.

    Example:
        >>> encode_data(RecordData(type="JSON", data={"a": 1}), "value")
        b'{"a":1}'
    """
    if data is None or data.data is None:
        return None
    if data.type in SCHEMA_TYPES:
        raise InvalidRecord(f"The {what} type {data.type} needs a schema registry, which "
                            "Streamlet does not run: use BINARY, JSON or STRING.")
    if data.type == "JSON":
        return json.dumps(data.data, separators=(",", ":"), ensure_ascii=False).encode()
    if not isinstance(data.data, str):
        raise InvalidRecord(f"The {what} data of type {data.type} must be a string.")
    if data.type == "BINARY":
        return b64decode(data.data, f"The {what} data")
    return data.data.encode("utf-8", "surrogatepass")


def decode_headers(headers: list[RecordHeader]) -> list[tuple[str, bytes | None]]:
    return [(h.name, None if h.value is None else b64decode(h.value, f"Header {h.name!r}"))
            for h in headers]


def timestamp_ms(value: datetime | None, now_ms: int) -> int:
    """Milliseconds since the epoch; naive datetimes are UTC; None is now."""
    if value is None:
        return now_ms
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ms = int(value.timestamp() * 1000)
    if ms < 0:
        raise InvalidRecord(f"Record timestamp {value.isoformat()} is before 1970.")
    return ms


def iso_timestamp(ms: int) -> str:
    """REST Proxy's timestamp form, e.g. ``2021-02-05T19:14:42.000Z``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prepare(record: ProduceRecord, partitions: int, sticky: int, now_ms: int
            ) -> PreparedRecord:
    """Validate one JSON record and pick its partition (explicit, murmur2(key), or sticky)."""
    key = encode_data(record.key, "key")
    value = encode_data(record.value, "value")
    if record.partition_id is not None:
        partition = record.partition_id
    elif key is not None:
        partition = murmur2_partition(key, partitions)
    else:
        partition = sticky
    return PreparedRecord(partition, key, value, decode_headers(record.headers),
                          timestamp_ms(record.timestamp, now_ms),
                          record.key.type if key is not None and record.key else None,
                          record.value.type if value is not None and record.value else None)


def sticky_partition(partitions: int) -> int:
    """The partition for keyless records of one request (KIP-480's sticky choice)."""
    return random.randrange(partitions)


def build_batch(records: list[PreparedRecord], config: dict[str, str]) -> bytes:
    """One RecordBatch v2 holding ``records``, compressed as the topic says."""
    compression = config_str(config, "compression.type")
    codec = "none" if compression in ("producer", "uncompressed") else compression
    builder = BatchBuilder(codec, batch_size=MAX_BATCH_BYTES * 2)
    for r in records:
        if not builder.append(r.key, r.value, r.headers, r.timestamp):
            raise InvalidRecord("The records do not fit one record batch.")
    return builder.build(producer_id=-1, epoch=-1, base_sequence=-1)


def size_report(kind: str | None, data: bytes | None) -> dict[str, object] | None:
    """The ``key``/``value`` part of a delivery report: ``{"type", "size"}``."""
    if kind is None or data is None:
        return None
    return {"type": kind, "size": len(data)}
