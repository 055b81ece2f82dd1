"""The native group routes (``/v1/groups``): GroupOps over HTTP, through the real handlers."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.engine import Engine
from streamlet.records import TopicPartition
from tests.functions.conftest import call

G = "/v1/groups/billing"
P0 = f"{G}/leases/orders/0"
TP0 = TopicPartition("orders", 0)


def _items(engine: Engine) -> list[dict[str, Any]]:
    return engine._ddb.scan(TableName=engine.names.groups_table)["Items"]  # type: ignore[no-any-return]


def _join(member: str = "m-1") -> None:
    body = {"member_id": member, "client_id": "cli", "host": "h", "topics": ["orders"],
            "heartbeat_ms": 1000, "session_ms": 3000}
    assert call("POST", f"{G}/members/heartbeat", body).json() == {"beat": 1}


def _take(member: str, seen: dict[str, Any]) -> Any:
    state = {k: seen[k] for k in ("owner", "epoch", "committed", "metadata", "committed_ms")}
    return call("POST", f"{P0}/take", {"member_id": member, "seen": state}).json()["lease"]


def test_membership_round_trip(aws: Engine, orders: str) -> None:
    _join()
    parts = [{"topic": "orders", "partition": p} for p in range(3)]
    assert call("POST", f"{G}/leases", {"partitions": parts}).status == 204
    snap = call("GET", G).json()
    assert [(lease["partition"], lease["owner"], lease["epoch"]) for lease in snap["leases"]] \
        == [(0, None, 0), (1, None, 0), (2, None, 0)]
    assert snap["members"] == [{"member_id": "m-1", "beat": 1, "client_id": "cli", "host": "h",
                                "instance_id": "-", "topics": ["orders"], "heartbeat_ms": 1000,
                                "session_ms": 3000}]
    seen = snap["leases"][0]
    taken = _take("m-1", seen)
    assert (taken["owner"], taken["epoch"]) == ("m-1", 1)
    assert _take("m-2", seen) is None  # the same stale view loses the race
    commit = {"member_id": "m-1", "offsets": [{"topic": "orders", "partition": 0, "epoch": 1,
                                               "offset": 7, "metadata": "x"}]}
    assert call("POST", f"{G}/commits", commit).status == 204
    lease = call("GET", P0).json()["lease"]
    assert (lease["committed"], lease["metadata"]) == (7, "x")
    release = {"member_id": "m-1", "epoch": 1}
    assert call("POST", f"{P0}/release", release).status == 204
    assert aws.groups.lease("billing", TP0).owner is None  # type: ignore[union-attr]
    assert call("POST", f"{G}/members/remove", {"member_id": "m-1", "seen_beat": 0}).status \
        == 204
    assert "m-1" in aws.groups.snapshot("billing").members  # its beat moved on: kept
    call("POST", f"{G}/members/remove", {"member_id": "m-1"})
    assert aws.groups.snapshot("billing").members == {}


def test_a_stale_commit_is_409_commit_failed_and_writes_nothing(aws: Engine, orders: str
                                                                ) -> None:
    aws.groups.ensure_leases("billing", [TP0])
    first = aws.groups.take("billing", TP0, "m-1", aws.groups.lease("billing", TP0))
    assert first is not None
    aws.groups.take("billing", TP0, "m-2", first)  # m-2 took it over
    stale = {"member_id": "m-1", "offsets": [{"topic": "orders", "partition": 0,
                                              "epoch": first.epoch, "offset": 9}]}
    reply = call("POST", f"{G}/commits", stale)
    assert (reply.status, reply.json()["error_code"], reply.json()["code"]) == (
        409, 40903, "commit_failed")
    assert "orders[0]" in reply.json()["message"]
    assert aws.groups.lease("billing", TP0).committed is None  # type: ignore[union-attr]


def test_unknown_lease_is_null_and_unknown_group_delete_is_404(aws: Engine) -> None:
    assert call("GET", P0).json() == {"lease": None}
    assert call("GET", G).json() == {"leases": [], "members": []}
    gone = call("DELETE", G)
    assert (gone.status, gone.json()["error_code"], gone.json()["code"]) == (
        404, 40404, "group_not_found")


def test_admin_routes_list_reset_and_delete(aws: Engine, orders: str) -> None:
    aws.groups.ensure_leases("billing", [TP0])
    lease = aws.groups.take("billing", TP0, "m-1", aws.groups.lease("billing", TP0))
    assert lease is not None
    aws.groups.commit("billing", "m-1", {TP0: (lease.epoch, 50, "")})
    assert call("GET", "/v1/groups").json() == {"groups": ["billing"]}
    seen = {"topic": "orders", "partition": 0, "owner": "m-1", "epoch": lease.epoch,
            "committed": 50}
    body = {"offsets": [{"topic": "orders", "partition": 0, "offset": 5}], "seen": [seen]}
    assert call("PUT", f"{G}/offsets", body).status == 204
    after = aws.groups.lease("billing", TP0)
    assert after is not None and (after.committed, after.owner, after.epoch) == (
        5, None, lease.epoch + 1)  # moved back, and the old owner is fenced
    assert call("PUT", f"{G}/offsets", body).status == 400  # the lease moved since: refused
    assert call("DELETE", G).status == 204
    assert _items(aws) == [] and call("GET", "/v1/groups").json() == {"groups": []}


@pytest.mark.parametrize(("method", "path", "body", "needle"), [
    ("POST", f"{G}/leases", {"partitions": [{"topic": "bad name", "partition": 0}]},
     "bad name"),
    ("POST", f"{G}/leases", {"partitions": [{"topic": "orders", "partition": -1}]}, "-1"),
    ("POST", f"{G}/leases", {"partitions": [{"topic": "orders", "partition": "zero"}]},
     "partition"),
    ("POST", "/v1/groups/a%23b/leases", {"partitions": [{"topic": "orders", "partition": 0}]},
     "'a#b'"),
    ("POST", f"{G}/members/heartbeat", {"member_id": ""}, "member_id"),
    ("POST", f"{G}/members/heartbeat", {"member_id": "m", "session_ms": -1}, "session_ms"),
    ("POST", f"{P0}/take", {"member_id": "m", "seen": {"epoch": "one"}}, "epoch"),
    ("POST", f"{G}/commits", {"member_id": "m", "offsets": [
        {"topic": "orders", "partition": 0, "epoch": 1, "offset": -5}]}, "offset"),
    ("POST", f"{G}/commits", {"member_id": "m", "offsets": [
        {"topic": "orders", "partition": p, "epoch": 1, "offset": 1} for p in range(101)]},
     "at most 100"),
    ("PUT", f"{G}/offsets", {"offsets": "all"}, "offsets"),
])
def test_bad_input_is_400_naming_the_field_and_writes_nothing(
        aws: Engine, method: str, path: str, body: object, needle: str) -> None:
    reply = call(method, path, body)
    assert (reply.status, reply.json()["error_code"]) == (400, 40002), reply.json()
    assert needle in reply.json()["message"]
    assert _items(aws) == []
