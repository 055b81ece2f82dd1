"""Input hardening (issue 16, point 5): RE2 topic patterns, strict JSON, one group-id rule.

Each test names the finding it covers; every refusal is a 4xx with the REST Proxy error
body and writes nothing.
"""

from __future__ import annotations

import time

import pytest

from streamlet.engine import Engine
from tests.functions.conftest import call, event, invoke
from tests.functions.test_fuzz import state

C = "/consumers/billing"


def _instance(name: str = "c1") -> str:
    reply = call("POST", C, {"name": name, "auto.offset.reset": "earliest"})
    assert reply.status == 200, reply.json()
    return f"{C}/instances/{name}"


def test_a_catastrophic_pattern_is_linear(aws: Engine) -> None:
    # issue 16: topic_pattern "(a+)+b" took 2.5 s per poll against one 26-character topic
    # name and grew exponentially with it (Python's backtracking re).
    aws.create_topic("a" * 249, 1)
    inst = _instance()
    assert call("POST", f"{inst}/subscription", {"topic_pattern": "(a+)+b"}).status == 204
    started = time.monotonic()
    for _ in range(5):
        assert call("GET", f"{inst}/subscription").json() == {"topics": []}
        assert call("GET", f"{inst}/records", query={"timeout": 0}).status == 200
    assert time.monotonic() - started < 5  # was hours at 249 characters


@pytest.mark.parametrize("pattern", ["(a)\\1", "(?<=a)b", "a{1001}", "("])
def test_a_pattern_re2_cannot_compile_is_400_naming_it(aws: Engine, pattern: str) -> None:
    inst = _instance()
    before = state(aws)
    reply = call("POST", f"{inst}/subscription", {"topic_pattern": pattern})
    assert (reply.status, reply.json()["error_code"]) == (400, 40002)
    assert repr(pattern) in reply.json()["message"]
    assert state(aws) == before


@pytest.mark.parametrize(("body", "needle"), [
    ('{"partition_id": NaN, "value": {"data": 1}}', "NaN"),
    ('{"partition_id": Infinity}', "Infinity"),
    ('{"partition_id": -Infinity}', "-Infinity"),
    ('{"value": {"type": "JSON", "data": 1e999}}', "out of range"),
    ('{"value": {"type": "JSON", "data": "\\ud800"}}', "lone surrogate"),
    ('{"\\udfff": 1}', "lone surrogate"),
])
def test_strict_json_refuses_what_is_not_json(aws: Engine, body: str, needle: str) -> None:
    # issue 16: NaN/Infinity were accepted and served back as invalid JSON; a lone
    # surrogate in a key or value was a 500 (UnicodeEncodeError), tripping the 5xx alarm.
    aws.create_topic("orders", 1)
    before = state(aws)
    reply = call("POST", "/v3/clusters/streamlet/topics/orders/records", body)
    assert (reply.status, reply.json()["error_code"]) == (400, 40002), reply.json()
    assert needle in reply.json()["message"]
    assert state(aws) == before


@pytest.mark.parametrize(("path", "body"), [
    ("/v3/clusters/streamlet/topics/orders/records",
     {"partition_id": True, "value": {"type": "JSON", "data": 1}}),
    ("/consumers/billing/instances/c1/assignments",
     {"partitions": [{"topic": "orders", "partition": True}]}),
    ("/v1/groups/billing/commits",
     {"member_id": "m", "offsets": [{"topic": "orders", "partition": 0, "epoch": True,
                                     "offset": 1}]}),
    ("/consumers/billing", {"name": "c2", "session.timeout.ms": True}),
])
def test_booleans_are_not_integers(aws: Engine, path: str, body: object) -> None:
    # issue 16: "partition_id": true was read as 1.
    aws.create_topic("orders", 2)
    _instance()
    before = state(aws)
    reply = call("POST", path, body)
    assert (reply.status, reply.json()["error_code"]) == (400, 40002), reply.json()
    assert state(aws) == before


def test_a_body_without_content_type_is_415_not_parsed(aws: Engine) -> None:
    # issue 16: a body without Content-Type was parsed as JSON.
    raw = event("POST", "/v3/clusters/streamlet/topics", {"topic_name": "orders"})
    del raw["headers"]["content-type"]
    reply = invoke(raw)
    assert (reply.status, reply.json()["error_code"]) == (415, 41501)
    assert aws.list_topics() == []


@pytest.mark.parametrize("group", ["a#b", "a b", "a/b", "..", "x" * 250])
def test_one_group_id_rule_on_every_route(aws: Engine, group: str) -> None:
    # issue 16: "a#b" could be created via v2 and listed, but not deleted via /v1.
    from urllib.parse import quote

    g = quote(group, safe="")
    for method, path, body in [("POST", f"/consumers/{g}", {"name": "c"}),
                               ("POST", f"/v1/groups/{g}/members/heartbeat",
                                {"member_id": "m"}),
                               ("DELETE", f"/v1/groups/{g}", None)]:
        reply = call(method, path, body)
        assert (reply.status, reply.json()["error_code"]) == (400, 40002), (path, reply.json())
        assert "Group id" in reply.json()["message"]
    assert aws.groups.list_groups() == []


def test_a_kafka_style_group_id_works_on_every_route(aws: Engine) -> None:
    assert call("POST", "/consumers/billing.eu_1-a", {"name": "c"}).status == 200
    assert call("GET", "/v1/groups").json() == {"groups": ["billing.eu_1-a"]}
    assert call("DELETE", "/v1/groups/billing.eu_1-a").status == 204
