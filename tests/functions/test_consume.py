"""Consumption through ``consume_handler``: native fetch (long-poll), offsets, metadata,
and REST Proxy v2 consumer instances whose state lives in DynamoDB."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from functions import _runtime
from streamlet.engine import Engine
from tests.batches import make_batch
from tests.functions.conftest import call

F = "/v1/topics/orders/partitions/0/batches"
C = "/consumers/billing"
I = f"{C}/instances/c1"  # noqa: E741


def test_long_poll_returns_as_soon_as_data_arrives(aws: Engine, orders: str) -> None:
    def produce_later() -> None:
        time.sleep(0.4)
        aws.append("orders", 0, make_batch([b"late"]))

    writer = threading.Thread(target=produce_later)
    started = time.monotonic()
    writer.start()
    reply = call("GET", F, query={"offset": 0, "wait_ms": 10_000})
    elapsed = time.monotonic() - started
    writer.join()
    assert reply.status == 200 and reply.body
    assert reply.headers["X-Streamlet-High-Watermark"] == "1"
    assert 0.3 < elapsed < 5


def test_long_poll_gives_up_empty_after_wait_ms(aws: Engine, orders: str) -> None:
    started = time.monotonic()
    reply = call("GET", F, query={"offset": 0, "wait_ms": 300})
    assert 0.25 < time.monotonic() - started < 3
    assert (reply.status, reply.body) == (200, b"")
    assert reply.headers["X-Streamlet-Log-Start-Offset"] == "0"


def test_fetch_limits_offsets_and_metadata(aws: Engine, orders: str) -> None:
    for i in range(3):
        aws.append("orders", 0, make_batch([b"a", b"b"], ts=1_000 * (i + 1)))
    one = call("GET", F, query={"offset": 2, "max_records": 1})
    assert len(one.body) == len(aws.fetch("orders", 0, 2).batches[0])
    assert call("GET", "/v1/topics/orders/partitions/0/offsets").json() == {"low": 0, "high": 6}
    at = call("GET", "/v1/topics/orders/partitions/0/offsets", query={"timestamp": 2_000})
    assert at.json() == {"offset": 2}
    late = call("GET", "/v1/topics/orders/partitions/0/offsets", query={"timestamp": 10**12})
    assert late.json() == {"offset": None}
    meta = call("GET", "/v1/topics/orders").json()
    assert (meta["name"], meta["partitions"]) == ("orders", 3)
    assert meta["config"]["retention.ms"] == "604800000" and "partition_info" not in meta
    out_of_range = call("GET", F, query={"offset": 7})
    assert (out_of_range.status, out_of_range.json()["error_code"]) == (416, 41601)


def fresh_container() -> None:
    """Another Lambda container: nothing in memory survives, only DynamoDB does."""
    _runtime.reset()


def test_v2_instance_lifecycle_survives_a_fresh_container(aws: Engine, orders: str) -> None:
    for p in range(2):
        aws.append("orders", p, make_batch([f"p{p}-{i}".encode() for i in range(3)],
                                           key=b"k"))
    created = call("POST", C, {"name": "c1", "format": "binary",
                               "auto.offset.reset": "earliest"},
                   headers={"content-type": "application/vnd.kafka.v2+json"})
    assert created.json() == {"instance_id": "c1", "base_uri": (
        "https://abc123.execute-api.us-east-1.amazonaws.com/consumers/billing/instances/c1")}
    parts = [{"topic": "orders", "partition": p} for p in range(2)]
    assert call("POST", f"{I}/assignments", {"partitions": parts}).status == 204
    fresh_container()
    assert call("GET", f"{I}/assignments").json() == {"partitions": parts}
    first = call("GET", f"{I}/records", query={"timeout": 0, "max_bytes": 1})
    assert first.headers["Content-Type"] == "application/vnd.kafka.binary.v2+json"
    rows = first.json()  # max_bytes bounds the response: one record (never none)
    assert [(r["partition"], r["offset"]) for r in rows] == [(0, 0)]
    assert base64.b64decode(rows[0]["value"]) == b"p0-0"
    assert base64.b64decode(rows[0]["key"]) == b"k"
    fresh_container()
    rest = call("GET", f"{I}/records", query={"timeout": 0}).json()
    assert [(r["partition"], r["offset"]) for r in rest] == [
        (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]  # from inside the batch it stopped in
    assert call("GET", f"{I}/records", query={"timeout": 0}).json() == []
    seek = {"offsets": [{"topic": "orders", "partition": 0, "offset": 1}]}
    assert call("POST", f"{I}/positions", seek).status == 204
    fresh_container()
    assert [r["offset"] for r in call("GET", f"{I}/records", query={"timeout": 0}).json()] \
        == [1, 2]
    assert call("POST", f"{I}/positions/beginning", {"partitions": parts[1:]}).status == 204
    assert len(call("GET", f"{I}/records", query={"timeout": 0}).json()) == 3
    assert call("DELETE", I).status == 204
    gone = call("GET", f"{I}/records")
    assert (gone.status, gone.json()["error_code"]) == (404, 40403)


def test_v2_json_format_latest_reset_and_end(aws: Engine, orders: str) -> None:
    aws.append("orders", 0, make_batch([b'{"old": true}']))
    call("POST", C, {"name": "j", "format": "json"})
    inst = f"{C}/instances/j"
    call("POST", f"{inst}/assignments", {"partitions": [{"topic": "orders", "partition": 0}]})
    assert call("GET", f"{inst}/records", query={"timeout": 0}).json() == []  # latest
    aws.append("orders", 0, make_batch([b'{"new": 1}']))
    rows = call("GET", f"{inst}/records", query={"timeout": 0}).json()
    assert [(r["value"], r["offset"]) for r in rows] == [({"new": 1}, 1)]
    ends = {"partitions": [{"topic": "orders", "partition": 0}]}
    assert call("POST", f"{inst}/positions/end", ends).status == 204
    aws.append("orders", 0, make_batch([b"not json"]))
    bad = call("GET", f"{inst}/records", query={"timeout": 0})
    assert (bad.status, bad.json()["error_code"]) == (422, 42201)


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("POST", C, {"name": "c1", "format": "avro"}, 400, 40002),
    ("POST", C, {"name": "dup"}, 409, 40902),
    ("POST", f"{C}/instances/dup/assignments",
     {"partitions": [{"topic": "nope", "partition": 0}]}, 404, 40401),
    ("POST", f"{C}/instances/dup/assignments",
     {"partitions": [{"topic": "orders", "partition": 9}]}, 404, 40402),
    ("POST", f"{C}/instances/dup/positions",
     {"offsets": [{"topic": "orders", "partition": 0, "offset": 1}]}, 400, 40002),
    ("POST", f"{C}/instances/dup/positions",
     {"offsets": [{"topic": "orders", "partition": 0, "offset": -1}]}, 400, 40002),
    ("POST", f"{C}/instances/ghost/positions/end", {"partitions": []}, 404, 40403),
    ("DELETE", f"{C}/instances/ghost", None, 404, 40403),
])
def test_v2_errors(aws: Engine, orders: str, method: str, path: str, body: object,
                   status: int, code: int) -> None:
    call("POST", C, {"name": "dup"})
    reply = call(method, path, body)
    assert (reply.status, reply.json()["error_code"]) == (status, code), reply.json()


def test_instance_state_is_one_item_in_the_groups_table(aws: Engine, orders: str) -> None:
    call("POST", C, {"name": "c9", "format": "binary", "auto.offset.reset": "earliest"})
    item = aws._ddb.get_item(TableName=aws.names.groups_table, Key={
        "pk": {"S": "group#billing"}, "sk": {"S": "instance#c9"}})["Item"]
    assert int(item["expires_at"]["N"]) > time.time()
    assert json.loads(json.dumps(item["format"])) == {"S": "binary"}
