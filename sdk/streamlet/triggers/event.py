"""The event a triggered function receives, and how its answer is read: Lambda's Kafka
(self-managed Kafka / MSK) event-source-mapping contract.

The event is the self-managed Kafka event shape, so an existing MSK handler and
Powertools' Kafka consumer utility (``aws_lambda_powertools.utilities.kafka``) read it
unchanged: records grouped under ``"topic-partition"`` keys, each with ``topic``,
``partition``, ``offset``, ``timestamp``, ``timestampType``, base64 ``key`` (absent for
keyless records) and ``value`` (``null`` for a tombstone, as Lambda sends it), and
``headers`` as ``[{name: [byte, ...]}]`` (a null header value is an empty list).
``bootstrapServers`` names the Streamlet deployment (``streamlet://PREFIX``).

The answer: an error (an exception locally, a FunctionError on AWS) fails the whole
batch. With ``report_batch_item_failures`` on, ``{"batchItemFailures": [{"itemIdentifier":
{"partition": "topic-partition", "offset": N}}]}`` (what Powertools' BatchProcessor for
Kafka returns) fails the records from the lowest offset named onward; an empty or null
list (or no answer at all) is a complete success, and an identifier that is null, malformed
or names a record not in the batch fails the whole batch, as Lambda treats them.

Example:
    >>> from streamlet.records import Record
    >>> event = kafka_event([Record("orders", 0, 7, b"k", b"v", [("h", b"1")], 1700)],
    ...                     "streamlet://streamlet")
    >>> event["records"]["orders-0"][0]["value"], event["records"]["orders-0"][0]["headers"]
    ('dg==', [{'h': [49]}])
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..records import Record, TimestampType

EVENT_SOURCE = "SelfManagedKafka"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 - 64 * 1024
"""Lambda's synchronous invocation payload limit (6 MB), less a margin for the envelope."""
RECORD_OVERHEAD_BYTES = 200
"""JSON field names, punctuation and numbers of one record in the event."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def record_json(record: Record) -> dict[str, Any]:
    """One record as Lambda's Kafka event writes it."""
    out: dict[str, Any] = {
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "timestamp": record.timestamp,
        "timestampType": "LOG_APPEND_TIME" if record.timestamp_type is
        TimestampType.LOG_APPEND_TIME else "CREATE_TIME",
        "value": None if record.value is None else _b64(record.value),
        "headers": [{name: list(value or b"")} for name, value in record.headers],
    }
    if record.key is not None:
        out["key"] = _b64(record.key)
    return out


def event_size(record: Record) -> int:
    """An upper bound of what one record adds to the event's JSON, in bytes."""
    headers = sum(len(name) + 8 + 4 * len(value or b"") for name, value in record.headers)
    return (RECORD_OVERHEAD_BYTES + len(record.topic) + 4 * (len(record.key or b"") + 2) // 3
            + 4 * (len(record.value or b"") + 2) // 3 + headers)


def kafka_event(records: Sequence[Record], bootstrap_servers: str) -> dict[str, Any]:
    """The self-managed Kafka event for ``records`` (of one or more partitions)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record.topic}-{record.partition}", []).append(record_json(record))
    return {"eventSource": EVENT_SOURCE, "bootstrapServers": bootstrap_servers,
            "records": grouped}


@dataclass(frozen=True)
class Answer:
    """How a batch went: ``failed_from`` is None when every record succeeded, else the
    offset from which records must be retried (the batch's first offset when it failed as
    a whole); ``error`` says why."""

    failed_from: int | None = None
    error: str = ""
    whole: bool = False
    """The whole batch failed (a function error, or an unusable partial response); False
    for a partial batch response, even one naming the first record (never bisected)."""

    @property
    def ok(self) -> bool:
        return self.failed_from is None


OK = Answer()


def failed(batch: Sequence[Record], error: str) -> Answer:
    return Answer(batch[0].offset, error, whole=True)


def read_answer(payload: Any, batch: Sequence[Record], report_failures: bool) -> Answer:
    """The function's return value (parsed JSON on AWS) as an :class:`Answer`."""
    if not report_failures or not isinstance(payload, Mapping):
        return OK
    items = payload.get("batchItemFailures")
    if not items:
        return OK
    offsets = {r.offset for r in batch}
    partitions = {f"{r.topic}-{r.partition}" for r in batch} | {str(r.partition) for r in batch}
    named: list[int] = []
    for item in items if isinstance(items, list) else [None]:
        offset = _identified(item, partitions)
        if offset is None or offset not in offsets:
            return failed(batch, f"invalid batchItemFailures entry {json.dumps(item)[:200]}")
        named.append(offset)
    lowest = min(named)
    return Answer(lowest, f"the function reported record {lowest} (and "
                          f"{len(named) - 1} more) as failed")


def _identified(item: Any, partitions: set[str]) -> int | None:
    """The offset an ``itemIdentifier`` names, or None if it is unusable."""
    ident = item.get("itemIdentifier") if isinstance(item, Mapping) else None
    if not isinstance(ident, Mapping):
        return None
    partition, offset = ident.get("partition"), ident.get("offset")
    if isinstance(partition, bool) or str(partition) not in partitions:
        return None
    if isinstance(offset, str) and offset.isdigit():
        offset = int(offset)
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else None
