"""Sinks: a topic delivered into S3, Firehose, EventBridge or SQS by the dispatcher.

A sink is a trigger whose target is built in (``Trigger(..., sink={"kind": "s3", ...})``):
the same consumer group, batching, claims and commits as a function trigger, so it commits
offsets only after the destination accepted the records, shows its lag in ``streamlet
groups describe`` and is re-driven by ``reset-offsets``. Each sink retries what the
destination throttles (and what failed on the destination's side) with backoff, and
*rejects* what the destination refuses for good (too large, malformed): rejected records go
to the trigger's dead-letter topic and count as done.

Records are written as one JSON object each (the *envelope*)::

    {"topic": "orders", "partition": 0, "offset": 41, "timestamp": 1700000000000,
     "timestamp_type": "CREATE_TIME", "key": "alice", "value": "{\\"item\\": 1}",
     "headers": {"trace": "abc"}, "encoding": "utf-8"}

Key, value and header values are UTF-8 text, or base64 (``"encoding": "base64"``) when any
of them is not valid UTF-8; a null key or value is ``null``.

==============  ==========================================================================
``s3``          ``bucket``, ``prefix``: gzip newline-delimited JSON objects
                ``{prefix}{topic}/dt=YYYY-MM-DD/partition=P/{topic}+P+FIRST+LAST.json.gz``
                (the date of the first record). The range is fixed before the write (the
                dispatcher pins it in the commit metadata), so a retried write replaces
                the same object: never a duplicate, never a gap.
``firehose``    ``delivery_stream``: PutRecordBatch (500 records, 4 MiB), one envelope
                and a newline per record.
``eventbridge`` ``event_bus`` (default ``default``), ``source`` (``streamlet``),
                ``detail_type`` (``Streamlet Record``): PutEvents (10 entries, 256 KiB),
                detail = the envelope with the value parsed when it is JSON.
``sqs``         ``queue_url``, ``body`` (``envelope`` or ``value``): SendMessageBatch;
                on a FIFO queue the key is the message group id (the partition for keyless
                records) and the record's coordinates the deduplication id.
==============  ==========================================================================

Example:
    >>> envelope(Record("orders", 0, 41, b"alice", b'{"item": 1}', [], 1700))["value"]
    '{"item": 1}'
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..records import Record, TimestampType
from .config import Trigger
from .dlq import TargetUnavailable, send_entries
from .event import OK
from .targets import Delivered

ClientFactory = Callable[[str], Any]
ATTEMPTS = 6
"""Rounds of resending what a destination failed on its side, before giving up for now."""
FIREHOSE_RECORDS, FIREHOSE_BYTES, FIREHOSE_RECORD_BYTES = 500, 4 * 1024 * 1024, 1_024_000
EVENTS_ENTRIES, EVENTS_BYTES = 10, 256 * 1024
SQS_ENTRIES, SQS_BYTES = 10, 256 * 1024
EVENTS_RETRIABLE = frozenset({"ThrottlingException", "InternalFailure", "InternalException"})
SINK_KINDS = ("s3", "firehose", "eventbridge", "sqs")


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def envelope(record: Record) -> dict[str, Any]:
    """One record as the sinks write it (see the module docstring)."""
    headers = dict(record.headers)
    try:
        fields = [_text(record.key), _text(record.value), {k: _text(v) for k, v in
                                                            headers.items()}]
        encoding = "utf-8"
    except UnicodeDecodeError:
        fields = [_b64(record.key), _b64(record.value), {k: _b64(v) for k, v in
                                                          headers.items()}]
        encoding = "base64"
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset,
            "timestamp": record.timestamp,
            "timestamp_type": TimestampType(record.timestamp_type).name,
            "key": fields[0], "value": fields[1], "headers": fields[2], "encoding": encoding}


def _line(record: Record) -> bytes:
    return json.dumps(envelope(record), separators=(",", ":")).encode() + b"\n"


def _pause(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2 ** attempt))


def _unavailable(what: str, error: Exception) -> TargetUnavailable:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return TargetUnavailable(f"{what}: {code or type(error).__name__}: {error}")


class S3Sink:
    """Gzip NDJSON objects named by topic, date, partition and offset range."""

    max_batch_bytes = 64 * 1024 * 1024
    pins_batches = True

    def __init__(self, s3: Any, bucket: str, prefix: str = "") -> None:
        self._s3, self.bucket, self.prefix = s3, bucket, prefix

    def key(self, records: Sequence[Record]) -> str:
        first, last = records[0], records[-1]
        day = datetime.fromtimestamp(max(first.timestamp, 0) / 1000, UTC).strftime("%Y-%m-%d")
        return (f"{self.prefix}{first.topic}/dt={day}/partition={first.partition}/"
                f"{first.topic}+{first.partition}+{first.offset:020d}+{last.offset:020d}"
                ".json.gz")

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        body = gzip.compress(b"".join(_line(r) for r in records), mtime=0)
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self.key(records), Body=body,
                                ContentType="application/x-ndjson", ContentEncoding="gzip")
        except Exception as error:  # throttled (SlowDown), 5xx, network: later
            raise _unavailable(f"S3 PutObject s3://{self.bucket}", error) from error
        return Delivered(OK)


class FirehoseSink:
    """PutRecordBatch into a Firehose stream, resending what it failed."""

    max_batch_bytes = 16 * 1024 * 1024
    pins_batches = False

    def __init__(self, firehose: Any, delivery_stream: str) -> None:
        self._firehose, self.stream = firehose, delivery_stream

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        rejected: dict[int, str] = {}
        chunk: list[tuple[int, bytes]] = []
        size = 0
        for record in records:
            data = _line(record)
            if len(data) > FIREHOSE_RECORD_BYTES:
                rejected[record.offset] = f"{len(data)} bytes: above Firehose's 1,000 KiB"
                continue
            if chunk and (len(chunk) == FIREHOSE_RECORDS or size + len(data) > FIREHOSE_BYTES):
                self._put(chunk)
                chunk, size = [], 0
            chunk.append((record.offset, data))
            size += len(data)
        if chunk:
            self._put(chunk)
        return Delivered(OK, rejected)

    def _put(self, chunk: list[tuple[int, bytes]]) -> None:
        pending = chunk
        for attempt in range(ATTEMPTS):
            try:
                answer = self._firehose.put_record_batch(
                    DeliveryStreamName=self.stream, Records=[{"Data": d} for _, d in pending])
            except Exception as error:
                if attempt == ATTEMPTS - 1:
                    raise _unavailable(f"Firehose {self.stream}", error) from error
                _pause(attempt)
                continue
            pending = [item for item, result in zip(pending, answer["RequestResponses"],
                                                    strict=True) if result.get("ErrorCode")]
            if not pending:
                return
            _pause(attempt)
        raise TargetUnavailable(f"Firehose {self.stream}: {len(pending)} records kept failing.")


class EventBridgeSink:
    """PutEvents on an event bus, the record (value parsed if JSON) as the detail."""

    max_batch_bytes = 16 * 1024 * 1024
    pins_batches = False

    def __init__(self, events: Any, event_bus: str = "default", source: str = "streamlet",
                 detail_type: str = "Streamlet Record") -> None:
        self._events = events
        self.bus, self.source, self.detail_type = event_bus, source, detail_type

    def entry(self, record: Record) -> dict[str, Any]:
        detail = envelope(record)
        if detail["encoding"] == "utf-8" and detail["value"] is not None:
            with contextlib.suppress(ValueError):
                detail["value"] = json.loads(detail["value"])
        return {"Source": self.source, "DetailType": self.detail_type,
                "Detail": json.dumps(detail, separators=(",", ":")), "EventBusName": self.bus,
                "Time": datetime.fromtimestamp(max(record.timestamp, 0) / 1000, UTC)}

    @staticmethod
    def size(entry: Mapping[str, Any]) -> int:
        """PutEvents' size rule: 14 bytes for Time plus the UTF-8 strings."""
        return 14 + sum(len(str(entry[k]).encode()) for k in ("Source", "DetailType",
                                                              "Detail"))

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        rejected: dict[int, str] = {}
        chunk: list[tuple[int, dict[str, Any]]] = []
        size = 0
        for record in records:
            entry = self.entry(record)
            cost = self.size(entry)
            if cost > EVENTS_BYTES:
                rejected[record.offset] = f"{cost} bytes: above PutEvents' 256 KiB"
                continue
            if chunk and (len(chunk) == EVENTS_ENTRIES or size + cost > EVENTS_BYTES):
                rejected.update(self._put(chunk))
                chunk, size = [], 0
            chunk.append((record.offset, entry))
            size += cost
        if chunk:
            rejected.update(self._put(chunk))
        return Delivered(OK, rejected)

    def _put(self, chunk: list[tuple[int, dict[str, Any]]]) -> dict[int, str]:
        rejected: dict[int, str] = {}
        pending = chunk
        for attempt in range(ATTEMPTS):
            try:
                answer = self._events.put_events(Entries=[e for _, e in pending])
            except Exception as error:
                if attempt == ATTEMPTS - 1:
                    raise _unavailable(f"EventBridge {self.bus}", error) from error
                _pause(attempt)
                continue
            retry = []
            for item, result in zip(pending, answer["Entries"], strict=True):
                code = result.get("ErrorCode")
                if code in EVENTS_RETRIABLE:
                    retry.append(item)
                elif code:
                    rejected[item[0]] = f"{code}: {result.get('ErrorMessage', '')}"
            if not retry:
                return rejected
            pending = retry
            _pause(attempt)
        raise TargetUnavailable(f"EventBridge {self.bus}: {len(pending)} events kept failing.")


class SqsSink:
    """SendMessageBatch to a standard or FIFO queue."""

    max_batch_bytes = 16 * 1024 * 1024
    pins_batches = False

    def __init__(self, sqs: Any, queue_url: str, body: str = "envelope") -> None:
        if body not in ("envelope", "value"):
            raise ValueError(f"SQS sink body={body!r}: 'envelope' or 'value'.")
        self._sqs, self.url, self.body = sqs, queue_url, body
        self.fifo = queue_url.endswith(".fifo")

    def entry(self, n: int, record: Record) -> dict[str, Any]:
        if self.body == "value":
            body = (record.value or b"").decode("utf-8")
        else:
            body = json.dumps(envelope(record), separators=(",", ":"))
        entry: dict[str, Any] = {"Id": str(n), "MessageBody": body}
        if self.fifo:
            group = record.key.decode("utf-8", "replace") if record.key is not None \
                else f"{record.topic}-{record.partition}"
            if len(group) > 128 or not group.isprintable() or not group.isascii():
                group = hashlib.sha256(group.encode()).hexdigest()
            entry["MessageGroupId"] = group
            entry["MessageDeduplicationId"] = hashlib.sha256(
                f"{record.topic}/{record.partition}/{record.offset}".encode()).hexdigest()
        return entry

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        rejected: dict[int, str] = {}
        chunk: list[dict[str, Any]] = []
        offsets: dict[str, int] = {}
        size = 0
        for n, record in enumerate(records):
            try:
                entry = self.entry(n, record)
            except UnicodeDecodeError:
                rejected[record.offset] = "the value is not UTF-8 text (body='value')"
                continue
            cost = len(entry["MessageBody"].encode())
            if cost > SQS_BYTES:
                rejected[record.offset] = f"{cost} bytes: above SQS's 256 KiB"
                continue
            if chunk and (len(chunk) == SQS_ENTRIES or size + cost > SQS_BYTES):
                rejected.update(self._send(chunk, offsets))
                chunk, size = [], 0
            chunk.append(entry)
            offsets[entry["Id"]] = record.offset
            size += cost
        if chunk:
            rejected.update(self._send(chunk, offsets))
        return Delivered(OK, rejected)

    def _send(self, chunk: list[dict[str, Any]], offsets: Mapping[str, int]) -> dict[int, str]:
        refused = send_entries(self._sqs, self.url, chunk, time.sleep)
        return {offsets[e["Id"]]: f"SQS refused it: {e['error']}" for e in refused}


def build_sink(config: Mapping[str, Any], client: ClientFactory) -> S3Sink | FirehoseSink \
        | EventBridgeSink | SqsSink:
    """The sink a trigger's ``sink`` setting describes; ``client(service)`` gives boto3
    clients."""
    options = {k: v for k, v in config.items() if k != "kind"}
    kind = config.get("kind")
    try:
        if kind == "s3":
            return S3Sink(client("s3"), **options)
        if kind == "firehose":
            return FirehoseSink(client("firehose"), **options)
        if kind == "eventbridge":
            return EventBridgeSink(client("events"), **options)
        if kind == "sqs":
            return SqsSink(client("sqs"), **options)
    except TypeError as error:
        raise ValueError(f"Sink {dict(config)!r}: {error}") from None
    raise ValueError(f"Unknown sink kind {kind!r} (one of {', '.join(SINK_KINDS)}).")
