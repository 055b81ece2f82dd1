"""Sinks on moto: S3 objects, Firehose, EventBridge and SQS; rejects to the dead-letter topic,
commits only after the destination took the records."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import Any

import boto3
import pytest

from streamlet.engine import Engine
from streamlet.records import Record, TopicPartition
from streamlet.triggers import Dispatcher, TopicDeadLetters, TopicDestination, Trigger
from streamlet.triggers.dlq import TargetUnavailable
from streamlet.triggers.sinks import (
    EventBridgeSink,
    FirehoseSink,
    S3Sink,
    SqsSink,
    build_sink,
    envelope,
)
from streamlet.triggers.targets import Delivered

from .helpers import produce, read_all

TS = 1_764_547_200_000  # 2025-12-01T00:00:00Z


@pytest.fixture
def orders(engine: Engine) -> Engine:
    engine.create_topic("orders", 1)
    engine.create_topic("orders.dlq", 1)
    return engine


def client(service: str) -> Any:
    make: Any = boto3.client
    return make(service, region_name="us-east-1")


def sink_trigger(sink: dict[str, Any], **settings: Any) -> Trigger:
    return Trigger("lake", "orders", sink=sink, starting_position="TRIM_HORIZON",
                   maximum_batching_window_ms=0, on_failure=TopicDestination("orders.dlq"),
                   **settings)


def dispatcher(engine: Engine, trigger: Trigger, target: Any) -> Dispatcher:
    return Dispatcher(engine, [trigger], {trigger.name: target},
                      {trigger.name: TopicDeadLetters(engine)}, token="t", backoff_ms=(0, 0))


def committed(engine: Engine) -> int | None:
    lease = engine.groups.lease("lake", TopicPartition("orders", 0))
    return None if lease is None else lease.committed


def objects(bucket: str) -> dict[str, list[dict[str, Any]]]:
    s3 = client("s3")
    out = {}
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        out[item["Key"]] = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    return out


def test_the_envelope_is_text_when_it_can_be_and_base64_when_not() -> None:
    text = envelope(Record("orders", 1, 7, b"k", b'{"a": 1}', [("h", b"x")], TS))
    assert text == {"topic": "orders", "partition": 1, "offset": 7, "timestamp": TS,
                    "timestamp_type": "CREATE_TIME", "key": "k", "value": '{"a": 1}',
                    "headers": {"h": "x"}, "encoding": "utf-8"}
    binary = envelope(Record("orders", 1, 8, None, b"\xff\x00", [], TS))
    assert (binary["key"], binary["value"], binary["encoding"]) == (None, "/wA=", "base64")


def test_s3_objects_are_gzip_ndjson_named_by_topic_date_partition_and_range(
        orders: Engine) -> None:
    client("s3").create_bucket(Bucket="lake-bucket")
    produce(orders, "orders", 0, [{"n": i} for i in range(5)], ts=TS)
    trigger = sink_trigger({"kind": "s3", "bucket": "lake-bucket", "prefix": "raw/"},
                           batch_size=3)
    result = dispatcher(orders, trigger, build_sink(trigger.sink or {}, client)).dispatch(
        "lake", 0)
    assert (result.delivered, committed(orders)) == (5, 5)
    found = objects("lake-bucket")
    assert sorted(found) == [
        "raw/orders/dt=2025-12-01/partition=0/orders+0+00000000000000000000+00000000000000000002"
        ".json.gz",
        "raw/orders/dt=2025-12-01/partition=0/orders+0+00000000000000000003+00000000000000000004"
        ".json.gz"]
    lines = [line for key in sorted(found) for line in found[key]]
    assert [json.loads(line["value"])["n"] for line in lines] == list(range(5))
    assert [line["offset"] for line in lines] == list(range(5))


class CrashAfterWrite:
    """The S3 sink, then a crash before the dispatcher commits (once)."""

    max_batch_bytes = S3Sink.max_batch_bytes
    pins_batches = True

    def __init__(self, sink: S3Sink) -> None:
        self.sink, self.crashed = sink, False

    def deliver(self, trigger: Trigger, records: Sequence[Record]) -> Delivered:
        done = self.sink.deliver(trigger, records)
        if not self.crashed:
            self.crashed = True
            raise KeyboardInterrupt("the dispatcher died after the PUT")
        return done


def test_a_retried_s3_write_replaces_the_same_object_even_after_more_records(
        orders: Engine) -> None:
    client("s3").create_bucket(Bucket="lake-bucket")
    produce(orders, "orders", 0, [{"n": i} for i in range(2)], ts=TS)
    trigger = sink_trigger({"kind": "s3", "bucket": "lake-bucket"}, batch_size=100)
    target = CrashAfterWrite(S3Sink(client("s3"), "lake-bucket"))
    with pytest.raises(KeyboardInterrupt):
        dispatcher(orders, trigger, target).dispatch("lake", 0)
    assert committed(orders) == 0 and len(objects("lake-bucket")) == 1
    produce(orders, "orders", 0, [{"n": i} for i in range(2, 4)], ts=TS)  # meanwhile
    dispatcher(orders, trigger, target).dispatch("lake", 0)  # the retry, same token
    found = objects("lake-bucket")
    assert [[line["offset"] for line in found[key]] for key in sorted(found)] == [[0, 1], [2, 3]]
    assert committed(orders) == 4


def test_firehose_gets_one_line_per_record_and_rejects_oversized_ones(orders: Engine) -> None:
    client("s3").create_bucket(Bucket="fh-bucket")
    client("firehose").create_delivery_stream(
        DeliveryStreamName="lake", ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::fh-bucket"})
    for topic in ("orders", "orders.dlq"):  # a dead-letter topic takes what its source does
        orders.alter_topic_config(topic, {"max.message.bytes": "4194304"})
    produce(orders, "orders", 0, [{"n": 0}, {"big": "x" * 1_100_000}, {"n": 2}], ts=TS)
    trigger = sink_trigger({"kind": "firehose", "delivery_stream": "lake"})
    result = dispatcher(orders, trigger, build_sink(trigger.sink or {}, client)).dispatch(
        "lake", 0)
    assert (result.delivered, result.dead_lettered, committed(orders)) == (2, 1, 3)
    s3 = client("s3")
    (item,) = s3.list_objects_v2(Bucket="fh-bucket")["Contents"]
    body = s3.get_object(Bucket="fh-bucket", Key=item["Key"])["Body"].read()
    assert [json.loads(line)["offset"] for line in body.splitlines()] == [0, 2]
    (dead,) = read_all(orders, "orders.dlq")
    assert dead.header("streamlet.dlq.offset") == b"1"
    assert b"above Firehose" in (dead.header("streamlet.dlq.error") or b"")


def test_eventbridge_events_carry_the_record_as_detail(orders: Engine) -> None:
    sqs, events = client("sqs"), client("events")
    queue = sqs.create_queue(QueueName="seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    events.put_rule(Name="orders", EventPattern=json.dumps({"source": ["shop.orders"]}))
    events.put_targets(Rule="orders", Targets=[{"Id": "1",
                                                "Arn": arn["Attributes"]["QueueArn"]}])
    produce(orders, "orders", 0, [{"n": 0}, {"n": 1}], ts=TS)
    trigger = sink_trigger({"kind": "eventbridge", "source": "shop.orders",
                            "detail_type": "Order Placed"})
    result = dispatcher(orders, trigger, build_sink(trigger.sink or {}, client)).dispatch(
        "lake", 0)
    assert result.delivered == 2
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    events_seen = sorted((json.loads(m["Body"]) for m in messages),
                         key=lambda e: e["detail"]["offset"])
    assert [e["detail-type"] for e in events_seen] == ["Order Placed"] * 2
    assert [e["detail"]["value"] for e in events_seen] == [{"n": 0}, {"n": 1}]


def test_sqs_fifo_groups_by_key_and_deduplicates_by_coordinates(orders: Engine) -> None:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"]
    produce(orders, "orders", 0, [{"n": i} for i in range(3)], ts=TS, key=b"alice")
    trigger = sink_trigger({"kind": "sqs", "queue_url": url, "body": "value"})
    sink = build_sink(trigger.sink or {}, client)
    dispatcher(orders, trigger, sink).dispatch("lake", 0)
    records = [Record("orders", 0, i, b"alice", b"x", [], TS) for i in range(3)]
    sink.deliver(trigger, records)  # sent again: deduplicated
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              AttributeNames=["MessageGroupId"])["Messages"]
    assert [json.loads(m["Body"])["n"] for m in got] == [0, 1, 2]
    assert {m["Attributes"]["MessageGroupId"] for m in got} == {"alice"}


def test_sqs_value_bodies_must_be_text(orders: Engine) -> None:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="raw")["QueueUrl"]
    sink = SqsSink(sqs, url, body="value")
    trigger = sink_trigger({"kind": "sqs", "queue_url": url, "body": "value"})
    done = sink.deliver(trigger, [Record("orders", 0, 0, None, b"\xff", [], TS),
                                  Record("orders", 0, 1, None, b"ok", [], TS)])
    assert list(done.rejected) == [0]


class Scripted:
    """A fake client answering each call from a script of per-entry error codes."""

    def __init__(self, *rounds: list[str | None], raise_first: int = 0) -> None:
        self.rounds, self.calls, self.raise_first = list(rounds), [], raise_first

    def _answer(self, entries: list[Any]) -> list[str | None]:
        self.calls.append(entries)
        if self.raise_first:
            self.raise_first -= 1
            raise RuntimeError("Rate exceeded")
        return self.rounds.pop(0) if self.rounds else [None] * len(entries)

    def put_events(self, Entries: list[Any]) -> dict[str, Any]:
        codes = self._answer(Entries)
        return {"Entries": [{"ErrorCode": c, "ErrorMessage": "m"} if c else {"EventId": "e"}
                            for c in codes]}

    def put_record_batch(self, DeliveryStreamName: str, Records: list[Any]
                         ) -> dict[str, Any]:
        codes = self._answer(Records)
        return {"RequestResponses": [{"ErrorCode": c} if c else {"RecordId": "r"}
                                     for c in codes]}


def test_eventbridge_retries_throttled_entries_and_rejects_refused_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamlet.triggers.sinks._pause", lambda attempt: None)
    fake = Scripted(["ThrottlingException", "MalformedDetail", None], [None])
    sink = EventBridgeSink(fake)
    trigger = sink_trigger({"kind": "eventbridge"})
    done = sink.deliver(trigger, [Record("orders", 0, i, None, b"{}", [], TS) for i in range(3)])
    assert list(done.rejected) == [1] and done.ok
    assert [len(call) for call in fake.calls] == [3, 1]


def test_firehose_throttling_past_its_attempts_is_unavailable_not_a_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamlet.triggers.sinks._pause", lambda attempt: None)
    sink = FirehoseSink(Scripted(raise_first=100), "lake")
    with pytest.raises(TargetUnavailable):
        sink.deliver(sink_trigger({"kind": "firehose"}), [Record("orders", 0, 0, None, b"x",
                                                                  [], TS)])


def test_unknown_sinks_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown sink kind"):
        build_sink({"kind": "ftp"}, client)
    with pytest.raises(ValueError, match="unexpected keyword"):
        build_sink({"kind": "s3", "bucket": "b", "surprise": 1}, client)
