"""The local gateway enforces SigV4 and IAM like API Gateway (issue 16, point 6), and grant
scoping holds end to end with two principals, over the SDK's HTTP transport and over raw
signed requests.

The principals' policies are exactly what ``grant_*`` gives on AWS
(:func:`streamlet.engine.grants.http_policy`), for the local API's ARN.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from streamlet import Admin, Consumer, Producer, TopicPartition
from streamlet.engine.grants import Grant, http_policy
from streamlet.errors import AccessDenied
from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS
from streamlet.local.gateway import Gateway
from streamlet.local.principals import Principal
from streamlet.policy import Policy
from streamlet.transport.http import HttpTransport

POOL = urllib3.PoolManager()
LOCAL_API = "arn:aws:execute-api:us-east-1:000000000000:local"


def _principal(name: str, *grants: Grant) -> Principal:
    policy = Policy.from_json(http_policy(grants, LOCAL_API), f"{name} grants")
    return Principal(name, name, f"{name}-secret", (policy,))


PRINCIPALS = [_principal("billing", Grant.produce("billing"), Grant.consume("billing", "billing")),
              _principal("billing2", Grant.consume("billing", "billing")),
              _principal("payroll", Grant.produce("payroll"), Grant.consume("payroll", "payroll"))]


@pytest.fixture(scope="module")
def module_gateway(platform: LocalPlatform) -> Iterator[Gateway]:
    """A gateway of its own over the session platform, with the three principals."""
    started = Gateway(platform.engine(), principals=PRINCIPALS,
                      direct_endpoint=platform.direct_endpoint).start()
    yield started
    started.stop()


@pytest.fixture
def gateway(module_gateway: Gateway, live_platform: LocalPlatform) -> Gateway:
    """The module's gateway, its storage present (an in-process moto test run earlier in
    this process, e.g. on the same xdist worker, leaves the platform's tables gone)."""
    return module_gateway


@pytest.fixture
def topics(gateway: Gateway, topic: str) -> tuple[str, str]:
    """``billing-T`` (2 partitions) and ``payroll-T`` (1), two records each in partition 0."""
    billing, payroll = f"billing-{topic}", f"payroll-{topic}"
    admin = Admin(transport=administrator(gateway))
    admin.create_topic(billing, 2)
    admin.create_topic(payroll, 1)
    for name, key in ((billing, "billing"), (payroll, "payroll")):
        with Producer(transport=transport(gateway, key)) as producer:
            for value in (b"one", b"two"):
                producer.send(name, value, partition=0)
    return billing, payroll


def transport(gateway: Gateway, key: str, secret: str | None = None) -> HttpTransport:
    session = boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret or f"{key}-secret",
                            region_name="us-east-1")
    return HttpTransport(gateway.url, session)


def administrator(gateway: Gateway) -> HttpTransport:
    """The default credentials: still an administrator."""
    return transport(gateway, *LOCAL_CREDENTIALS)


def sign(method: str, url: str, body: bytes = b"", *, key: str = "billing",
         region: str = "us-east-1", headers: dict[str, str] | None = None
         ) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"Content-Type": "application/json", **(headers or {})})
    SigV4Auth(Credentials(key, f"{key}-secret"), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def send(method: str, url: str, body: Any = None, *, key: str = "billing") -> tuple[int, Any]:
    data = b"" if body is None else json.dumps(body).encode()
    reply = POOL.request(method, url, body=data or None, headers=sign(method, url, data, key=key))
    return reply.status, json.loads(reply.data) if reply.data else None


def forbidden(status: int, body: Any, *needles: str) -> None:
    assert (status, body["error_code"], body["code"]) == (403, 40301, "access_denied"), body
    for needle in needles:
        assert needle in body["message"], body["message"]


# ---- SigV4 as API Gateway checks it -----------------------------------------------------------


def test_a_signature_for_another_region_is_refused(gateway: Gateway) -> None:
    # issue 16: the local gateway accepted any region in the credential scope.
    url = f"{gateway.url}/v3/clusters"
    reply = POOL.request("GET", url, headers=sign("GET", url, region="eu-west-1"))
    forbidden(reply.status, json.loads(reply.data), "scoped to a valid region", "eu-west-1")


def test_a_foreign_signed_host_is_refused(gateway: Gateway) -> None:
    # issue 16: any signed Host was accepted and echoed into response links.
    # The verifier is built when the gateway binds its port, so even a loopback name on
    # another port is foreign (before, any loopback name on any port passed).
    url = f"{gateway.url}/v3/clusters"
    port = gateway.url.rsplit(":", 1)[1]
    for host in (f"evil.example.com:{port}", "127.0.0.1:1", "localhost"):
        reply = POOL.request("GET", url, headers=sign("GET", url, headers={"Host": host}))
        forbidden(reply.status, json.loads(reply.data), host)


def test_an_unsigned_x_amz_date_is_refused(gateway: Gateway) -> None:
    # issue 16: x-amz-date (and content-type) could be left out of SignedHeaders.
    url = f"{gateway.url}/v3/clusters"
    headers = sign("GET", url)
    auth = headers["Authorization"]
    names = auth.split("SignedHeaders=")[1].split(",")[0]
    headers["Authorization"] = auth.replace(names, "host")
    reply = POOL.request("GET", url, headers=headers)
    forbidden(reply.status, json.loads(reply.data), "x-amz-date")


def test_two_authorization_headers_are_refused(gateway: Gateway) -> None:
    # issue 16: a second Authorization header was ignored.
    url = f"{gateway.url}/v3/clusters"
    headers = sign("GET", url)
    other = sign("GET", url, key="payroll")["Authorization"]
    pairs = [*headers.items(), ("Authorization", other)]
    reply = POOL.request("GET", url, headers=urllib3.HTTPHeaderDict(pairs))
    forbidden(reply.status, json.loads(reply.data), "more than one Authorization")


def test_a_principal_without_a_grant_for_the_route_is_refused(gateway: Gateway,
                                                              topic: str) -> None:
    # issue 16: the local gateway applied no IAM policy, so scoping could not be tested.
    url = f"{gateway.url}/v3/clusters/streamlet/topics"
    status, body = send("POST", url, {"topic_name": f"billing-{topic}"})
    forbidden(status, body, "arn:aws:iam::000000000000:user/billing", "POST/v3/clusters",
              "implicitly denied")
    assert f"billing-{topic}" not in Admin(transport=administrator(gateway)).list_topics()


def test_only_an_administrator_is_told_where_the_storage_is(gateway: Gateway,
                                                           live_platform: LocalPlatform,
                                                           topic: str) -> None:
    url = f"{gateway.url}/v1/deployment"
    status, body = send("GET", url, key="billing")  # produce and consume grants only
    forbidden(status, body, "arn:aws:iam::000000000000:user/billing", "GET/v1/deployment",
              "implicitly denied")
    with pytest.raises(AccessDenied, match="not authorized"):
        transport(gateway, "billing").direct_endpoint()
    answer = administrator(gateway).direct_endpoint()
    assert answer == live_platform.direct_endpoint
    Admin(transport=administrator(gateway)).create_topic(topic)
    assert topic in Admin(answer).list_topics()  # the storage the HTTP API serves


# ---- end to end: two principals ---------------------------------------------------------------


def test_each_principal_reaches_only_its_topics_over_the_sdk(gateway: Gateway,
                                                             topics: tuple[str, str]) -> None:
    billing, payroll = topics
    mine = transport(gateway, "billing")
    with Producer(transport=mine) as producer:
        producer.send(billing, b"three", partition=0).result(timeout=30)
        with pytest.raises(AccessDenied, match="not authorized"):
            producer.send(payroll, b"nope", partition=0).result(timeout=30)
    consumer = Consumer(billing, transport=mine, group_id=f"billing-{billing}",
                        auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            got += [r.value or b"" for r in consumer.poll(0.5)]
        assert got == [b"one", b"two", b"three"]
        consumer.commit()
    finally:
        consumer.close()
    with pytest.raises(AccessDenied):
        mine.fetch(payroll, 0, 0)
    theirs = transport(gateway, "payroll")
    assert theirs.fetch(payroll, 0, 0).high_watermark == 2


def test_v2_instances_reach_only_granted_topics_over_raw_signed_requests(
        gateway: Gateway, topics: tuple[str, str]) -> None:
    # issue 16: a principal granted "billing*" assigned itself payroll/0 through a v2
    # instance and read it; here end to end, through SigV4, IAM and the handlers.
    billing, payroll = topics
    base = f"{gateway.url}/consumers/billing-{billing}"
    status, created = send("POST", base, {"name": "c1", "auto.offset.reset": "earliest"})
    assert status == 200, created
    inst = f"{base}/instances/c1"
    status, body = send("POST", f"{inst}/assignments",
                        {"partitions": [{"topic": payroll, "partition": 0}]})
    forbidden(status, body, f"'{payroll}'")
    status, body = send("POST", f"{inst}/subscription", {"topic_pattern": ".*"})
    assert status == 204, body
    status, listed = send("GET", f"{inst}/subscription")
    assert payroll not in listed["topics"] and billing in listed["topics"]
    status, rows = send("GET", f"{inst}/records?timeout=0")
    assert status == 200 and {r["topic"] for r in rows} <= {t for t in listed["topics"]}
    status, body = send("GET", f"{inst}/records?timeout=0", key="billing2")  # not its instance
    forbidden(status, body, "'c1'")
    status, body = send("GET", f"{gateway.url}/consumers/payroll-x/instances/c1/records",
                        key="billing")  # a group outside the grant: refused by IAM
    forbidden(status, body, "implicitly denied")
    assert send("DELETE", inst)[0] == 204


def test_another_principals_member_is_refused_over_raw_signed_requests(
        gateway: Gateway, topics: tuple[str, str]) -> None:
    # issue 16 (point 4): commits and releases were accepted for another member's lease.
    billing, _ = topics
    group = f"{gateway.url}/v1/groups/billing-m-{billing}"
    assert send("POST", f"{group}/members/heartbeat",
                {"member_id": "victim", "topics": [billing]})[0] == 200
    assert send("POST", f"{group}/leases",
                {"partitions": [{"topic": billing, "partition": 0}]})[0] == 204
    lease = f"{group}/leases/{billing}/0"
    taken = send("POST", f"{lease}/take", {"member_id": "victim", "seen": {"epoch": 0}})[1]
    epoch = taken["lease"]["epoch"]
    commit = {"member_id": "victim", "offsets": [
        {"topic": billing, "partition": 0, "epoch": epoch, "offset": 2**63 - 1}]}
    status, body = send("POST", f"{group}/commits", commit, key="billing2")
    forbidden(status, body, "'victim'")
    commit["offsets"][0]["offset"] = 1
    assert send("POST", f"{group}/commits", commit)[0] == 204
    assert administrator(gateway).groups.lease(
        f"billing-m-{billing}", TopicPartition(billing, 0)).committed == 1  # type: ignore[union-attr]


def test_an_explicit_deny_wins_and_is_named(live_platform: LocalPlatform, topic: str
                                          ) -> None:
    policy = Policy.from_json({"Version": "2012-10-17", "Statement": [
        {"Sid": "Everything", "Effect": "Allow", "Action": "execute-api:Invoke",
         "Resource": "*"},
        {"Sid": "NoTopicAdmin", "Effect": "Deny", "Action": "execute-api:Invoke",
         "Resource": f"{LOCAL_API}/*/POST/v3/clusters/*/topics"}]}, "ops")
    ops = Gateway(live_platform.engine(),
                  principals=[Principal("ops", "ops", "ops-secret", (policy,))]).start()
    try:
        url = f"{ops.url}/v3/clusters/streamlet/topics"
        status, body = send("POST", url, {"topic_name": topic}, key="ops")
        forbidden(status, body, "explicitly denied by statement 'NoTopicAdmin' of policy 'ops'")
        assert send("GET", url, key="ops")[0] == 200
    finally:
        ops.stop()
