"""The naive baseline: one DynamoDB PutItem per record, keyed by partition and offset."""

from __future__ import annotations

from typing import Any

NAIVE_TABLE = "bench-naive"


def create_naive_table(ddb: Any) -> None:
    """A table keyed like a log: ``pk`` (topic/partition) and ``offset``."""
    if NAIVE_TABLE in ddb.list_tables().get("TableNames", []):
        return
    ddb.create_table(
        TableName=NAIVE_TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "offset", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "offset", "AttributeType": "N"}],
    )
    ddb.get_waiter("table_exists").wait(TableName=NAIVE_TABLE)


def naive_item(pk: str, offset: int, key: bytes, value: bytes, ts: int) -> dict[str, Any]:
    """One record as one item: partition, offset, key, timestamp and value."""
    return {"pk": {"S": pk}, "offset": {"N": str(offset)}, "key": {"B": key},
            "ts": {"N": str(ts)}, "value": {"B": value}}


def put_records(ddb: Any, pk: str, keys: list[bytes], values: list[bytes], ts: int) -> None:
    """Write each record with its own (non-transactional) PutItem, in order."""
    for offset, (key, value) in enumerate(zip(keys, values, strict=True)):
        ddb.put_item(TableName=NAIVE_TABLE, Item=naive_item(pk, offset, key, value, ts + offset))
