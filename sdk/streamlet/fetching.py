"""Reading records from a position, with Kafka's ``auto.offset.reset``: written once.

The SDK ``Consumer`` and the REST Proxy v2 consumer instances (``functions/v2.py``,
which read through the engine, itself a Transport) both fetch this way: fetch stored
batches from the position, decode them, drop the records before the position (a fetch
starts at the batch holding it), and when the position has fallen out of the log (below
the log start after retention, or above the high watermark after a delete and
recreate) move it per the reset policy.

Example:
    >>> position, records = fetch_records(transport, TopicPartition("orders", 0), 0,
    ...                                   "earliest", max_bytes=65536)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .codec import batch_span
from .errors import InvalidRequest, OffsetOutOfRange
from .records import Record, TopicPartition
from .transport.base import Transport
from .validation import decode_records

RESET_POLICIES = ("earliest", "latest", "none")


def check_reset_policy(policy: str) -> str:
    """``earliest``, ``latest`` or ``none``; InvalidRequest otherwise."""
    if policy not in RESET_POLICIES:
        raise InvalidRequest(f"auto_offset_reset={policy!r}: expected one of "
                             f"{', '.join(RESET_POLICIES)}.")
    return policy


def reset_offset(transport: Transport, tp: TopicPartition, policy: str,
                 error: OffsetOutOfRange | None = None) -> int:
    """Where a partition without a valid position starts: its log start (``earliest``)
    or high watermark (``latest``). With ``none`` the out-of-range ``error`` is raised
    (or InvalidRequest when there was no position at all)."""
    if policy == "none":
        raise error or InvalidRequest(
            f"No position for {tp.topic} partition {tp.partition} and "
            "auto_offset_reset='none'; seek first.")
    low, high = transport.watermarks(tp.topic, tp.partition)
    return low if policy == "earliest" else high


@dataclass(frozen=True)
class Fetched:
    """Records read from one partition, and where the next read starts."""

    position: int
    """Where these records start: the position asked for, or where a reset moved it."""
    records: list[Record] = field(default_factory=list)
    end: int = -1
    """The offset after the last batch read (-1 if none): once every record is taken, the
    next position ends a batch, which makes the next fetch cheaper (``boundary_of``)."""
    topic_id: str = ""


def fetch_records(transport: Transport, tp: TopicPartition, position: int, policy: str,
                  max_bytes: int, max_records: int | None = None,
                  boundary_of: str | None = None) -> Fetched:
    """Records of ``tp`` from ``position`` on.

    The position differs from the one given only after a reset. If the reset position is
    out of range too (the log moved again meanwhile), no records are returned and the
    caller fetches from the new position next time.
    """
    try:
        result = transport.fetch(tp.topic, tp.partition, position, max_bytes, max_records,
                                 boundary_of)
    except OffsetOutOfRange as error:
        position = reset_offset(transport, tp, policy, error)
        try:
            result = transport.fetch(tp.topic, tp.partition, position, max_bytes, max_records)
        except OffsetOutOfRange:
            return Fetched(position)
    records, complete = records_from(tp, result.batches, position, max_bytes)
    end = batch_span(result.batches[-1])[1] + 1 if result.batches and complete else -1
    return Fetched(position, records, end, result.topic_id)


def records_from(tp: TopicPartition, batches: Iterable[bytes], position: int,
                 max_bytes: int) -> tuple[list[Record], bool]:
    """The records of these stored batches at or after ``position``, in order, decoded in
    bounded memory: about ``max_bytes`` of keys, values and headers (at least one record).
    The bool says whether every record was decoded."""
    out: list[Record] = []
    budget = max_bytes
    for batch in batches:
        records, more = decode_records(tp.topic, tp.partition, batch, max(budget, 1))
        taken = [r for r in records if r.offset >= position]
        out += taken
        budget -= sum(record_size(r) for r in taken)
        if more or (budget <= 0 and taken):
            return out, False
    return out, True


def record_size(record: Record) -> int:
    """What a record's key, value and headers weigh (the decoding bound's measure)."""
    return (len(record.key or b"") + len(record.value or b"")
            + sum(len(k) + len(v or b"") for k, v in record.headers))
