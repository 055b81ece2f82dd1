"""Authorization over every route that names a topic or a group (issue 16, points 3-4).

API Gateway checks the topic or group in a route's path; these are the topics named in
request *bodies* (REST v2 instances, the native group routes) and identity-bound group
state, checked in the handlers against the caller's registered grant. Each test names the
finding of issue 16 it covers; every refusal is 403 ``access_denied`` naming the topic (or
member / instance) and writes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from streamlet.engine import Engine
from streamlet.engine.grants import Grant
from streamlet.records import TopicPartition
from tests.batches import make_batch
from tests.functions.conftest import Reply, call, register

ACCOUNT = "123456789012"
BILLING = f"arn:aws:sts::{ACCOUNT}:assumed-role/billing/session-1"
BILLING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/apps/billing"
BILLING_2 = f"arn:aws:sts::{ACCOUNT}:assumed-role/billing-2/session-9"
PAYROLL = f"arn:aws:sts::{ACCOUNT}:assumed-role/payroll/session-1"
NOBODY = f"arn:aws:iam::{ACCOUNT}:user/unregistered"
G = "/v1/groups/billing-app"
C = "/consumers/billing-app"


@pytest.fixture
def world(aws: Engine) -> Engine:
    """Topics billing (2 partitions, 3 records in 0) and payroll; three principals:
    billing and billing-2 may read billing* with groups billing*, payroll reads payroll*."""
    aws.create_topic("billing", 2)
    aws.create_topic("payroll", 1)
    aws.append("billing", 0, make_batch([b"b0", b"b1", b"b2"]))
    aws.append("payroll", 0, make_batch([b"salary"]))
    register(BILLING_ROLE, Grant.consume("billing", "billing"))
    register(f"arn:aws:iam::{ACCOUNT}:role/billing-2", Grant.consume("billing", "billing"))
    register(f"arn:aws:iam::{ACCOUNT}:role/payroll", Grant.consume("payroll", "payroll"))
    return aws


def as_(caller: str, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
    return call(method, path, body, caller=caller, **kw)


def state(engine: Engine) -> list[str]:
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    names = (engine.names.topics_table, engine.names.log_table, engine.names.groups_table)
    return sorted(json.dumps(i.to_json(), sort_keys=True, default=str)
                  for n in names for i in backend.get_table(n).all_items())


def refused(reply: Reply, *needles: str) -> None:
    body = reply.json()
    assert (reply.status, body["error_code"], body["code"]) == (403, 40301, "access_denied"), body
    for needle in needles:
        assert needle in body["message"], body["message"]


def instance(caller: str = BILLING, name: str = "c1") -> str:
    reply = as_(caller, "POST", C, {"name": name, "format": "binary",
                                    "auto.offset.reset": "earliest"})
    assert reply.status == 200, reply.json()
    return f"{C}/instances/{name}"


# ---- REST Proxy v2 ---------------------------------------------------------------------------


def test_v2_assignment_outside_the_grant_is_refused(world: Engine) -> None:
    # issue 16: a principal granted "billing*" assigned itself payroll/0 through a v2
    # instance and read it.
    inst = instance()
    before = state(world)
    refused(as_(BILLING, "POST", f"{inst}/assignments",
                {"partitions": [{"topic": "payroll", "partition": 0}]}), "'payroll'")
    assert state(world) == before
    ok = as_(BILLING, "POST", f"{inst}/assignments",
             {"partitions": [{"topic": "billing", "partition": 0}]})
    assert ok.status == 204
    rows = as_(BILLING, "GET", f"{inst}/records", query={"timeout": 0}).json()
    assert [r["topic"] for r in rows] == ["billing"] * 3


def test_v2_subscription_outside_the_grant_is_refused(world: Engine) -> None:
    # issue 16: subscriptions name their topics in the body, which IAM cannot see.
    inst = instance()
    before = state(world)
    refused(as_(BILLING, "POST", f"{inst}/subscription", {"topics": ["billing", "payroll"]}),
            "'payroll'")
    assert state(world) == before


def test_v2_pattern_matches_only_topics_the_grant_reads(world: Engine) -> None:
    # issue 16: a topic_pattern read topics the caller never named (".*" took payroll).
    inst = instance()
    assert as_(BILLING, "POST", f"{inst}/subscription", {"topic_pattern": ".*"}).status == 204
    listed = as_(BILLING, "GET", f"{inst}/subscription").json()
    assert listed == {"topics": ["billing"]}
    rows = as_(BILLING, "GET", f"{inst}/records", query={"timeout": 0}).json()
    assert {r["topic"] for r in rows} == {"billing"}
    leases = world.groups.snapshot("billing-app").leases
    assert {tp.topic for tp in leases} == {"billing"}


def test_v2_positions_and_offsets_outside_the_grant_are_refused(world: Engine) -> None:
    # issue 16: positions, commits and committed-offset reads named any topic.
    inst = instance()
    as_(BILLING, "POST", f"{inst}/subscription", {"topics": ["billing"]})
    as_(BILLING, "GET", f"{inst}/records", query={"timeout": 0})
    before = state(world)
    payroll = {"topic": "payroll", "partition": 0}
    refused(as_(BILLING, "POST", f"{inst}/positions", {"offsets": [{**payroll, "offset": 0}]}),
            "'payroll'")
    refused(as_(BILLING, "POST", f"{inst}/positions/end", {"partitions": [payroll]}),
            "'payroll'")
    refused(as_(BILLING, "POST", f"{inst}/offsets", {"offsets": [{**payroll, "offset": 9}]}),
            "'payroll'")
    refused(as_(BILLING, "GET", f"{inst}/offsets", {"partitions": [payroll]}), "'payroll'")
    assert state(world) == before


def test_v2_instances_belong_to_their_creator(world: Engine) -> None:
    # issue 16 (point 4): a REST v2 instance could be driven by anyone granted its group.
    inst = instance()
    as_(BILLING, "POST", f"{inst}/assignments", {"partitions": [
        {"topic": "billing", "partition": 0}]})
    before = state(world)
    for method, suffix, body in [("GET", "/records", None), ("GET", "/assignments", None),
                                 ("POST", "/positions/beginning", {"partitions": []}),
                                 ("POST", "/subscription", {"topics": ["billing"]}),
                                 ("DELETE", "/subscription", None), ("DELETE", "", None)]:
        refused(as_(BILLING_2, method, f"{inst}{suffix}", body), "'c1'")
    assert state(world) == before
    assert as_(BILLING, "DELETE", inst).status == 204


def test_a_caller_without_a_registered_grant_reads_no_body_named_topic(world: Engine) -> None:
    # The secure default: a principal missing from the grant registry (granted by hand
    # outside grant_*) is refused every topic a body names.
    inst = instance(NOBODY)
    refused(as_(NOBODY, "POST", f"{inst}/assignments", {"partitions": [
        {"topic": "billing", "partition": 0}]}), "'billing'", "implicitly denied")


def test_sessions_of_one_role_are_one_principal(world: Engine) -> None:
    # Credentials refresh with a new role session name: the instance stays the role's.
    inst = instance(BILLING)
    other_session = BILLING.replace("session-1", "session-2")
    assert as_(other_session, "GET", f"{inst}/assignments").status == 200


# ---- the native group routes ---------------------------------------------------------------


def join(caller: str, member: str, topics: list[str]) -> Reply:
    return as_(caller, "POST", f"{G}/members/heartbeat", {"member_id": member,
                                                        "topics": topics})


def test_group_routes_refuse_topics_outside_the_grant(world: Engine) -> None:
    # issue 16: the /v1/groups routes are scoped by group only; leases, takes, commits and
    # heartbeats named any topic.
    assert join(BILLING, "m-1", ["billing"]).status == 200
    before = state(world)
    refused(join(BILLING, "m-1", ["billing", "payroll"]), "'payroll'")
    refused(as_(BILLING, "POST", f"{G}/leases",
                {"partitions": [{"topic": "payroll", "partition": 0}]}), "'payroll'")
    lease = f"{G}/leases/payroll/0"
    refused(as_(BILLING, "GET", lease), "'payroll'")
    refused(as_(BILLING, "POST", f"{lease}/take", {"member_id": "m-1", "seen": {"epoch": 0}}),
            "'payroll'")
    refused(as_(BILLING, "POST", f"{lease}/release", {"member_id": "m-1", "epoch": 1}),
            "'payroll'")
    refused(as_(BILLING, "POST", f"{G}/commits", {"member_id": "m-1", "offsets": [
        {"topic": "payroll", "partition": 0, "epoch": 1, "offset": 1}]}), "'payroll'")
    assert state(world) == before


def _take(caller: str, member: str, tp: str = "billing/0") -> int:
    seen = as_(caller, "GET", f"{G}/leases/{tp}").json()["lease"]
    taken = as_(caller, "POST", f"{G}/leases/{tp}/take", {"member_id": member, "seen": {
        "owner": seen["owner"], "epoch": seen["epoch"]}}).json()["lease"]
    return int(taken["epoch"])


def _commit(caller: str, member: str, epoch: int, offset: int) -> Reply:
    return as_(caller, "POST", f"{G}/commits", {"member_id": member, "offsets": [
        {"topic": "billing", "partition": 0, "epoch": epoch, "offset": offset}]})


def test_another_principals_member_is_refused_and_its_commits_still_apply(world: Engine
                                                                          ) -> None:
    # issue 16 (point 4): member ids and epochs are readable; a commit of 2^63-1 "as the
    # victim" stuck, and the victim's later real commits were acknowledged and ignored.
    join(BILLING, "victim", ["billing"])
    as_(BILLING, "POST", f"{G}/leases", {"partitions": [{"topic": "billing", "partition": 0}]})
    epoch = _take(BILLING, "victim")
    assert _commit(BILLING, "victim", epoch, 2).status == 204
    before = state(world)
    refused(_commit(BILLING_2, "victim", epoch, 2**63 - 1), "'victim'")
    refused(join(BILLING_2, "victim", ["billing"]), "'victim'")
    refused(as_(BILLING_2, "POST", f"{G}/leases/billing/0/release",
                {"member_id": "victim", "epoch": epoch}), "'victim'")
    refused(as_(BILLING_2, "POST", f"{G}/members/remove", {"member_id": "victim"}), "'victim'")
    assert state(world) == before
    assert _commit(BILLING, "victim", epoch, 3).status == 204  # the victim's commit applies
    assert world.groups.lease("billing-app", TopicPartition("billing", 0)).committed == 3


def test_the_owner_corrects_its_commit_backwards(world: Engine) -> None:
    # issue 16 (point 4): a backwards commit by the owner was silently ignored (204).
    join(BILLING, "m-1", ["billing"])
    as_(BILLING, "POST", f"{G}/leases", {"partitions": [{"topic": "billing", "partition": 0}]})
    epoch = _take(BILLING, "m-1")
    assert _commit(BILLING, "m-1", epoch, 2**63 - 1).status == 204
    assert _commit(BILLING, "m-1", epoch, 1).status == 204
    assert world.groups.lease("billing-app", TopicPartition("billing", 0)).committed == 1


def test_leases_and_commits_on_missing_topics_are_404(world: Engine) -> None:
    # issue 16: leases and commits on topics that do not exist were accepted.
    join(BILLING, "m-1", ["billing"])
    before = state(world)
    reply = as_(BILLING, "POST", f"{G}/leases", {"partitions": [
        {"topic": "billing-gone", "partition": 0}]})
    assert (reply.status, reply.json()["code"]) == (404, "topic_not_found")
    reply = as_(BILLING, "POST", f"{G}/leases", {"partitions": [
        {"topic": "billing", "partition": 7}]})
    assert (reply.status, reply.json()["code"]) == (404, "partition_not_found")
    reply = as_(BILLING, "POST", f"{G}/commits", {"member_id": "m-1", "offsets": [
        {"topic": "billing", "partition": 7, "epoch": 1, "offset": 1}]})
    assert (reply.status, reply.json()["code"]) == (404, "partition_not_found")
    reply = as_(BILLING, "POST", f"{G}/leases/billing-gone/0/take",
                {"member_id": "m-1", "seen": {"epoch": 0}})
    assert (reply.status, reply.json()["code"]) == (404, "topic_not_found")
    assert state(world) == before


def test_a_heartbeat_with_megabytes_of_topic_names_is_refused(world: Engine) -> None:
    # issue 16: heartbeats with 4 MB of topic names were accepted into the member item.
    before = state(world)
    huge = join(BILLING, "m-1", ["billing" + "x" * (4 * 1024 * 1024)])
    assert (huge.status, huge.json()["error_code"]) == (400, 40002)
    many = join(BILLING, "m-1", [f"billing{i}" for i in range(1001)])
    assert (many.status, many.json()["error_code"]) == (400, 40002)
    assert state(world) == before
