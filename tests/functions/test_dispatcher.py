"""The dispatcher function: stream batches, resets, wake-ups and activation, on moto (the
users' functions are a fake Lambda client that records its invocations)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions import api
from functions import dispatcher as fn
from streamlet.admin import Admin
from streamlet.engine import Engine, schema
from streamlet.records import TopicPartition
from streamlet.triggers import TopicDestination, Trigger
from streamlet.triggers.config import dumps
from tests.batches import make_batch

from .conftest import LambdaContext

TP = TopicPartition("orders", 0)


class FakeLambda:
    """Records each invocation; fails (FunctionError) on a poison value."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        event = json.loads(Payload)
        self.events.append({"function": FunctionName, **event})
        values = [base64.b64decode(r["value"]) for rs in event["records"].values() for r in rs]
        if b"poison" in values:
            body = json.dumps({"errorType": "ValueError", "errorMessage": "poison"}).encode()
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(body)}
        return {"StatusCode": 200, "Payload": io.BytesIO(b"null")}

    def offsets(self) -> list[int]:
        return [r["offset"] for e in self.events for rs in e["records"].values() for r in rs]


@pytest.fixture
def lambdas(aws: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLambda]:
    fake = FakeLambda()
    make: Any = boto3.client
    monkeypatch.setattr(fn.client, "factory", lambda service: fake if service == "lambda"
                        else make(service, region_name="us-east-1"))
    fn.client.reset()
    queue = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="wake")
    monkeypatch.setenv(fn.WAKEUP_QUEUE_ENV, queue["QueueUrl"])
    aws.create_topic("orders", 2)
    aws.create_topic("orders.dlq", 1)
    yield fake
    fn.client.reset()


def configure(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
    trigger = Trigger("billing", "orders", function="arn:aws:lambda:us-east-1:1:function:bill",
                      **{"starting_position": "TRIM_HORIZON", "maximum_batching_window_ms": 0,
                         **settings})
    monkeypatch.setenv(fn.TRIGGERS_ENV, dumps([trigger]))


def stream_event(engine: Engine, partition: int, offsets: list[int], name: str = "INSERT",
                 **extra: Any) -> dict[str, Any]:
    ref = engine.topics.get("orders").ref(partition)
    return {"Records": [{"eventID": f"e{o}", "eventName": name, "eventSource": "aws:dynamodb",
                         "dynamodb": {"Keys": ref.batch_key(o)}, **extra} for o in offsets]}


def append(engine: Engine, *values: bytes, partition: int = 0) -> None:
    for value in values:
        engine.append("orders", partition, make_batch([value], ts=int(time.time() * 1000)))


def test_a_stream_batch_invokes_the_function_with_the_kafka_event(
        aws: Engine, lambdas: FakeLambda, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch)
    append(aws, b"a", b"b")
    result = api.dispatcher_handler(stream_event(aws, 0, [0, 1]), LambdaContext())
    assert result == {"sessions": 1, "delivered": 2, "busy": 0}
    (event,) = lambdas.events
    assert event["function"].endswith(":function:bill")
    assert event["eventSource"] == "SelfManagedKafka" and event["bootstrapServers"] == \
        "streamlet://fn"
    assert [r["offset"] for r in event["records"]["orders-0"]] == [0, 1]
    assert aws.groups.lease("billing", TP).committed == 2  # type: ignore[union-attr]


def test_ttl_deletions_and_other_items_wake_nothing(aws: Engine, lambdas: FakeLambda,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch)
    append(aws, b"a")
    ttl = {"userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}
    partition_item = {"Records": [{"eventID": "p", "eventName": "MODIFY",
                                   "eventSource": "aws:dynamodb", "dynamodb": {"Keys": {
                                       "pk": {"S": "orders/x/0"}, "sk": {"S": schema.STATE_SK}}}}]}
    for event in (stream_event(aws, 0, [0], name="REMOVE", **ttl), partition_item):
        assert api.dispatcher_handler(event, LambdaContext())["sessions"] == 0
    assert lambdas.events == []


def test_a_reset_re_drives_the_partition(aws: Engine, lambdas: FakeLambda,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch)
    append(aws, b"a", b"b", b"c")
    api.dispatcher_handler(stream_event(aws, 0, [0, 1, 2]), LambdaContext())
    Admin(transport=aws).reset_offsets("billing", topic="orders", partition=0, to_offset=1,
                                       execute=True)
    lease = aws.groups.lease("billing", TP)
    assert lease is not None and lease.owner is None and lease.metadata == ""
    image = {"committed": {"N": "1"}, "metadata": {"S": ""}, "epoch": {"N": str(lease.epoch)}}
    reset = {"Records": [{"eventID": "g1", "eventName": "MODIFY", "eventSource": "aws:dynamodb",
                          "dynamodb": {"Keys": {"pk": {"S": "group#billing"},
                                                "sk": {"S": schema.lease_sk("orders", 0)}},
                                       "NewImage": image}}]}
    api.dispatcher_handler(reset, LambdaContext())
    assert lambdas.offsets() == [0, 1, 2, 1, 2]


def test_a_long_window_sends_a_wake_up_that_delivers_later(
        aws: Engine, lambdas: FakeLambda, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, maximum_batching_window_ms=5_000, batch_size=100)
    append(aws, b"a")
    api.dispatcher_handler(stream_event(aws, 0, [0]), LambdaContext())
    assert lambdas.events == []
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="wake")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    monkeypatch.setattr(fn.Dispatcher, "now_ms", lambda self: 10**15)  # the window has passed
    wakeup = {"Records": [{"messageId": "m1", "eventSource": "aws:sqs",
                           "body": json.dumps({"trigger": "billing", "partition": 0})}]}
    assert api.dispatcher_handler(wakeup, LambdaContext())["delivered"] == 1


def test_function_errors_are_retried_then_dead_lettered(aws: Engine, lambdas: FakeLambda,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, maximum_retry_attempts=1, on_failure=TopicDestination("orders.dlq"))
    monkeypatch.setattr(fn.Dispatcher, "__init__", _no_backoff(fn.Dispatcher.__init__))
    append(aws, b"poison", b"fine")
    api.dispatcher_handler(stream_event(aws, 0, [0, 1]), LambdaContext())
    assert lambdas.offsets() == [0, 1, 0, 1]  # the batch, once retried, then dead-lettered
    assert aws.watermarks("orders.dlq", 0) == (0, 2)


def _no_backoff(init: Any) -> Any:
    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "backoff_ms": (0, 0)})
    return patched


def test_activation_answers_cloudformation_and_wakes_the_backlog(
        aws: Engine, lambdas: FakeLambda, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch)
    append(aws, b"a", partition=1)
    sent: list[dict[str, Any]] = []

    class Answer:
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def urlopen(request: Any, timeout: float) -> Answer:
        sent.append({"url": request.full_url, "method": request.get_method(),
                     **json.loads(request.data)})
        return Answer()

    monkeypatch.setattr(fn.urllib.request, "urlopen", urlopen)
    event = {"RequestType": "Create", "ResponseURL": "https://cloudformation-custom-resource/x",
             "StackId": "arn:stack", "RequestId": "r1", "LogicalResourceId": "Triggers",
             "ResourceType": "Custom::StreamletTriggers"}
    api.dispatcher_handler(event, LambdaContext())
    (answer,) = sent
    assert (answer["method"], answer["Status"], answer["RequestId"]) == ("PUT", "SUCCESS", "r1")
    assert answer["Data"] == {"billing": "1 partition(s) with a backlog"}
    assert aws.groups.lease("billing", TopicPartition("orders", 0)).committed == 0  # type: ignore[union-attr]
    sqs = boto3.client("sqs", region_name="us-east-1")
    (message,) = sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName="wake")["QueueUrl"])[
        "Messages"]
    assert json.loads(message["Body"]) == {"trigger": "billing", "partition": 1}


def test_sinks_are_built_from_their_settings(aws: Engine, lambdas: FakeLambda,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="lake-bucket")
    trigger = Trigger("lake", "orders", sink={"kind": "s3", "bucket": "lake-bucket"},
                      starting_position="TRIM_HORIZON", maximum_batching_window_ms=0)
    monkeypatch.setenv(fn.TRIGGERS_ENV, dumps([trigger]))
    append(aws, b"a")
    api.dispatcher_handler(stream_event(aws, 0, [0]), LambdaContext())
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="lake-bucket")
    assert [o["Key"].split("/")[0] for o in listed["Contents"]] == ["orders"]
