"""Production through ``produce_handler``: v3 records, records:batch, native batches."""

from __future__ import annotations

import base64
import json
import time

import pytest

from streamlet import wire
from streamlet.codec import decode_batch
from streamlet.engine import Engine
from streamlet.partitioner import murmur2_partition
from tests.batches import make_batch
from tests.functions.conftest import EVENTS, call, event, invoke

R = "/v3/clusters/streamlet/topics/orders/records"


def records(engine: Engine, topic: str, partition: int) -> list:  # type: ignore[type-arg]
    return [r for b in engine.fetch(topic, partition, 0).batches
            for r in decode_batch(topic, partition, b)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_one_record_of_each_type_with_headers_and_timestamp(aws: Engine, orders: str) -> None:
    body = {"key": {"type": "STRING", "data": "user-7"},
            "value": {"type": "JSON", "data": {"n": 1, "s": "é"}},
            "headers": [{"name": "trace", "value": b64(b"\x00\x01")},
                        {"name": "empty", "value": None}],
            "timestamp": "2021-02-05T19:14:42.5Z"}
    reply = call("POST", R, body)
    assert reply.status == 200
    report = reply.json()
    partition = murmur2_partition(b"user-7", 3)
    assert report == {"error_code": 200, "cluster_id": "streamlet", "topic_name": "orders",
                      "partition_id": partition, "offset": 0,
                      "timestamp": "2021-02-05T19:14:42.500Z",
                      "key": {"type": "STRING", "size": 6},
                      "value": {"type": "JSON", "size": len('{"n":1,"s":"é"}'.encode())}}
    [record] = records(aws, "orders", partition)
    assert (record.key, json.loads(record.value), record.timestamp) == (
        b"user-7", {"n": 1, "s": "é"}, 1612552482500)
    assert record.headers == [("trace", b"\x00\x01"), ("empty", None)]
    binary = call("POST", R, {"partition_id": 1, "value": {"type": "BINARY",
                                                           "data": b64(b"\xff\x00")}})
    assert binary.json()["partition_id"] == 1
    assert records(aws, "orders", 1)[-1].value == b"\xff\x00"


def test_log_append_time_topics_report_the_broker_time(aws: Engine) -> None:
    aws.create_topic("stamped", 1, {"message.timestamp.type": "LogAppendTime"})
    body = {"value": {"type": "STRING", "data": "x"}, "timestamp": "2000-01-01T00:00:00Z"}
    report = call("POST", "/v3/clusters/streamlet/topics/stamped/records", body).json()
    assert not report["timestamp"].startswith("2000")


def test_batch_is_207_with_successes_and_failures_by_id(aws: Engine, orders: str) -> None:
    entries = [
        {"id": "a", "key": {"type": "STRING", "data": "k"}, "value": {"type": "STRING",
                                                                     "data": "1"}},
        {"id": "b", "value": {"type": "BINARY", "data": "not base64!"}},
        {"id": "c", "partition_id": 7, "value": {"type": "STRING", "data": "3"}},
        {"id": "d", "key": {"type": "STRING", "data": "k"}, "value": {"type": "JSON",
                                                                     "data": [4]}},
        {"id": "e", "value": {"type": "AVRO", "data": {"f": 1}}},
        {"id": "f", "partition_id": 0, "value": {"type": "STRING", "data": "6"}},
    ]
    reply = call("POST", f"{R}:batch", {"entries": entries})
    assert reply.status == 207
    out = reply.json()
    assert [s["id"] for s in out["successes"]] == ["a", "d", "f"]
    assert {f["id"]: f["error_code"] for f in out["failures"]} == {"b": 400, "c": 404, "e": 400}
    keyed = [s for s in out["successes"] if s["id"] in "ad"]
    assert keyed[0]["partition_id"] == keyed[1]["partition_id"] == murmur2_partition(b"k", 3)
    assert [s["offset"] for s in keyed] == [0, 1]  # one batch per partition, in entry order
    assert [r.value for r in records(aws, "orders", keyed[0]["partition_id"])] == [b"1", b"[4]"]
    assert [r.value for r in records(aws, "orders", 0)][-1] == b"6"


def test_batch_level_errors(aws: Engine, orders: str) -> None:
    dup = {"entries": [{"id": "x"}, {"id": "x"}]}
    assert call("POST", f"{R}:batch", dup).json()["error_code"] == 40002
    assert call("POST", f"{R}:batch", {"entries": []}).status == 400
    missing = call("POST", "/v3/clusters/streamlet/topics/nope/records:batch",
                   {"entries": [{"id": "1"}]})
    assert (missing.status, missing.json()["error_code"]) == (404, 40401)
    assert aws.watermarks("orders", 0) == (0, 0)


def test_native_round_trip_is_byte_identical(aws: Engine, orders: str) -> None:
    batch = make_batch([b"a", b"\x00\xff", b"c"], codec="zstd")
    captured = json.loads((EVENTS / "post_binary.json").read_text())
    captured["body"] = b64(batch)
    captured["requestContext"]["timeEpoch"] = int(time.time() * 1000)  # received just now
    appended = invoke(captured).json()
    assert appended == {"base_offset": 0, "last_offset": 2, "log_append_time": -1,
                        "log_start_offset": 0, "duplicate": False}
    second = make_batch([b"d"])
    assert call("POST", "/v1/topics/orders/partitions/0/batches", second,
                query={"expected_offset": 3}).json()["base_offset"] == 3
    fetched = call("GET", "/v1/topics/orders/partitions/0/batches", query={"offset": 0})
    assert fetched.headers["Content-Type"] == "application/octet-stream"
    assert fetched.headers["X-Streamlet-High-Watermark"] == "4"
    stored = aws.fetch("orders", 0, 0).batches
    assert fetched.body == b"".join(stored)
    assert fetched.body[8:len(batch)] == batch[8:]  # only the base offset was patched


def test_native_append_errors_write_nothing(aws: Engine, orders: str) -> None:
    path = "/v1/topics/orders/partitions/0/batches"
    good = make_batch([b"x"])
    cases = [
        (call("POST", path, good, query={"expected_offset": 5}), 412, 41201),
        (call("POST", path, b"garbage"), 400, 40002),
        (call("POST", path, good[:-1] + bytes([good[-1] ^ 1])), 400, 40002),
        (call("POST", "/v1/topics/orders/partitions/3/batches", good), 404, 40402),
        (call("POST", "/v1/topics/nope/partitions/0/batches", good), 404, 40401),
        (call("POST", path, good, query={"expected_offset": "x"}), 400, 40002),
    ]
    for reply, status, code in cases:
        assert (reply.status, reply.json()["error_code"]) == (status, code), reply.json()
    assert aws.watermarks("orders", 0) == (0, 0)


def test_a_native_append_starts_no_write_past_its_deadline(aws: Engine, orders: str) -> None:
    """An append still running APPEND_DEADLINE_MS after API Gateway received it writes
    nothing more: a client left without a reply retries only after that."""
    late = event("POST", "/v1/topics/orders/partitions/0/batches", make_batch([b"late"]))
    late["requestContext"]["timeEpoch"] -= wire.APPEND_DEADLINE_MS + 1000
    reply = invoke(late)
    assert (reply.status, reply.json()["code"]) == (504, "request_timed_out")
    assert aws.watermarks("orders", 0) == (0, 0)
    assert call("POST", "/v1/topics/orders/partitions/0/batches",
                make_batch([b"on time"])).json()["base_offset"] == 0


@pytest.mark.parametrize("size", [6 * 1024 * 1024 + 1, 2 * 1024 * 1024])
def test_oversized_bodies_are_413(aws: Engine, size: int) -> None:
    aws.create_topic("big", 1, {"max.message.bytes": 1024 * 1024})
    reply = call("POST", "/v1/topics/big/partitions/0/batches", make_batch([b"x" * size]))
    assert (reply.status, reply.json()["error_code"]) == (413, 41301)
    assert aws.watermarks("big", 0) == (0, 0)


def test_oversized_headers_are_refused(aws: Engine, orders: str) -> None:
    reply = call("POST", R, {"value": {"type": "STRING", "data": "x"}},
                 headers={"x-padding": "p" * 11_000})
    assert (reply.status, reply.json()["error_code"]) == (431, 43101)
    assert aws.watermarks("orders", 0) == (0, 0)


def test_producer_ids_are_unique(aws: Engine) -> None:
    ids = [call("POST", "/v1/producer-ids").json()["producer_id"] for _ in range(3)]
    assert len(set(ids)) == 3
