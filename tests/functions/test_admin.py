"""REST Proxy v3 administration through ``admin_handler``."""

from __future__ import annotations

import json

from streamlet.engine import Engine
from tests.batches import make_batch
from tests.functions.conftest import EVENTS, call, invoke

T = "/v3/clusters/streamlet/topics"
BASE = "https://abc123.execute-api.us-east-1.amazonaws.com"


def test_captured_create_event_creates_a_topic(aws: Engine) -> None:
    reply = invoke(json.loads((EVENTS / "post_json.json").read_text()))
    assert reply.status == 201
    topic = reply.json()
    assert (topic["kind"], topic["topic_name"], topic["partitions_count"]) == (
        "KafkaTopic", "orders", 3)
    assert topic["metadata"]["self"] == (
        "https://abc123.execute-api.us-east-1.amazonaws.com/v3/clusters/streamlet/topics/orders")
    assert aws.describe_topic("orders").partitions == 3


def test_clusters() -> None:
    listing = call("GET", "/v3/clusters").json()
    assert listing["kind"] == "KafkaClusterList"
    assert [c["cluster_id"] for c in listing["data"]] == ["streamlet"]
    assert call("GET", "/v3/clusters/streamlet").json()["kind"] == "KafkaCluster"
    missing = call("GET", "/v3/clusters/lkc-123")
    assert (missing.status, missing.json()["error_code"]) == (404, 404)


def test_topic_lifecycle(aws: Engine) -> None:
    body = {"topic_name": "events", "partitions_count": 2,
            "configs": [{"name": "retention.ms", "value": "60000"},
                        {"name": "max.message.bytes", "value": 4096}]}
    assert call("POST", T, body).status == 201
    assert [t["topic_name"] for t in call("GET", T).json()["data"]] == ["events"]
    assert call("GET", f"{T}/events").json()["partitions_count"] == 2
    grown = call("PATCH", f"{T}/events", {"partitions_count": 5})
    assert (grown.status, grown.json()["partitions_count"]) == (200, 5)
    configs = {c["name"]: c for c in call("GET", f"{T}/events/configs").json()["data"]}
    assert configs["retention.ms"]["value"] == "60000"
    assert not configs["retention.ms"]["is_default"] and configs["segment.ms"]["is_default"]
    parts = call("GET", f"{T}/events/partitions").json()["data"]
    assert [(p["partition_id"], p["high_watermark"]) for p in parts] == [(i, 0) for i in range(5)]
    assert call("GET", f"{T}/events/partitions/4").json()["partition_id"] == 4
    assert call("DELETE", f"{T}/events").status == 204
    assert call("GET", f"{T}/events").status == 404
    assert aws.list_topics() == []


def test_validate_only_writes_nothing(aws: Engine) -> None:
    body = {"topic_name": "dry", "partitions_count": 4, "validate_only": True}
    reply = call("POST", T, body)
    assert (reply.status, reply.json()["partitions_count"]) == (200, 4)
    assert aws.list_topics() == []
    aws.create_topic("dry")
    assert call("POST", T, body).json()["message"] == "Topic 'dry' already exists."


def test_admin_errors_are_rest_proxy_bodies(aws: Engine) -> None:
    cases = [
        (call("GET", f"{T}/nope"), 404, 40401),
        (call("GET", f"{T}/nope/partitions/0"), 404, 40401),
        (call("POST", T, {"topic_name": "bad name!"}), 400, 40002),
        (call("POST", T, {"topic_name": "x", "partitions_count": "3"}), 400, 40002),
        (call("POST", T, {"topic_name": "x", "configs": [{"name": "nope", "value": "1"}]}),
         400, 40002),
        (call("POST", T, "{not json"), 400, 40002),
        (call("PATCH", f"{T}/nope", {"partitions_count": 2}), 404, 40401),
        (call("GET", "/v3/nowhere"), 404, 404),
    ]
    for reply, status, code in cases:
        body = reply.json()
        assert (reply.status, body["error_code"]) == (status, code), body
        assert isinstance(body["message"], str) and body["message"]
    aws.create_topic("small", 2)
    shrink = call("PATCH", f"{T}/small", {"partitions_count": 1})
    assert (shrink.status, shrink.json()["code"]) == (400, "invalid_partitions")
    assert call("GET", f"{T}/small/partitions/2").json()["error_code"] == 40402
    assert aws.list_topics() == ["small"]


def test_partition_offsets_are_the_watermarks(aws: Engine) -> None:
    aws.create_topic("events", 2)
    aws.append("events", 1, make_batch([b"a", b"b", b"c"]))
    reply = call("GET", f"{T}/events/partitions/1/offset")
    assert reply.status == 200
    assert reply.json() == {
        "kind": "KafkaPartitionWithOffsets",
        "metadata": {"self": f"{BASE}{T}/events/partitions/1/offset", "resource_name":
                     "crn:///kafka=streamlet/topic=events/partition=1/"
                     "offset_type=earliest_and_latest"},
        "cluster_id": "streamlet", "topic_name": "events", "partition_id": 1,
        "earliest_offset": 0, "latest_offset": 3}
    for kind in ("earliest", "latest"):
        body = call("GET", f"{T}/events/partitions/1/offset", query={"offset_type": kind}).json()
        assert (body["earliest_offset"], body["latest_offset"]) == (0, 3), kind
        assert body["metadata"]["resource_name"].endswith(f"offset_type={kind}")
    cases = [(call("GET", f"{T}/events/partitions/1/offset", query={"offset_type": "oldest"}),
              400, 40002),
             (call("GET", f"{T}/events/partitions/2/offset"), 404, 40402),
             (call("GET", f"{T}/nope/partitions/0/offset"), 404, 40401),
             (call("GET", "/v3/clusters/lkc-1/topics/events/partitions/0/offset"), 404, 404)]
    for reply, status, code in cases:
        assert (reply.status, reply.json()["error_code"]) == (status, code), reply.json()


def test_relationships_lead_to_resources_and_broker_level_ones_to_empty_lists(
        aws: Engine) -> None:
    aws.create_topic("events", 2)
    cluster = call("GET", "/v3/clusters/streamlet").json()
    assert "controller" not in cluster  # no broker controls the cluster
    topic = call("GET", f"{T}/events").json()
    partition = call("GET", f"{T}/events/partitions/0").json()
    assert "leader" not in partition  # no broker leads a partition
    empty = {"brokers": "KafkaBrokerList", "broker_configs": "KafkaClusterConfigList",
             "acls": "KafkaAclList", "partition_reassignments": "KafkaReassignmentList"}
    for name, kind in empty.items():
        listing = call("GET", cluster[name]["related"].removeprefix(BASE)).json()
        assert (listing["kind"], listing["data"]) == (kind, []), name
    for link in (topic["partition_reassignments"], partition["reassignment"],
                 partition["replicas"]):
        listing = call("GET", link["related"].removeprefix(BASE))
        assert (listing.status, listing.json()["data"]) == (200, []), link
    for link in (cluster["topics"], cluster["consumer_groups"], topic["partitions"],
                 topic["configs"]):
        assert call("GET", link["related"].removeprefix(BASE)).status == 200, link
    missing = [(f"{T}/nope/partitions/-/reassignment", 40401),
               (f"{T}/events/partitions/2/replicas", 40402),
               ("/v3/clusters/lkc-1/brokers", 404), ("/v3/clusters/lkc-1/acls", 404)]
    for path, code in missing:
        reply = call("GET", path)
        assert (reply.status, reply.json()["error_code"]) == (404, code), path
