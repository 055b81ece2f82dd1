"""The local platform's moto patch keeps transactions all-or-nothing, at O(items) cost."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from streamlet.local import serialized_moto


@pytest.fixture
def table():  # type: ignore[no-untyped-def]
    with mock_aws(), serialized_moto():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        client.put_item(TableName="t", Item={"pk": {"S": "b"}, "n": {"N": "1"}})
        yield client


def items(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {i["pk"]["S"]: i["n"]["N"] for i in client.scan(TableName="t")["Items"]}


def test_a_failed_transaction_leaves_nothing_behind(table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as info:
        table.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}},
                        "UpdateExpression": "SET n = :n", "ExpressionAttributeValues":
                            {":n": {"N": "2"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "c"}, "n": {"N": "9"}}}},
            {"Delete": {"TableName": "t", "Key": {"pk": {"S": "b"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "d"}},
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])
    reasons = [r["Code"] for r in info.value.response["CancellationReasons"]]
    assert reasons[3] == "ConditionalCheckFailed"
    assert items(table) == {"a": "1", "b": "1"}


def test_a_successful_transaction_applies_everything(table) -> None:  # type: ignore[no-untyped-def]
    table.transact_write_items(TransactItems=[
        {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET n = :n",
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": {":n": {"N": "2"}, ":one": {"N": "1"}}}},
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "c"}, "n": {"N": "9"}}}},
    ])
    assert items(table) == {"a": "2", "b": "1", "c": "9"}


def test_append_cost_does_not_grow_with_the_table(table) -> None:  # type: ignore[no-untyped-def]
    def batch(start: int) -> float:
        began = time.perf_counter()
        for i in range(start, start + 100):
            table.transact_write_items(TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": f"k{i}"}, "n": {"N": "1"}}}}])
        return time.perf_counter() - began

    # the fastest of three, early and late: a loaded machine slows single batches at random
    first = min(batch(start) for start in (0, 100, 200))
    for start in range(300, 2000, 100):
        batch(start)
    last = min(batch(start) for start in (2000, 2100, 2200))
    assert last < first * 3  # moto's whole-table backup made this ~10x slower
