"""The native binary path the SDK uses: whole RecordBatch v2 blobs in and out.

Produce takes one batch as the ``application/octet-stream`` body; fetch returns the
stored batches back to back (each is self-delimiting). The service never re-encodes.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from streamlet import wire
from streamlet.codec import batch_span
from streamlet.engine.grants import transaction_route
from streamlet.errors import InvalidRequest
from streamlet.records import DEFAULT_FETCH_BYTES, FetchResult
from streamlet.txn import validate_transactional_id

from ._access import caller_access
from ._runtime import engine, metrics
from ._shared import long_poll, new_router, unquoted, wait_budget_ms

produce_router = new_router()
consume_router = new_router()

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
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


def _append_deadline_ms() -> int:
    """When API Gateway received the request (its clock and the Lambda's are AWS's), plus
    the append budget: the client retries a request left without a reply only after it."""
    context = produce_router.current_event.get("requestContext") or {}
    received = context.get("timeEpoch")
    start = int(received) if isinstance(received, int) else int(time.time() * 1000)
    return start + wire.APPEND_DEADLINE_MS


@produce_router.post(BATCHES)
def append_batch(topic: str, partition: int, expected_offset: Int64 | None = None,
                 since_ms: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
                 transactional_id: Annotated[str | None, Query(max_length=249)] = None,
                 transaction: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None
                 ) -> dict[str, Any]:
    """Append one RecordBatch v2 (the body); ``expected_offset`` makes it conditional;
    ``since_ms`` (a retry: when the first attempt was sent) finds an earlier attempt;
    ``transactional_id`` and ``transaction`` (its number) send it in that transaction."""
    batch = _body_bytes()
    result = engine().append(unquoted(topic), partition, batch, expected_offset, since_ms,
                             _transaction(transactional_id, transaction),
                             deadline_ms=_append_deadline_ms())
    metrics.add_metric(name="BatchesProduced", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="BytesProduced", unit=MetricUnit.Bytes, value=len(batch))
    return wire.append_json(result)


def _transaction(transactional_id: str | None, number: int | None) -> tuple[str, int] | None:
    """The transaction a batch names in its query: both parts or neither, and the caller
    may use that transactional id (403 otherwise, nothing written)."""
    if transactional_id is None and number is None:
        return None
    if transactional_id is None or number is None:
        raise InvalidRequest("A transactional batch names both transactional_id and "
                             "transaction (its number), or neither.")
    tid = validate_transactional_id(transactional_id)
    caller_access(produce_router.current_event).check_route(
        *transaction_route(tid), f"Transactional id '{tid}'")
    return tid, number


@produce_router.post("/v1/producer-ids")
def init_producer_id() -> dict[str, int]:
    """Allocate an idempotent producer id."""
    return {"producer_id": engine().init_producer_id()}


@consume_router.get(BATCHES)
def fetch_batches(  # type: ignore[no-untyped-def]
        topic: str, partition: int, offset: Int64,
        max_bytes: Annotated[int, Query(ge=0, le=INT64_MAX)] = DEFAULT_FETCH_BYTES,
        max_records: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
        wait_ms: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
        boundary_of: Annotated[str | None, Query(max_length=64)] = None,
        isolation_level: Annotated[str, Query(max_length=32)] = "read_committed"):
    """Batches from the one holding ``offset``; waits up to ``wait_ms`` (<= 20 s) at the end.

    No return annotation on purpose: with one, Powertools' response validation would
    encode the binary body as JSON text.
    """
    name = unquoted(topic)
    limit = min(max_bytes, MAX_RESPONSE_BYTES)

    def attempt() -> FetchResult:
        return engine().fetch(name, partition, offset, limit, max_records, boundary_of,
                              isolation_level)

    result = long_poll(attempt, lambda r: bool(r.batches) or offset != r.high_watermark,
                       min(wait_ms, wait_budget_ms(consume_router.lambda_context)))
    kept = _capped(result.batches)
    body = b"".join(kept)
    metrics.add_metric(name="BytesFetched", unit=MetricUnit.Bytes, value=len(body))
    after = result.high_watermark if len(kept) == len(result.batches) \
        else batch_span(kept[-1])[1] + 1  # where the next fetch starts
    return Response(200, OCTETS, body, headers={
        wire.HIGH_WATERMARK_HEADER: str(after),
        wire.LOG_START_HEADER: str(result.log_start_offset),
        wire.TOPIC_ID_HEADER: result.topic_id})


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
        return wire.offset_json(engine().offset_for_time(name, partition, timestamp))
    return wire.watermarks_json(*engine().watermarks(name, partition))


@consume_router.get("/v1/topics/<topic>")
def topic_metadata(topic: str) -> dict[str, Any]:
    """Name, id, partition count and config (no watermarks): what producers look up."""
    return wire.topic_json(engine().topic_metadata(unquoted(topic)))
