"""On-failure destinations: where records go that a trigger gave up on.

- A Streamlet topic (:class:`TopicDeadLetters`): each record is appended as it was (key,
  value, headers, timestamp) with headers naming where it came from and why it failed:
  ``streamlet.dlq.topic``, ``streamlet.dlq.partition``, ``streamlet.dlq.offset``,
  ``streamlet.dlq.error``, ``streamlet.dlq.attempts`` and ``streamlet.dlq.trigger``.
  Keyed records land on the dead-letter topic's murmur2 partition for their key, keyless
  ones on the same partition number (modulo its count), so one source partition's dead
  letters keep their order. Appends are idempotent (a producer id per dispatcher, each
  retry says when it was first sent), so a retried append is not written twice.
- An SQS queue (:class:`QueueDeadLetters`): one JSON message per record (coordinates,
  base64 key and value, headers, error, attempts); on a FIFO queue the message group is
  the source partition and the deduplication id its coordinates.

Both raise the retriable ``Throttled``/``RequestTimedOut`` (or ``TargetUnavailable``)
when the destination does not take the records: the dispatcher retries later and commits
nothing past them meanwhile. A dead letter written again after a crash is a duplicate in
the destination, never a loss.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..codec import BatchBuilder
from ..errors import RetriableError
from ..partitioner import murmur2_partition
from ..records import Record
from ..transport.base import Transport
from .config import QueueDestination, TopicDestination, Trigger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

HEADER = "streamlet.dlq."
MAX_ERROR_CHARS = 1000
DLQ_BATCH_BYTES = 1024 * 1024
SQS_BATCH = 10
SQS_ATTEMPTS = 5


class TargetUnavailable(RetriableError):
    """A destination did not take what was sent (throttled, failing, unreachable): retry
    later. Never sent on the wire (no ``code`` of its own)."""


@dataclass(frozen=True)
class Failure:
    """A record given up on: why, and after how many failed invocations."""

    record: Record
    error: str
    attempts: int


class DeadLetters(Protocol):
    def send(self, trigger: Trigger, failures: Sequence[Failure]) -> None:
        """Write every failure, or raise (retriable) with nothing acknowledged."""
        ...


def dlq_headers(trigger: Trigger, failure: Failure) -> list[tuple[str, bytes | None]]:
    """The record's own headers, then the dead-letter headers.

    Example:
        >>> r = Record("orders", 2, 41, b"k", b"v", [("trace", b"1")], 1700)
        >>> t = Trigger("t", "orders", function="f")
        >>> [name for name, _ in dlq_headers(t, Failure(r, "boom", 3))][:3]
        ['trace', 'streamlet.dlq.topic', 'streamlet.dlq.partition']
    """
    record = failure.record
    extra = {"topic": record.topic, "partition": str(record.partition),
             "offset": str(record.offset), "error": failure.error[:MAX_ERROR_CHARS],
             "attempts": str(failure.attempts), "trigger": trigger.name}
    return [*record.headers, *((HEADER + k, v.encode()) for k, v in extra.items())]


class TopicDeadLetters:
    """Dead letters appended to a Streamlet topic through the transport."""

    def __init__(self, transport: Transport, clock: Callable[[], float] = time.time) -> None:
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._producer_id: int | None = None
        self._sequences: dict[tuple[str, int], int] = {}

    def send(self, trigger: Trigger, failures: Sequence[Failure]) -> None:
        assert isinstance(trigger.on_failure, TopicDestination)
        topic = trigger.on_failure.topic
        count = self._transport.topic_metadata(topic).partitions
        by_partition: dict[int, list[Failure]] = {}
        for failure in failures:
            key = failure.record.key
            partition = murmur2_partition(key, count) if key is not None \
                else failure.record.partition % count
            by_partition.setdefault(partition, []).append(failure)
        for partition, items in sorted(by_partition.items()):
            for batch, records in self._batches(trigger, items):
                self._append(topic, partition, batch, records)

    def _batches(self, trigger: Trigger, failures: list[Failure]
                 ) -> list[tuple[BatchBuilder, int]]:
        out: list[tuple[BatchBuilder, int]] = []
        builder = BatchBuilder("zstd", DLQ_BATCH_BYTES)
        for failure in failures:
            record = failure.record
            args = (record.key, record.value, dlq_headers(trigger, failure), record.timestamp)
            if not builder.append(*args):
                out.append((builder, builder.count))
                builder = BatchBuilder("zstd", DLQ_BATCH_BYTES)
                builder.append(*args)
        out.append((builder, builder.count))
        return out

    def _append(self, topic: str, partition: int, builder: BatchBuilder, count: int) -> None:
        with self._lock:
            if self._producer_id is None:
                self._producer_id = self._transport.init_producer_id()
            sequence = self._sequences.get((topic, partition), 0)
            self._sequences[(topic, partition)] = sequence + count
        data = builder.build(self._producer_id, 0, sequence)
        first = int(self._clock() * 1000)
        for attempt in range(4):
            try:
                self._transport.append(topic, partition, data,
                                       since_ms=first if attempt else None)
                return
            except RetriableError:
                if attempt == 3:
                    raise
                time.sleep(0.05 * 2 ** attempt)


class QueueDeadLetters:
    """Dead letters sent to an SQS queue, one JSON message each."""

    def __init__(self, sqs: SQSClient, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sqs = sqs
        self._sleep = sleep

    def send(self, trigger: Trigger, failures: Sequence[Failure]) -> None:
        assert isinstance(trigger.on_failure, QueueDestination)
        url = trigger.on_failure.queue_url
        for i in range(0, len(failures), SQS_BATCH):
            entries = [self._entry(trigger, url, n, f)
                       for n, f in enumerate(failures[i:i + SQS_BATCH])]
            send_entries(self._sqs, url, entries, self._sleep)

    @staticmethod
    def _entry(trigger: Trigger, url: str, n: int, failure: Failure) -> dict[str, Any]:
        record = failure.record
        body = {"trigger": trigger.name, "topic": record.topic, "partition": record.partition,
                "offset": record.offset, "timestamp": record.timestamp,
                "key": _b64(record.key), "value": _b64(record.value),
                "headers": [[k, _b64(v)] for k, v in record.headers],
                "error": failure.error[:MAX_ERROR_CHARS], "attempts": failure.attempts}
        entry: dict[str, Any] = {"Id": str(n), "MessageBody": json.dumps(body)}
        if url.endswith(".fifo"):
            coordinates = f"{trigger.name}/{record.topic}/{record.partition}/{record.offset}"
            entry["MessageGroupId"] = f"{record.topic}-{record.partition}"[:128]
            entry["MessageDeduplicationId"] = hashlib.sha256(coordinates.encode()).hexdigest()
        return entry


def send_entries(sqs: SQSClient, url: str, entries: list[dict[str, Any]],
                 sleep: Callable[[float], None]) -> list[dict[str, Any]]:
    """SendMessageBatch, resending entries SQS failed on its side; returns the entries it
    refused as the sender's fault (``SenderFault``), or raises TargetUnavailable."""
    rejected: list[dict[str, Any]] = []
    by_id = {e["Id"]: e for e in entries}
    pending = list(entries)
    for attempt in range(SQS_ATTEMPTS):
        try:
            answer = sqs.send_message_batch(QueueUrl=url, Entries=pending)  # type: ignore[arg-type]
        except Exception as error:  # botocore ClientError / connection errors
            if attempt == SQS_ATTEMPTS - 1:
                raise TargetUnavailable(f"SQS {url}: {error}") from error
            sleep(0.05 * 2 ** attempt)
            continue
        failed = answer.get("Failed", [])
        rejected += [{**by_id[f["Id"]], "error": f.get("Message", f.get("Code", ""))}
                     for f in failed if f.get("SenderFault")]
        pending = [by_id[f["Id"]] for f in failed if not f.get("SenderFault")]
        if not pending:
            return rejected
        sleep(0.05 * 2 ** attempt)
    raise TargetUnavailable(f"SQS {url}: {len(pending)} messages kept failing.")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
