"""REST Proxy v3 consumer groups (read-only) through ``admin_handler``."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from streamlet.engine import Engine
from streamlet.groups.leases import Member
from tests.functions.conftest import NAMES, call, with_groups

BASE = "https://abc123.execute-api.us-east-1.amazonaws.com"
G = "/v3/clusters/streamlet/consumer-groups"


@pytest.fixture
def groups(aws: Engine, orders: str) -> Engine:
    """``g``: member m-1 owns orders/0 (committed 2 of 5); orders/1 committed 2 of 2 and
    released; orders/2 never committed. ``idle``: leases only, no member."""
    return with_groups(aws, orders)


def _stored(engine: Engine) -> Any:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    tables = {t: sorted(map(repr, ddb.scan(TableName=t)["Items"]))
              for t in ddb.list_tables()["TableNames"]}
    objects = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=NAMES.bucket).get("Contents", []))
    return tables, objects


def test_list_and_get_groups(groups: Engine) -> None:
    listing = call("GET", G).json()
    assert (listing["kind"], listing["metadata"]["self"]) == ("KafkaConsumerGroupList",
                                                             f"{BASE}{G}")
    assert [(g["consumer_group_id"], g["state"]) for g in listing["data"]] == [
        ("g", "STABLE"), ("idle", "EMPTY")]
    group = call("GET", f"{G}/g").json()
    assert group == {
        "kind": "KafkaConsumerGroup",
        "metadata": {"self": f"{BASE}{G}/g",
                     "resource_name": "crn:///kafka=streamlet/consumer-group=g"},
        "cluster_id": "streamlet", "consumer_group_id": "g", "is_simple": False,
        "partition_assignor": "cooperative-sticky", "state": "STABLE", "type": "CLASSIC",
        "is_mixed_consumer_group": False,
        "coordinator": {"related": f"{BASE}/v3/clusters/streamlet/brokers"},  # empty list
        "consumers": {"related": f"{BASE}{G}/g/consumers"},
        "lag_summary": {"related": f"{BASE}{G}/g/lag-summary"}}
    assert call("GET", f"{G}/idle").json()["state"] == "EMPTY"


def test_consumers(groups: Engine) -> None:
    listing = call("GET", f"{G}/g/consumers").json()
    assert listing["kind"] == "KafkaConsumerList"
    assert listing["data"] == [{
        "kind": "KafkaConsumer",
        "metadata": {"self": f"{BASE}{G}/g/consumers/m-1",
                     "resource_name": "crn:///kafka=streamlet/consumer-group=g/consumer=m-1"},
        "cluster_id": "streamlet", "consumer_group_id": "g", "consumer_id": "m-1",
        "instance_id": "inst-1", "client_id": "cli", "host": "10.0.0.1",
        "assignments": {"related": f"{BASE}{G}/g/consumers/m-1/assignments"}}]
    assert call("GET", f"{G}/idle/consumers").json()["data"] == []


def test_lags_are_log_end_minus_committed(groups: Engine) -> None:
    listing = call("GET", f"{G}/g/lags").json()
    assert listing["kind"] == "KafkaConsumerLagList"
    rows = listing["data"]
    assert rows[0]["metadata"]["self"] == f"{BASE}{G}/g/lags/orders/partitions/0"
    assert [{k: r[k] for k in ("consumer_group_id", "topic_name", "partition_id",
                               "current_offset", "log_end_offset", "lag", "consumer_id",
                               "instance_id", "client_id")} for r in rows] == [
        {"consumer_group_id": "g", "topic_name": "orders", "partition_id": 0,
         "current_offset": 2, "log_end_offset": 5, "lag": 3, "consumer_id": "m-1",
         "instance_id": "inst-1", "client_id": "cli"},
        {"consumer_group_id": "g", "topic_name": "orders", "partition_id": 1,
         "current_offset": 2, "log_end_offset": 2, "lag": 0, "consumer_id": "",
         "instance_id": None, "client_id": ""}]  # orders/2: nothing committed
    assert call("GET", f"{G}/idle/lags").json()["data"] == []


def test_lag_summary(groups: Engine) -> None:
    summary = call("GET", f"{G}/g/lag-summary").json()
    assert summary["kind"] == "KafkaConsumerGroupLagSummary"
    assert summary["metadata"]["self"] == f"{BASE}{G}/g/lag-summary"
    assert {k: summary[k] for k in ("max_lag", "total_lag", "max_lag_consumer_id",
                                    "max_lag_instance_id", "max_lag_client_id",
                                    "max_lag_topic_name", "max_lag_partition_id")} == {
        "max_lag": 3, "total_lag": 3, "max_lag_consumer_id": "m-1",
        "max_lag_instance_id": "inst-1", "max_lag_client_id": "cli",
        "max_lag_topic_name": "orders", "max_lag_partition_id": 0}
    assert summary["max_lag_consumer"] == {"related": f"{BASE}{G}/g/consumers/m-1"}
    assert summary["max_lag_partition"] == {
        "related": f"{BASE}/v3/clusters/streamlet/topics/orders/partitions/0"}
    idle = call("GET", f"{G}/idle/lag-summary").json()
    assert {k: idle[k] for k in ("max_lag", "total_lag", "max_lag_consumer_id",
                                 "max_lag_client_id", "max_lag_topic_name",
                                 "max_lag_partition_id")} == {
        "max_lag": 0, "total_lag": 0, "max_lag_consumer_id": "", "max_lag_client_id": "",
        "max_lag_topic_name": "", "max_lag_partition_id": -1}  # nothing committed
    assert (idle["max_lag_consumer"], idle["max_lag_partition"]) == (  # empty lists
        {"related": f"{BASE}{G}/idle/consumers"}, {"related": f"{BASE}{G}/idle/lags"})


def test_one_consumer_and_its_assignments(groups: Engine) -> None:
    consumer = call("GET", f"{G}/g/consumers/m-1").json()
    assert consumer == call("GET", f"{G}/g/consumers").json()["data"][0]
    listing = call("GET", f"{G}/g/consumers/m-1/assignments").json()
    assert (listing["kind"], listing["metadata"]["self"]) == (
        "KafkaConsumerAssignmentList", f"{BASE}{G}/g/consumers/m-1/assignments")
    one = f"{G}/g/consumers/m-1/assignments/orders/partitions/0"
    assert listing["data"] == [{  # orders/1 was released, orders/2 never taken
        "kind": "KafkaConsumerAssignment",
        "metadata": {"self": f"{BASE}{one}", "resource_name": "crn:///kafka=streamlet/"
                     "consumer-group=g/consumer=m-1/assignment=orders/partition=0"},
        "cluster_id": "streamlet", "consumer_group_id": "g", "consumer_id": "m-1",
        "topic_name": "orders", "partition_id": 0,
        "partition": {"related": f"{BASE}/v3/clusters/streamlet/topics/orders/partitions/0"},
        "lag": {"related": f"{BASE}{G}/g/lags/orders/partitions/0"}}]
    assert call("GET", one).json() == listing["data"][0]


def test_one_lag(groups: Engine) -> None:
    lags = call("GET", f"{G}/g/lags").json()["data"]
    for row in lags:
        path = f"{G}/g/lags/orders/partitions/{row['partition_id']}"
        assert call("GET", path).json() == row
    never = call("GET", f"{G}/g/lags/orders/partitions/2")  # leased, nothing committed
    assert (never.status, never.json()["error_code"], never.json()["code"]) == (
        404, 404, "resource_not_found")


def test_missing_consumers_assignments_and_lags_are_404(groups: Engine) -> None:
    cases = [
        (f"{G}/g/consumers/nobody", 404, "resource_not_found"),
        (f"{G}/g/consumers/nobody/assignments", 404, "resource_not_found"),
        (f"{G}/g/consumers/m-1/assignments/orders/partitions/1", 404, "resource_not_found"),
        (f"{G}/g/consumers/m-1/assignments/orders/partitions/9", 404, "resource_not_found"),
        (f"{G}/nope/consumers/m-1", 404, "group_not_found"),
        (f"{G}/nope/lags/orders/partitions/0", 404, "group_not_found"),
        (f"{G}/g/lags/payroll/partitions/0", 404, "resource_not_found"),
        (f"{G}/g/consumers/m-1/assignments/orders/partitions/x", 400, "invalid_request"),
    ]
    for path, status, code in cases:
        reply = call("GET", path)
        assert (reply.status, reply.json()["code"]) == (status, code), path
        assert reply.json()["message"]


def test_member_ids_are_percent_encoded_in_links(groups: Engine) -> None:
    groups.groups.heartbeat("g", Member("m/2 x", 0, "cli", "h", "", ("orders",)))
    listed = {c["consumer_id"]: c for c in call("GET", f"{G}/g/consumers").json()["data"]}
    self_url = listed["m/2 x"]["metadata"]["self"]
    assert self_url == f"{BASE}{G}/g/consumers/m%2F2%20x"
    assert call("GET", self_url.removeprefix(BASE)).json() == listed["m/2 x"]


def test_unknown_group_and_cluster(groups: Engine) -> None:
    for suffix in ("", "/consumers", "/lags", "/lag-summary"):
        reply = call("GET", f"{G}/nope{suffix}")
        assert (reply.status, reply.json()) == (404, {
            "error_code": 40404, "code": "group_not_found",
            "message": reply.json()["message"]}), suffix
        assert "nope" in reply.json()["message"]
        other = call("GET", f"/v3/clusters/lkc-1/consumer-groups/g{suffix}")
        assert (other.status, other.json()["error_code"]) == (404, 404)
    missing = call("GET", "/v3/clusters/lkc-1/consumer-groups")
    assert (missing.status, missing.json()["error_code"]) == (404, 404)


def test_group_requests_write_nothing(groups: Engine) -> None:
    before = _stored(groups)
    for group in ("g", "idle", "nope"):
        for suffix in ("", "/consumers", "/lags", "/lag-summary", "/consumers/m-1",
                       "/consumers/m-1/assignments", "/lags/orders/partitions/0",
                       "/consumers/m-1/assignments/orders/partitions/0"):
            call("GET", f"{G}/{group}{suffix}")
    call("GET", G)
    assert _stored(groups) == before
