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

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._values import is_int
from .codec import batch_span
from .errors import InvalidRequest, OffsetOutOfRange
from .records import OffsetAndTimestamp, Record, TopicPartition
from .transport.base import Transport
from .validation import decode_records

RESET_POLICIES = ("earliest", "latest", "none")
Deserializer = Callable[[bytes], Any]


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
    """Where the next fetch starts once every record is taken (-1 if unknown): the offset
    after the last batch read, or after the batches of aborted transactions the fetch
    passed over. It ends a batch, which makes the next fetch cheaper (``boundary_of``)."""
    topic_id: str = ""
    high_watermark: int = -1
    """The end of the log as far as this fetch read it (-1 if it read nothing): the high
    watermark when the fetch reached the tail, else a lower bound."""


def fetch_records(transport: Transport, tp: TopicPartition, position: int, policy: str,
                  max_bytes: int, max_records: int | None = None,
                  boundary_of: str | None = None,
                  isolation_level: str = "read_committed") -> Fetched:
    """Records of ``tp`` from ``position`` on (read_committed: those of committed
    transactions and outside any; the offsets of aborted ones are passed over).

    The position differs from the one given only after a reset. If the reset position is
    out of range too (the log moved again meanwhile), no records are returned and the
    caller fetches from the new position next time.
    """
    try:
        result = transport.fetch(tp.topic, tp.partition, position, max_bytes, max_records,
                                 boundary_of, isolation_level)
    except OffsetOutOfRange as error:
        position = reset_offset(transport, tp, policy, error)
        try:
            result = transport.fetch(tp.topic, tp.partition, position, max_bytes, max_records,
                                     None, isolation_level)
        except OffsetOutOfRange:
            return Fetched(position)
    records, complete = records_from(tp, result.batches, position, max_bytes)
    end = -1
    if complete and (result.batches or result.high_watermark > position):
        end = max(result.high_watermark,
                  batch_span(result.batches[-1])[1] + 1 if result.batches else position)
    return Fetched(position, records, end, result.topic_id, result.high_watermark)


def records_from(tp: TopicPartition, batches: Iterable[bytes], position: int,
                 max_bytes: int) -> tuple[list[Record], bool]:
    """The records of these stored batches at or after ``position``, in order, decoded in
    bounded memory: about ``max_bytes`` of keys, values and headers (at least one record).
    The bool says whether every record was decoded."""
    out: list[Record] = []
    budget = max_bytes
    for batch in batches:
        taken, more = _decode_from(tp, batch, position, max(budget, 1))
        out += taken
        budget -= sum(record_size(r) for r in taken)
        if more or (budget <= 0 and taken):
            return out, False
    return out, True


def _decode_from(tp: TopicPartition, batch: bytes, position: int, budget: int
                 ) -> tuple[list[Record], bool]:
    """The records of one batch at or after ``position``, about ``budget`` bytes of them,
    and whether the batch has more. Decoding starts at the batch's first record, so the
    records before ``position`` (a position inside a batch) widen the bound: doubling it
    keeps the work within twice one decode of what is needed."""
    limit = budget
    while True:
        records, more = decode_records(tp.topic, tp.partition, batch, limit)
        taken = [r for r in records if r.offset >= position]
        if not more or taken:
            return taken, more
        skipped = sum(record_size(r) for r in records)
        limit = max(2 * limit, skipped + budget)


def offsets_for_times(transport: Transport, timestamps: Mapping[TopicPartition, int],
                      max_bytes: int) -> dict[TopicPartition, OffsetAndTimestamp | None]:
    """For each partition, the first offset whose record timestamp is >= the given ms, with
    that record's timestamp (one more fetch of its batch); None where there is none.
    InvalidRequest for a key that is not a TopicPartition or a timestamp below 0."""
    for tp, ts in timestamps.items():
        if not isinstance(tp, TopicPartition) or not is_int(ts) or ts < 0:
            raise InvalidRequest(f"offsets_for_times takes {{TopicPartition: ms >= 0}}, "
                                 f"got {tp!r}: {ts!r}.")
    return {tp: _offset_and_timestamp(transport, tp, ts, max_bytes)
            for tp, ts in timestamps.items()}


def _offset_and_timestamp(transport: Transport, tp: TopicPartition, timestamp: int,
                          max_bytes: int) -> OffsetAndTimestamp | None:
    offset = transport.offset_for_time(tp.topic, tp.partition, timestamp)
    if offset is None:
        return None
    try:
        result = transport.fetch(tp.topic, tp.partition, offset, max_bytes, 1)
    except OffsetOutOfRange:  # retention passed it meanwhile: look again
        offset = transport.offset_for_time(tp.topic, tp.partition, timestamp)
        return None if offset is None else OffsetAndTimestamp(offset, timestamp)
    records, _ = records_from(tp, result.batches[:1], offset, 1)
    return OffsetAndTimestamp(offset, records[0].timestamp if records else timestamp)


def deserialized(record: Record, keys: Deserializer | None, values: Deserializer | None
                 ) -> Record:
    """``record`` with its key and value passed through the deserializers (kafka-python's
    ``key_deserializer`` / ``value_deserializer``); a None key or value stays None. A
    failure keeps its own type, with a note naming the record.

    Example:
        >>> deserialized(Record("t", 0, 5, None, b"[1]"), None, bytes.decode).value
        '[1]'
    """
    if keys is None and values is None:
        return record
    return dataclasses.replace(record, key=_apply(keys, record, "key", record.key),
                               value=_apply(values, record, "value", record.value))


def _apply(deserializer: Deserializer | None, record: Record, what: str,
           data: bytes | None) -> Any:
    if deserializer is None or data is None:
        return data
    try:
        return deserializer(data)
    except Exception as error:
        error.add_note(f"Deserializing the {what} of {record.topic} partition "
                       f"{record.partition} offset {record.offset} failed; the consumer's "
                       "position stays at this record (seek past it to skip it).")
        raise


def record_size(record: Record) -> int:
    """What a record's key, value and headers weigh (the decoding bound's measure)."""
    return (len(record.key or b"") + len(record.value or b"")
            + sum(len(k) + len(v or b"") for k, v in record.headers))
