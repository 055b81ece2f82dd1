"""Confluent REST Proxy v3 production: one record, or a ``records:batch`` (HTTP 207).

JSON records are built into one RecordBatch v2 per partition (``BatchBuilder``) and
appended with ``engine.append``; the delivery reports carry the offsets the log gave.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit

from streamlet.errors import InvalidRequest, PartitionNotFound, StreamletError
from streamlet.records import AppendResult, TopicDescription
from streamlet.wire import CLUSTER_ID

from ._runtime import engine, metrics
from ._shared import ClusterId, check_cluster, new_router, unquoted
from .encoding import PreparedRecord, build_batch, iso_timestamp, prepare, size_report
from .encoding import sticky_partition as pick_sticky
from .models import BatchEntry, ProduceBatch, ProduceRecord

router = new_router()
RECORDS = "/v3/clusters/<cluster_id>/topics/<topic>/records"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _report(topic: str, record: PreparedRecord, result: AppendResult, index: int
            ) -> dict[str, Any]:
    timestamp = result.log_append_time if result.log_append_time >= 0 else record.timestamp
    return {"cluster_id": CLUSTER_ID, "topic_name": topic, "partition_id": record.partition,
            "offset": result.base_offset + index, "timestamp": iso_timestamp(timestamp),
            "key": size_report(record.key_type, record.key),
            "value": size_report(record.value_type, record.value)}


def _append(meta: TopicDescription, records: list[PreparedRecord]) -> AppendResult:
    """Append ``records`` (all for one partition) as one batch."""
    batch = build_batch(records, meta.config)
    result = engine().append(meta.name, records[0].partition, batch)
    metrics.add_metric(name="RecordsProduced", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(name="BytesProduced", unit=MetricUnit.Bytes, value=len(batch))
    return result


def _check_partition(meta: TopicDescription, record: PreparedRecord) -> None:
    if not 0 <= record.partition < meta.partitions:
        raise PartitionNotFound(meta.name, record.partition, meta.partitions)


@router.post(RECORDS)
def produce_record(cluster_id: ClusterId, topic: str, body: ProduceRecord) -> dict[str, Any]:
    """Produce one record; the report has its partition, offset and timestamp."""
    check_cluster(cluster_id)
    meta = engine().topic_metadata(unquoted(topic))
    record = prepare(body, meta.partitions, pick_sticky(meta.partitions), _now_ms())
    _check_partition(meta, record)
    result = _append(meta, [record])
    return {"error_code": 200, **_report(meta.name, record, result, 0)}


@router.post(f"{RECORDS}:batch")
def produce_batch(cluster_id: ClusterId, topic: str, body: ProduceBatch) -> Response[Any]:
    """Produce many records: 207 with ``successes`` and ``failures``, by entry ``id``."""
    check_cluster(cluster_id)
    ids = [entry.id for entry in body.entries]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("Entry ids in a records:batch request must be unique.")
    meta = engine().topic_metadata(unquoted(topic))
    prepared, failures = _prepare_all(meta, body.entries)
    successes = _append_by_partition(meta, prepared, failures)
    return Response(207, "application/json", {
        "successes": [successes[i] for i in ids if i in successes],
        "failures": [failures[i] for i in ids if i in failures]})


def _append_by_partition(meta: TopicDescription, prepared: list[tuple[str, PreparedRecord]],
                         failures: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One batch per partition; a failed append fails each of its entries."""
    successes: dict[str, dict[str, Any]] = {}
    for records in _by_partition(prepared).values():
        try:
            result = _append(meta, [r for _, r in records])
        except StreamletError as error:
            failures.update({i: _failure(i, error) for i, _ in records})
            continue
        successes.update({i: {"id": i, **_report(meta.name, r, result, n)}
                          for n, (i, r) in enumerate(records)})
    return successes


def _prepare_all(meta: TopicDescription, entries: list[BatchEntry]
                 ) -> tuple[list[tuple[str, PreparedRecord]], dict[str, dict[str, Any]]]:
    sticky, now = pick_sticky(meta.partitions), _now_ms()
    prepared: list[tuple[str, PreparedRecord]] = []
    failures: dict[str, dict[str, Any]] = {}
    for entry in entries:
        try:
            record = prepare(entry, meta.partitions, sticky, now)
            _check_partition(meta, record)
        except StreamletError as error:
            failures[entry.id] = _failure(entry.id, error)
            continue
        prepared.append((entry.id, record))
    return prepared, failures


def _by_partition(prepared: list[tuple[str, PreparedRecord]]
                  ) -> dict[int, list[tuple[str, PreparedRecord]]]:
    groups: dict[int, list[tuple[str, PreparedRecord]]] = defaultdict(list)
    for entry_id, record in prepared:
        groups[record.partition].append((entry_id, record))
    return groups


def _failure(entry_id: str, error: StreamletError) -> dict[str, Any]:
    return {"id": entry_id, "error_code": error.status, "message": error.message,
            "code": error.code}
