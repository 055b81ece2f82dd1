"""Consume-transform-produce, exactly once: read from a group, apply a function, write its
outputs and the input offsets in one transaction per poll.

The guarantee, in one sentence: every input record's outputs appear exactly once to
read_committed readers, in input order per input partition, and its offset is committed
in the same transaction, whatever crashes, retries or rebalances happen.

How: each poll's records are processed inside ``producer.transaction()``; the offsets
after them go in with ``send_offsets_to_transaction``, fenced by the consumer's leases.
If the transaction cannot commit (a partition moved to another member, a timeout,
storage failing past its retries) it is aborted, nothing of it is visible, and the
consumer goes back to where the poll started on the partitions it still owns; whoever
owns the others resumes from their committed offsets. A crashed process leaves an open
transaction that times out (or is aborted at once by the next ``init_transactions`` with
the same transactional id) and its partitions are re-read by their next owner.

Example (an enrichment service)::

    consumer = Consumer("orders", group_id="enricher", enable_auto_commit=False,
                        value_deserializer=json_deserializer)
    producer = Producer(transactional_id="enricher-1", value_serializer=json_serializer)

    def enrich(order):
        yield Output("orders.enriched", {**order.value, "region": region(order.value)},
                     key=order.key)

    processing.run(consumer, producer, enrich)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._values import HeadersIn
from .consumer import Consumer
from .errors import CommitFailed, RetriableError, TransactionAborted
from .producer import Producer
from .records import Record, TopicPartition


class Output(NamedTuple):
    """One record a processing function writes (a plain tuple in this order works too)."""

    topic: str
    value: object = None
    key: object = None
    headers: HeadersIn = None
    partition: int | None = None


Function = Callable[[Record], Iterable[Output | tuple[Any, ...]] | None]


@dataclass
class Stats:
    """What :func:`run` did."""

    polls: int = 0
    committed: int = 0
    """Transactions committed (one per poll that returned records)."""
    records: int = 0
    """Input records whose outputs and offsets were committed."""
    outputs: int = 0
    retried: int = 0
    """Transactions aborted and their records read again (a rebalance, a timeout...)."""


def run(consumer: Consumer, producer: Producer, fn: Function, *,
        poll_timeout: float = 1.0, stop: threading.Event | None = None,
        max_polls: int | None = None) -> Stats:
    """Process ``consumer``'s records with ``fn`` until ``stop`` is set (or ``max_polls``
    polls), exactly once (see the module docstring); returns what it did.

    ``consumer`` must belong to a group and be subscribed with
    ``enable_auto_commit=False``; ``producer`` must have a ``transactional_id`` (its
    ``init_transactions`` is called here if it was not). ``fn`` maps one input record to
    the records to write (an iterable of :class:`Output`, or None). An exception from
    ``fn`` aborts the poll's transaction, rewinds the consumer to the poll's first
    records and is raised: nothing of that poll is visible, and the next run starts over
    from it.
    """
    if producer.transactional_state() == "uninitialized":
        producer.init_transactions()
    consumer.group_metadata()  # InvalidTxnState now, not after the first poll
    stats = Stats()
    while (stop is None or not stop.is_set()) and (max_polls is None
                                                   or stats.polls < max_polls):
        records = consumer.poll(timeout=poll_timeout)
        stats.polls += 1
        if records:
            _process(consumer, producer, fn, list(records), stats)
    return stats


def _process(consumer: Consumer, producer: Producer, fn: Function, records: list[Record],
             stats: Stats) -> None:
    """One poll's records in one transaction; aborted and rewound if it cannot commit."""
    starts: dict[TopicPartition, int] = {}
    ends: dict[TopicPartition, int] = {}
    for record in records:
        starts.setdefault(record.topic_partition, record.offset)
        ends[record.topic_partition] = record.offset + 1
    written = 0
    try:
        with producer.transaction():
            for record in records:
                for out in fn(record) or ():
                    producer.send(*out)
                    written += 1
            producer.send_offsets_to_transaction(ends, consumer.group_metadata())
    except (CommitFailed, TransactionAborted, RetriableError):
        _rewind(consumer, starts)  # aborted: read them again (where still ours)
        stats.retried += 1
        return
    except BaseException:
        _rewind(consumer, starts)
        raise
    stats.committed += 1
    stats.records += len(records)
    stats.outputs += written


def _rewind(consumer: Consumer, starts: dict[TopicPartition, int]) -> None:
    owned = consumer.assignment()
    for tp, offset in starts.items():
        if tp in owned:
            consumer.seek(tp, offset)


__all__ = ["Function", "Output", "Stats", "run"]
