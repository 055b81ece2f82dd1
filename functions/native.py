"""The native binary path the SDK uses: whole RecordBatch v2 blobs in and out.

Produce takes one batch as the ``application/octet-stream`` body; fetch returns the
stored batches back to back (each is self-delimiting). The service never re-encodes.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from streamlet.records import FetchResult

from ._runtime import engine, metrics
from .urls import unquoted

produce_router = Router()
consume_router = Router()

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_WAIT_MS = 20_000
"""Long-poll bound: well under API Gateway's 30-second integration timeout."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Fetched bytes per response: base64 (4/3) must stay under Lambda's 6 MB response limit."""
BATCHES = "/v1/topics/<topic>/partitions/<partition>/batches"
Int64 = Annotated[int, Query(ge=INT64_MIN, le=INT64_MAX)]
OCTETS = "application/octet-stream"


def _body_bytes() -> bytes:
    event = produce_router.current_event
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8", "surrogateescape")


@produce_router.post(BATCHES)
def append_batch(topic: str, partition: int, expected_offset: Int64 | None = None
                 ) -> dict[str, Any]:
    """Append one RecordBatch v2 (the body); ``expected_offset`` makes it conditional."""
    batch = _body_bytes()
    result = engine().append(unquoted(topic), partition, batch, expected_offset)
    metrics.add_metric(name="BatchesProduced", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="BytesProduced", unit=MetricUnit.Bytes, value=len(batch))
    return {"base_offset": result.base_offset, "last_offset": result.last_offset,
            "log_append_time": result.log_append_time,
            "log_start_offset": result.log_start_offset, "duplicate": result.duplicate}


@produce_router.post("/v1/producer-ids")
def init_producer_id() -> dict[str, int]:
    """Allocate an idempotent producer id."""
    return {"producer_id": engine().init_producer_id()}


@consume_router.get(BATCHES)
def fetch_batches(topic: str, partition: int, offset: Int64,
                  max_bytes: Annotated[int, Query(ge=0, le=INT64_MAX)] = 1024 * 1024,
                  max_records: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
                  wait_ms: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0):
    """Batches from the one holding ``offset``; waits up to ``wait_ms`` (<= 20 s) at the end.

    No return annotation on purpose: Powertools would validate the binary body as text.
    """
    name = unquoted(topic)
    result = _fetch_waiting(name, partition, offset, min(max_bytes, MAX_RESPONSE_BYTES),
                            max_records, min(wait_ms, wait_budget_ms()))
    body = b"".join(_capped(result.batches))
    metrics.add_metric(name="BytesFetched", unit=MetricUnit.Bytes, value=len(body))
    return Response(200, OCTETS, body, headers={
        "X-Streamlet-High-Watermark": str(result.high_watermark),
        "X-Streamlet-Log-Start-Offset": str(result.log_start_offset)})


def wait_budget_ms() -> int:
    """At most MAX_WAIT_MS, and never past the Lambda's own deadline (minus a margin)."""
    context = consume_router.lambda_context
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return MAX_WAIT_MS
    return max(0, min(MAX_WAIT_MS, int(remaining()) - 2_000))


def _fetch_waiting(topic: str, partition: int, offset: int, max_bytes: int,
                   max_records: int | None, wait_ms: int) -> FetchResult:
    """Fetch; at the high watermark, re-check with short sleeps until data or the deadline."""
    deadline = time.monotonic() + wait_ms / 1000
    delay = 0.02
    while True:
        result = engine().fetch(topic, partition, offset, max_bytes, max_records)
        remaining = deadline - time.monotonic()
        if result.batches or offset != result.high_watermark or remaining <= 0:
            return result
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.2)


def _capped(batches: list[bytes]) -> list[bytes]:
    """Whole batches up to MAX_RESPONSE_BYTES (always at least the first one)."""
    out: list[bytes] = []
    size = 0
    for batch in batches:
        if out and size + len(batch) > MAX_RESPONSE_BYTES:
            break
        out.append(batch)
        size += len(batch)
    return out


@consume_router.get("/v1/topics/<topic>/partitions/<partition>/offsets")
def offsets(topic: str, partition: int, timestamp: Int64 | None = None) -> dict[str, Any]:
    """``{"low", "high"}`` watermarks, or with ``timestamp`` the first offset at/after it."""
    name = unquoted(topic)
    if timestamp is not None:
        return {"offset": engine().offset_for_time(name, partition, timestamp)}
    low, high = engine().watermarks(name, partition)
    return {"low": low, "high": high}


@consume_router.get("/v1/topics/<topic>")
def topic_metadata(topic: str) -> dict[str, Any]:
    """Name, id, partition count and config (no watermarks): what producers look up."""
    meta = engine().topic_metadata(unquoted(topic))
    return {"name": meta.name, "topic_id": meta.topic_id, "partitions": meta.partitions,
            "config": meta.config}
