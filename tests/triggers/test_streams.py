"""Stream records as signals: batch inserts wake a partition, TTL and other removals never do,
a reset lease re-drives its group, and the Lambda filter patterns say the same."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from streamlet.admin import Admin
from streamlet.engine import Engine, schema
from streamlet.engine.streams import (
    Redrive,
    Signal,
    enable_streams,
    log_filter,
    redrive,
    redrive_filter,
    signal,
)
from streamlet.records import TopicPartition

from .helpers import produce


def record(event: str, pk: str, sk: str, **extra: Any) -> dict[str, Any]:
    return {"eventName": event, "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}},
            **extra}


TTL = {"userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}


def test_only_new_batch_items_are_signals() -> None:
    batch = schema.batch_sk(120)
    assert signal(record("INSERT", "orders/abc/3", batch)) == Signal("orders", 3, 120)
    assert signal(record("INSERT", "a/b/c/abc/0", batch)) == Signal("a/b/c", 0, 120)
    assert signal(record("REMOVE", "orders/abc/3", batch)) is None
    assert signal(record("REMOVE", "orders/abc/3", batch, **TTL)) is None
    assert signal(record("INSERT", "orders/abc/3", batch, **TTL)) is None
    assert signal(record("MODIFY", "orders/abc/3", schema.STATE_SK)) is None
    assert signal(record("INSERT", "orders/abc/3", schema.segment_sk(9))) is None
    assert signal(record("INSERT", "orders/abc/x", batch)) is None
    assert signal({"eventName": "INSERT"}) is None


def test_a_reset_lease_is_a_redrive_and_a_dispatcher_commit_is_not() -> None:
    keys = {"pk": {"S": "group#billing"}, "sk": {"S": schema.lease_sk("orders.eu", 7)}}

    def modified(image: dict[str, Any]) -> dict[str, Any]:
        return {"eventName": "MODIFY", "dynamodb": {"Keys": keys, "NewImage": image}}

    reset = {"committed": {"N": "5"}, "metadata": {"S": ""}, "epoch": {"N": "3"}}
    assert redrive(modified(reset)) == Redrive("billing", "orders.eu", 7)
    assert redrive(modified({**reset, "owner": {"S": "dispatcher.idle.0"}})) is None
    assert redrive(modified({**reset, "metadata": {"S": "trigger"}})) is None
    assert redrive(modified({"epoch": {"N": "0"}})) is None  # a new lease item
    assert redrive({"eventName": "REMOVE", "dynamodb": {"Keys": keys}}) is None


def test_filter_patterns_name_the_triggered_topics_and_groups() -> None:
    pattern = log_filter(["orders", "clicks", "orders"])
    assert pattern["eventName"] == ["INSERT"]
    assert pattern["dynamodb"]["Keys"]["pk"]["S"] == [{"prefix": "clicks/"},
                                                      {"prefix": "orders/"}]
    reset = redrive_filter(["billing"])
    assert reset["dynamodb"]["Keys"]["pk"]["S"] == ["group#billing"]
    assert reset["dynamodb"]["NewImage"]["owner"] == {"S": [{"exists": False}]}


def test_the_streams_of_a_real_table_say_the_same(engine: Engine) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", region_name="us-east-1",
                           config=Config(account_id_endpoint_mode="disabled"))
    log_arn, groups_arn = enable_streams(ddb, engine.names)
    assert enable_streams(ddb, engine.names) == (log_arn, groups_arn)  # idempotent
    engine.create_topic("orders", 1)
    produce(engine, "orders", 0, range(3), per_batch=2)
    engine.groups.ensure_leases("billing", [TopicPartition("orders", 0)])
    Admin(transport=engine).reset_offsets("billing", topic="orders", to_offset=1,
                                          execute=True)

    def read(arn: str) -> list[dict[str, Any]]:
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return [dict(r) for r in streams.get_records(ShardIterator=iterator)["Records"]]

    assert [s for s in map(signal, read(log_arn)) if s] == [Signal("orders", 0, 0),
                                                            Signal("orders", 0, 2)]
    assert [r for r in map(redrive, read(groups_arn)) if r] == [Redrive("billing", "orders", 0)]
