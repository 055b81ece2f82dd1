"""The event is Lambda's self-managed Kafka event: Powertools' Kafka utilities read it as is,
and their partial batch responses drive the retries."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEvent
from aws_lambda_powertools.utilities.kafka import ConsumerRecords, SchemaConfig, kafka_consumer
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import KafkaSelfManagedEventModel

from streamlet.codec import BatchBuilder
from streamlet.engine import Engine
from streamlet.fetching import fetch_records
from streamlet.records import Record, TimestampType, TopicPartition
from streamlet.triggers import Dispatcher, FunctionTarget, TopicDeadLetters, Trigger
from streamlet.triggers.config import TopicDestination
from streamlet.triggers.event import kafka_event, read_answer
from streamlet.triggers.targets import LocalContext

RECORD = Record("orders", 2, 41, b"alice", b'{"item": 1}', [("trace", b"abc"), ("none", None)],
                1_700_000_000_000, TimestampType.LOG_APPEND_TIME)


def test_the_event_has_the_self_managed_kafka_shape() -> None:
    event = kafka_event([RECORD, Record("orders", 2, 42, None, b"", [], 5)],
                        "streamlet://acme")
    assert event["eventSource"] == "SelfManagedKafka"
    assert event["bootstrapServers"] == "streamlet://acme"
    first, second = event["records"]["orders-2"]
    assert first == {"topic": "orders", "partition": 2, "offset": 41,
                     "timestamp": 1_700_000_000_000, "timestampType": "LOG_APPEND_TIME",
                     "key": base64.b64encode(b"alice").decode(),
                     "value": base64.b64encode(b'{"item": 1}').decode(),
                     "headers": [{"trace": [97, 98, 99]}, {"none": []}]}
    assert "key" not in second and second["value"] == ""
    assert second["timestampType"] == "CREATE_TIME"
    tombstone = kafka_event([Record("orders", 0, 1, b"k", None, [], 5)], "s")
    assert tombstone["records"]["orders-0"][0]["value"] is None  # as Lambda sends it
    # Powertools' own models accept it
    parsed = parse(event=kafka_event([RECORD], "streamlet://acme"),
                   model=KafkaSelfManagedEventModel)
    assert parsed.records["orders-2"][0].key == b"alice"
    first_record = next(KafkaEvent(event).records)
    assert first_record.decoded_key == b"alice" and first_record.json_value == {"item": 1}
    assert first_record.decoded_headers["trace"] == b"abc"


@pytest.mark.parametrize(("payload", "failed_from", "whole"), [
    (None, None, False), ({}, None, False), ({"batchItemFailures": []}, None, False),
    ({"batchItemFailures": None}, None, False),
    ({"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 2}},
                            {"itemIdentifier": {"partition": "orders-0", "offset": 1}}]},
     1, False),
    ({"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 0}}]},
     0, False),
    ({"batchItemFailures": [{"itemIdentifier": None}]}, 0, True),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, 0, True),
    ({"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 9}}]},
     0, True),
    ({"batchItemFailures": [{"itemIdentifier": {"partition": "other-0", "offset": 1}}]},
     0, True),
    ({"batchItemFailures": [{"identifier": {"partition": "orders-0", "offset": 1}}]}, 0, True),
    ({"batchItemFailures": "yes"}, 0, True),
])
def test_partial_batch_responses_follow_lambdas_rules(payload: Any, failed_from: int | None,
                                                      whole: bool) -> None:
    batch = [Record("orders", 0, i, None, b"v", [], 0) for i in range(3)]
    answer = read_answer(payload, batch, report_failures=True)
    assert (answer.failed_from, answer.whole) == (failed_from, whole)


def test_partial_responses_are_ignored_unless_reported() -> None:
    batch = [Record("orders", 0, 0, None, b"v", [], 0)]
    failing = {"batchItemFailures": [{"itemIdentifier": None}]}
    assert read_answer(failing, batch, report_failures=False).ok


# ---- handlers written with Powertools, run by the dispatcher -----------------------------

seen: list[tuple[int, int, Any, bytes]] = []


@kafka_consumer(schema_config=SchemaConfig(value_schema_type="JSON"))
def powertools_handler(event: ConsumerRecords, context: Any) -> dict[str, int]:
    for record in event.records:
        seen.append((record.partition, record.offset, record.value, record.headers["source"]))
    return {"statusCode": 200}


processor = BatchProcessor(event_type=EventType.Kafka)


def record_handler(record: Any) -> None:
    if record.json_value.get("poison"):
        raise ValueError(f"poison at {record.offset}")
    seen.append((record.partition, record.offset, record.json_value, b""))


def partial_handler(event: dict[str, Any], context: Any) -> Any:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)


def produce(engine: Engine, topic: str, values: list[dict[str, Any]]) -> None:
    for value in values:
        builder = BatchBuilder("none", 1 << 16)
        builder.append(b"k", json.dumps(value).encode(), [("source", b"test")], 1_000)
        engine.append(topic, 0, builder.build(-1, -1, -1))


def test_a_powertools_kafka_consumer_handler_runs_unchanged(engine: Engine) -> None:
    engine.create_topic("orders", 1)
    produce(engine, "orders", [{"n": i} for i in range(5)])
    seen.clear()
    trigger = Trigger("pt", "orders", function="tests:powertools_handler", batch_size=2,
                      starting_position="TRIM_HORIZON", maximum_batching_window_ms=0)
    dispatcher = Dispatcher(engine, [trigger],
                            {"pt": FunctionTarget(powertools_handler, "streamlet://test")},
                            token="t1")
    result = dispatcher.dispatch("pt", 0)
    assert (result.delivered, result.invocations, result.error) == (5, 3, "")
    assert seen == [(0, i, {"n": i}, b"test") for i in range(5)]
    assert engine.groups.lease("pt", TopicPartition("orders", 0)).committed == 5  # type: ignore[union-attr]


def test_powertools_batch_processor_partial_responses_retry_only_the_failures(
        engine: Engine) -> None:
    engine.create_topic("orders", 1)
    engine.create_topic("orders.dlq", 1)
    produce(engine, "orders", [{"n": 0}, {"n": 1}, {"poison": True}, {"n": 3}])
    seen.clear()
    trigger = Trigger("partial", "orders", function="tests:partial_handler", batch_size=10,
                      starting_position="TRIM_HORIZON", maximum_batching_window_ms=0,
                      report_batch_item_failures=True, maximum_retry_attempts=1,
                      on_failure=TopicDestination("orders.dlq"))
    dispatcher = Dispatcher(engine, [trigger],
                            {"partial": FunctionTarget(partial_handler, "streamlet://t")},
                            {"partial": TopicDeadLetters(engine)}, token="t1",
                            backoff_ms=(0, 0))
    result = dispatcher.dispatch("partial", 0)
    # 0 and 1 succeed once; 2 fails twice (the first try and 1 retry, 3 riding behind it
    # each time), then 2 and 3 go to the dead-letter topic with their coordinates
    assert [s[1] for s in seen] == [0, 1, 3, 3]
    assert (result.invocations, result.delivered, result.dead_lettered) == (2, 2, 2)
    dead = fetch_records(engine, TopicPartition("orders.dlq", 0), 0, "earliest", 1 << 20).records
    assert [(r.header("streamlet.dlq.offset"), r.header("streamlet.dlq.attempts"))
            for r in dead] == [(b"2", b"2"), (b"3", b"2")]


def test_local_context_carries_what_powertools_reads() -> None:
    context = LocalContext("billing", timeout_s=3)
    assert context.invoked_function_arn.endswith(":function:billing")
    assert 0 < context.get_remaining_time_in_millis() <= 3000
