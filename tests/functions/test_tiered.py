"""The archiver function: its EventBridge schedule entry point and its HTTP routes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from functions import api, tiered
from streamlet.engine import Engine, schema
from tests.batches import make_batch, values

from .conftest import LambdaContext, call

SCHEDULED_EVENT: dict[str, Any] = {  # what an EventBridge schedule delivers
    "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
    "time": "2026-11-25T12:00:00Z", "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/streamlet-archiver"],
    "detail": {},
}


def _fill(engine: Engine, topic: str, batches: int) -> None:
    for i in range(batches):
        engine.append(topic, 0, make_batch(values(f"b{i}", 4)))


def test_a_scheduled_pass_archives_what_is_due_and_enforces_retention(
        aws: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # as deployed: the local platform, if an earlier test ran one, turns metrics off
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    aws.create_topic("due", 1, {"segment.bytes": 100})  # size-triggered: due at once
    aws.create_topic("young", 1)
    _fill(aws, "due", 5)
    _fill(aws, "young", 2)
    aws.delete_records("due", 0, 4)
    capsys.readouterr()
    time.sleep(1.1)  # so the young batches have a measurable age
    totals = api.archiver_handler(SCHEDULED_EVENT, LambdaContext())
    assert totals["partitions"] == 2 and totals["segments_written"] >= 2
    assert aws.log.snapshot("due", 0)[1].state.archived == 20
    assert aws.log.snapshot("young", 0)[1].state.archived == 0
    assert totals["bytes_archived"] > 0
    assert 1 <= totals["archive_lag_seconds"] < 60  # "young" waits for segment.ms
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if '"_aws"' in line]  # the CloudWatch embedded metric format record
    published = {m["Name"]: m["Unit"]
                 for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert published["ArchiveLagSeconds"] == "Seconds"
    directive = emf["_aws"]["CloudWatchMetrics"][0]  # what the stack's lag alarm selects
    assert directive["Namespace"] == "Streamlet" and directive["Dimensions"] == [["service"]]
    assert emf["service"] == "streamlet"
    assert emf["ArchiveLagSeconds"] == [totals["archive_lag_seconds"]]  # one value each
    assert emf["SegmentsWritten"] == [totals["segments_written"]]


def test_a_failing_partition_fails_the_invocation_after_the_others_are_done(
        aws: Engine) -> None:
    aws.create_topic("broken", 1, {"segment.bytes": 100})
    aws.create_topic("fine", 1, {"segment.bytes": 100})
    _fill(aws, "broken", 3)
    _fill(aws, "fine", 3)
    meta = aws.topics.get("broken")
    item = next(i for i in aws.log.query(meta, meta.ref(0), schema.batch_sk(0),
                                         schema.batch_sk(99), 99)
                if i[schema.SK]["S"] == schema.batch_sk(4))  # lost, as an early TTL would
    aws._ddb.delete_item(TableName=aws.names.log_table,
                         Key={schema.PK: item[schema.PK], schema.SK: item[schema.SK]})
    with pytest.raises(tiered.PassFailed, match=r"1 partition\(s\) failed: broken/0: "
                                                r"DataUnavailable: .*4\.\.7"):
        api.archiver_handler(SCHEDULED_EVENT, LambdaContext())
    assert aws.log.snapshot("fine", 0)[1].state.archived == 12
    assert aws.log.snapshot("broken", 0)[1].state.archived == 4  # up to the gap, not past it


def test_archive_route_forces_a_roll_and_reports_per_partition(aws: Engine) -> None:
    aws.create_topic("orders", 2)
    _fill(aws, "orders", 3)
    reply = call("POST", "/v1/archive", {"topic": "orders", "force": True})
    assert reply.status == 200
    reports = {r["partition"]: r for r in reply.json()["data"]}
    assert reports[0]["archived_offset"] == reports[0]["high_watermark"] == 12
    assert [(s["base_offset"], s["last_offset"]) for s in reports[0]["segments"]] == [(0, 11)]
    assert reports[1]["segments"] == []


def test_delete_records_and_retention_routes(aws: Engine) -> None:
    aws.create_topic("orders", 1)
    _fill(aws, "orders", 3)
    path = "/v1/topics/orders/partitions/0/delete-records"
    assert call("POST", path, {"before_offset": 5}).json() == {"low_watermark": 5}
    assert aws.watermarks("orders", 0) == (5, 12)
    reply = call("POST", "/v1/retention", {"topic": "orders"})
    assert reply.status == 200 and reply.json()["data"][0]["log_start_after"] == 5


def test_bad_input_is_a_4xx_and_changes_nothing(aws: Engine) -> None:
    aws.create_topic("orders", 1)
    _fill(aws, "orders", 1)
    path = "/v1/topics/orders/partitions/0/delete-records"
    for body, status, code in (({"before_offset": 99}, 416, 41601),
                               ({"before_offset": "3"}, 400, 40002),
                               ({}, 400, 40002)):
        reply = call("POST", path, body)
        assert (reply.status, reply.json()["error_code"]) == (status, code), body
    missing = call("POST", "/v1/topics/nope/partitions/0/delete-records", {"before_offset": 1})
    assert (missing.status, missing.json()["error_code"]) == (404, 40401)
    assert "nope" in missing.json()["message"]
    bad = call("POST", "/v1/archive", {"topic": "orders", "force": "yes"})
    assert (bad.status, bad.json()["error_code"]) == (400, 40002)
    assert aws.watermarks("orders", 0) == (0, 4)
    assert aws.log.snapshot("orders", 0)[1].state.archived == 0
