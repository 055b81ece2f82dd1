"""Tiered storage on demand (the archiver function's HTTP routes) and on a schedule.

The archiver function is the only one allowed to write and delete segments, so both its
entry points live here: EventBridge invokes it every few minutes (``scheduled``), and
``POST /v1/archive``, ``POST /v1/retention`` and ``.../delete-records`` run the same
engine calls when an operator asks (``streamlet admin archive`` over HTTP).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, StrictBool, StrictInt, StrictStr

from streamlet.wire import reports_json

from ._runtime import engine, logger, metrics
from ._shared import new_router, unquoted

router = new_router()


class ArchiveRequest(BaseModel):
    """``POST /v1/archive``: one topic (default: all); ``force`` rolls every hot batch."""

    topic: StrictStr | None = None
    force: StrictBool = False


class RetentionRequest(BaseModel):
    """``POST /v1/retention``: one topic (default: all)."""

    topic: StrictStr | None = None


class DeleteRecords(BaseModel):
    """``POST .../delete-records``: records below ``before_offset`` (-1: all) go."""

    before_offset: StrictInt


@router.post("/v1/archive")
def archive(body: ArchiveRequest) -> dict[str, Any]:
    """Roll due hot batches into S3 segments now; one report per partition."""
    return reports_json(engine().archive(body.topic, body.force))


@router.post("/v1/retention")
def retention(body: RetentionRequest) -> dict[str, Any]:
    """Expire segments past retention.ms / retention.bytes now."""
    return reports_json(engine().enforce_retention(body.topic))


@router.post("/v1/topics/<topic>/partitions/<partition>/delete-records")
def delete_records(topic: str, partition: int, body: DeleteRecords) -> dict[str, int]:
    """Kafka's DeleteRecords for one partition; answers the new low watermark."""
    low = engine().delete_records(unquoted(topic), partition, body.before_offset)
    return {"low_watermark": low}


class PassFailed(RuntimeError):
    """Some partitions failed in a scheduled pass (the others were done): failing the
    invocation raises the function's Errors alarm."""


PASS_METRICS = {"segments_written": MetricUnit.Count, "bytes_archived": MetricUnit.Bytes,
                "segments_expired": MetricUnit.Count, "archive_lag_seconds": MetricUnit.Seconds}
"""What a scheduled pass publishes (as ``SegmentsWritten``, ..., ``ArchiveLagSeconds``)."""


def scheduled_pass() -> dict[str, int]:
    """One archiver and retention pass over every topic (the EventBridge schedule)."""
    archived, expired, failures = engine().scheduled_pass()
    totals = {
        "partitions": len(archived),
        "segments_written": sum(len(r.segments) for r in archived),
        "bytes_archived": sum(s.size for r in archived for s in r.segments),
        "blobs_deleted": sum(r.blobs_deleted for r in archived),
        "segments_expired": sum(r.segments_deleted for r in expired),
        "partitions_failed": len(failures),
        # The oldest batch still only in DynamoDB: hot batches expire local.retention.ms
        # after they are appended, archived or not, so this must stay well below that.
        "archive_lag_seconds": max((r.unarchived_age_ms for r in archived), default=0) // 1000,
    }
    for name, unit in PASS_METRICS.items():
        metrics.add_metric(name="".join(p.title() for p in name.split("_")), unit=unit,
                           value=totals[name])
    logger.info("archiver pass", extra=totals)
    if failures:
        logger.error("archiver pass failed for some partitions", extra={"failures": failures})
        raise PassFailed(f"{len(failures)} partition(s) failed: " + "; ".join(failures[:10]))
    return totals
