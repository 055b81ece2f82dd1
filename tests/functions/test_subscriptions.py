"""REST Proxy v2 subscriptions and offset commits through ``consume_handler``.

Every request builds a fresh Lambda container's view (``fresh_container``): the membership
must live in DynamoDB, not in the handler's memory.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions import _runtime
from streamlet import Admin, Consumer
from streamlet.engine import Engine
from streamlet.records import TopicPartition
from tests.batches import make_batch
from tests.functions.conftest import call

C = "/consumers/billing"
ALL = [TopicPartition("orders", p) for p in range(3)]


def inst(name: str) -> str:
    return f"{C}/instances/{name}"


def create(name: str, **extra: Any) -> None:
    body = {"name": name, "format": "binary", "auto.offset.reset": "earliest", **extra}
    assert call("POST", C, body).status == 200


def subscribe(name: str, body: Any = None) -> None:
    reply = call("POST", f"{inst(name)}/subscription", body or {"topics": ["orders"]})
    assert reply.status == 204, reply.json()


def records(name: str) -> list[dict[str, Any]]:
    _runtime.reset()  # another Lambda container serves each request
    reply = call("GET", f"{inst(name)}/records", query={"timeout": 0})
    assert reply.status == 200, reply.json()
    rows: list[dict[str, Any]] = reply.json()
    return rows


def owned(name: str) -> set[TopicPartition]:
    parts = call("GET", f"{inst(name)}/assignments").json()["partitions"]
    return {TopicPartition(p["topic"], p["partition"]) for p in parts}


def offsets(name: str, parts: list[dict[str, Any]] | None = None) -> dict[int, int]:
    body = None if parts is None else {"partitions": parts}
    rows = call("GET", f"{inst(name)}/offsets", body).json()["offsets"]
    return {r["partition"]: r["offset"] for r in rows}


def error(reply: Any) -> tuple[int, int, str]:
    body = reply.json()
    return reply.status, body["error_code"], body["code"]


@pytest.fixture
def filled(aws: Engine, orders: str) -> Engine:
    """``orders``: 3 partitions of 4 records each."""
    for p in range(3):
        aws.append(orders, p, make_batch([f"p{p}-{i}".encode() for i in range(4)]))
    return aws


def test_a_subscribed_instance_is_a_group_member_reading_what_it_owns(filled: Engine) -> None:
    create("a")
    subscribe("a")
    assert call("GET", f"{inst('a')}/subscription").json() == {"topics": ["orders"]}
    member = next(iter(filled.groups.snapshot("billing").members.values()))
    assert (member.member_id.startswith("a-"), member.host, member.session_ms) == (
        True, "rest-v2", 30_000)
    rows = records("a")
    assert sorted((r["partition"], r["offset"]) for r in rows) == [
        (p, o) for p in range(3) for o in range(4)]
    assert owned("a") == set(ALL) and records("a") == []
    leases = filled.groups.snapshot("billing").leases
    assert {lease.owner for lease in leases.values()} == {member.member_id}
    assert [r.consumer_id for r in Admin(transport=filled).describe_group("billing")] == [
        member.member_id] * 3


def test_commits_are_rest_proxy_offsets_and_a_new_member_resumes_there(filled: Engine) -> None:
    create("a")
    subscribe("a")
    records("a")
    assert offsets("a") == {0: -1, 1: -1, 2: -1}
    assert offsets("a", [{"topic": "elsewhere", "partition": 5}]) == {5: -1}
    bad = call("GET", f"{inst('a')}/offsets", {"partitions": [{"topic": "no/slash",
                                                               "partition": 0}]})
    assert error(bad)[:2] == (400, 40002) and "no/slash" in bad.json()["message"]
    one = {"offsets": [{"topic": "orders", "partition": 0, "offset": 1, "metadata": "m"}]}
    assert call("POST", f"{inst('a')}/offsets", one).status == 204
    assert offsets("a", [{"topic": "orders", "partition": 0}]) == {0: 2}  # last processed + 1
    assert filled.groups.lease("billing", ALL[0]).metadata == "m"  # type: ignore[union-attr]
    assert call("POST", f"{inst('a')}/offsets").status == 204  # no body: every position
    assert offsets("a") == {0: 4, 1: 4, 2: 4}
    for p in range(3):
        filled.append("orders", p, make_batch([b"late"]))
    assert call("DELETE", inst("a")).status == 204  # releases its leases at once
    assert {lease.owner for lease in filled.groups.snapshot("billing").leases.values()} == {None}
    assert filled.groups.snapshot("billing").members == {}
    create("b")
    subscribe("b")
    assert sorted((r["partition"], r["offset"]) for r in records("b")) == [
        (0, 4), (1, 4), (2, 4)]


def test_two_instances_split_the_partitions_of_their_group(filled: Engine) -> None:
    create("a")
    subscribe("a")
    first = records("a")
    assert owned("a") == set(ALL)
    create("b")
    subscribe("b")
    assert records("b") == []  # nothing is free: a is live
    records("a")  # a sees b and gives up what is beyond its quota
    second = records("b")
    a, b = owned("a"), owned("b")
    assert sorted([len(a), len(b)]) == [1, 2] and a | b == set(ALL) and not a & b
    assert {r["partition"] for r in second} == {tp.partition for tp in b}
    seen = first + second
    assert len(seen) == 12 + 4 * len(b)  # no commit yet: b starts from the beginning
    create("c")
    subscribe("c")  # joins while both are live: takes only what is released to it
    for name in ("c", "a", "b", "c"):
        records(name)
    assert sorted(len(owned(n)) for n in "abc") == [1, 1, 1]


def test_a_stale_commit_after_losing_a_partition_is_refused(filled: Engine) -> None:
    create("a")
    subscribe("a")
    records("a")
    lease = filled.groups.lease("billing", ALL[0])
    assert lease is not None
    filled.groups.take("billing", ALL[0], "intruder", lease)  # a's lease moved meanwhile
    stale = {"offsets": [{"topic": "orders", "partition": 0, "offset": 2}]}
    reply = call("POST", f"{inst('a')}/offsets", stale)
    assert error(reply) == (409, 40903, "commit_failed") and "orders[0]" in reply.json()["message"]
    assert filled.groups.lease("billing", ALL[0]).committed is None  # type: ignore[union-attr]
    records("a")  # the rebalance notices the loss
    assert owned("a") == set(ALL[1:])
    foreign = {"offsets": [{"topic": "orders", "partition": 0, "offset": 1},
                           {"topic": "orders", "partition": 1, "offset": 1}]}
    assert error(call("POST", f"{inst('a')}/offsets", foreign))[:2] == (409, 40903)
    assert filled.groups.lease("billing", ALL[1]).committed is None  # all or nothing


def test_an_sdk_consumer_and_a_rest_instance_share_a_group(filled: Engine) -> None:
    with Consumer("orders", transport=filled, group_id="billing", enable_auto_commit=False,
                  auto_offset_reset="earliest") as sdk:
        sdk.poll(0.2)
        assert sdk.assignment() == set(ALL)
        create("rest")
        subscribe("rest")
        assert records("rest") == []  # every partition is owned by a live member
        sdk._next_tick = 0
        sdk.poll(0.2)  # the SDK member sees the REST member and hands over its surplus
        mine = records("rest")
        assert owned("rest") and not owned("rest") & sdk.assignment()
        assert owned("rest") | sdk.assignment() == set(ALL)
        assert {r["partition"] for r in mine} == {tp.partition for tp in owned("rest")}
        members = set(filled.groups.snapshot("billing").members)
        assert len(members) == 2 and {row.consumer_id for row in Admin(
            transport=filled).describe_group("billing")} == members


def test_unsubscribe_hands_over_and_allows_assignment(filled: Engine) -> None:
    create("a")
    subscribe("a")
    records("a")
    parts = {"partitions": [{"topic": "orders", "partition": 0}]}
    assert error(call("POST", f"{inst('a')}/assignments", parts)) == (409, 40903, "illegal_state")
    assert call("DELETE", f"{inst('a')}/subscription").status == 204
    assert {lease.owner for lease in filled.groups.snapshot("billing").leases.values()} == {None}
    assert filled.groups.snapshot("billing").members == {}
    assert call("GET", f"{inst('a')}/subscription").json() == {"topics": []}
    assert call("POST", f"{inst('a')}/assignments", parts).status == 204
    assert error(call("POST", f"{inst('a')}/subscription", {"topics": ["orders"]})) == (
        409, 40903, "illegal_state")
    manual = call("POST", f"{inst('a')}/offsets",
                  {"offsets": [{"topic": "orders", "partition": 0, "offset": 1}]})
    assert error(manual) == (409, 40903, "illegal_state")
    assert "not subscribed" in manual.json()["message"]
    assert call("DELETE", f"{inst('a')}/subscription").status == 204  # clears it, as Kafka
    assert owned("a") == set()
    subscribe("a")


def test_a_pattern_subscription_picks_up_new_topics(filled: Engine) -> None:
    create("a")
    subscribe("a", {"topic_pattern": "ord.*|audit-[0-9]+"})
    filled.create_topic("audit-1")
    filled.create_topic("audit-x")
    records("a")
    assert {tp.topic for tp in owned("a")} == {"orders", "audit-1"}
    assert call("GET", f"{inst('a')}/subscription").json() == {"topics": ["audit-1", "orders"]}


def test_the_session_is_set_at_creation_and_bounded(filled: Engine) -> None:
    create("a", **{"session.timeout.ms": "6000"})
    subscribe("a")
    member = next(iter(filled.groups.snapshot("billing").members.values()))
    assert (member.session_ms, member.heartbeat_ms) == (6000, 2000)
    for bad in (999, 300_001, "soon"):
        reply = call("POST", C, {"name": "b", "session.timeout.ms": bad})
        assert error(reply)[:2] == (400, 40002) and "session.timeout.ms" in reply.json()["message"]


def _instance_item(engine: Engine, name: str) -> dict[str, Any]:
    return engine._ddb.get_item(TableName=engine.names.groups_table, Key={  # type: ignore[no-any-return]
        "pk": {"S": "group#billing"}, "sk": {"S": f"instance#{name}"}})["Item"]


@pytest.mark.parametrize(("body", "status", "code", "needle"), [
    ({"topics": ["orders", "nope"]}, 404, 40401, "'nope'"),
    ({"topics": ["bad name"]}, 400, 40002, "bad name"),
    ({"topic_pattern": "orders(["}, 400, 40002, "orders(["),
    ({"topics": ["orders"], "topic_pattern": "o.*"}, 400, 40002, "exactly one"),
    ({}, 400, 40002, "exactly one"),
    ({"topics": []}, 400, 40002, "topics"),
    ({"topics": "orders"}, 400, 40002, "topics"),
    ({"topics": [7]}, 400, 40002, "topics"),
])
def test_a_bad_subscription_is_refused_and_writes_nothing(filled: Engine, body: Any,
                                                           status: int, code: int,
                                                           needle: str) -> None:
    create("a")
    before = _instance_item(filled, "a")
    reply = call("POST", f"{inst('a')}/subscription", body)
    assert (reply.status, reply.json()["error_code"]) == (status, code), reply.json()
    assert needle in reply.json()["message"]
    assert _instance_item(filled, "a") == before
    assert filled.groups.snapshot("billing").members == {}


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("POST", "/subscription", {"topics": ["orders"]}),
    ("GET", "/subscription", None),
    ("DELETE", "/subscription", None),
    ("POST", "/offsets", {}),
    ("GET", "/offsets", None),
])
def test_deleted_or_expired_instances_are_404(filled: Engine, method: str, suffix: str,
                                              body: Any) -> None:
    create("a")
    subscribe("a")
    assert call("DELETE", inst("a")).status == 204
    assert error(call(method, inst("a") + suffix, body)) == (
        404, 40403, "consumer_instance_not_found")
