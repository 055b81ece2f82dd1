"""The HTTP transport and the local gateway: SigV4 enforced like API Gateway's IAM
authorization, curl interop, error mapping, and API Gateway-shaped events."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
import threading
import types
from typing import Any

import boto3
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from streamlet import (
    Admin,
    PartitionNotFound,
    Producer,
    RecordTooLarge,
    RequestTimedOut,
    Throttled,
    TopicExists,
    TopicNotFound,
    wire,
)
from streamlet.errors import AccessDenied, StreamletError
from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS
from streamlet.local.gateway import Gateway, SigV4Verifier
from streamlet.transport import connect
from streamlet.transport.http import (
    HttpTransport,
    _Reply,
    error_from_reply,
    split_batches,
)
from tests.batches import make_batch

KEY, SECRET = LOCAL_CREDENTIALS
POOL = urllib3.PoolManager()


def signed(method: str, url: str, body: bytes = b"", *, key: str = KEY, secret: str = SECRET,
           service: str = "execute-api", content_type: str = "application/json"
           ) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"Content-Type": content_type})
    SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(request)
    return dict(request.headers.items())


def create_body(topic: str) -> bytes:
    return json.dumps({"topic_name": topic, "partitions_count": 1}).encode()


@pytest.fixture
def gateway(gateway_url: str, live_platform: LocalPlatform,
            monkeypatch: pytest.MonkeyPatch) -> str:
    """The gateway's URL, with the credential chain holding the keys it accepts."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return gateway_url


def refused(url: str, topic: str, headers: dict[str, str], platform: LocalPlatform) -> None:
    reply = POOL.request("POST", url, body=create_body(topic), headers=headers)
    body = json.loads(reply.data)
    assert reply.status == 403, body
    assert body["error_code"] == 40301 and body["message"].startswith("Forbidden")
    assert topic not in platform.engine().list_topics()


def test_unsigned_and_wrongly_signed_requests_are_403_and_change_nothing(
        gateway: str, live_platform: LocalPlatform, topic: str) -> None:
    url = f"{gateway}/v3/clusters/streamlet/topics"
    refused(url, topic, {"Content-Type": "application/json"}, live_platform)
    refused(url, topic, signed("POST", url, create_body(topic), secret="wrong"), live_platform)
    refused(url, topic, signed("POST", url, create_body(topic), key="AKIDUNKNOWN"),
            live_platform)
    refused(url, topic, signed("POST", url, create_body(topic), service="s3"), live_platform)
    refused(url, topic, signed("POST", url, b"{}"), live_platform)  # body swapped after signing
    ok = POOL.request("POST", url, body=create_body(topic),
                      headers=signed("POST", url, create_body(topic)))
    assert ok.status == 201
    assert topic in live_platform.engine().list_topics()


def test_stale_signatures_are_refused(gateway: str, live_platform: LocalPlatform, topic: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{gateway}/v3/clusters/streamlet/topics"
    ten_minutes_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: ten_minutes_ago)
    refused(url, topic, signed("POST", url, create_body(topic)), live_platform)


def test_verifier_reasons() -> None:
    verifier = SigV4Verifier({KEY: SECRET}, clock=lambda: 0.0)
    assert "not signed" in (verifier.check("GET", "/", {}, b"") or "")
    assert "not a SigV4" in (verifier.check("GET", "/", {"Authorization": "Basic x"}, b"") or "")
    headers = signed("GET", "http://127.0.0.1:1/v3/clusters")
    headers["host"] = "127.0.0.1:1"
    assert "not yet current" in (verifier.check("GET", "/v3/clusters", headers, b"") or "")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_aws_sigv4_works_against_the_gateway(gateway: str) -> None:
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:us-east-1:execute-api",
         "--user", f"{KEY}:{SECRET}", f"{gateway}/v3/clusters"],
        capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)["data"][0]["cluster_id"] == "streamlet"
    unsigned = subprocess.run(["curl", "-sS", f"{gateway}/v3/clusters"],
                              capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(unsigned.stdout)["error_code"] == 40301


def test_http_endpoints_connect_to_the_http_transport(gateway: str) -> None:
    assert isinstance(connect(gateway), HttpTransport)
    assert isinstance(connect("https://abc.execute-api.eu-west-1.amazonaws.com/prod"),
                      HttpTransport)


def test_region_comes_from_an_execute_api_url_first() -> None:
    session = boto3.Session(region_name="us-west-2")
    aws = HttpTransport("https://abc.execute-api.eu-west-1.amazonaws.com", session)
    custom = HttpTransport("https://streams.example.com", session)  # a custom domain
    local = HttpTransport("http://127.0.0.1:9", session)  # the local gateway's region
    assert (aws._region, custom._region, local._region) == (
        "eu-west-1", "us-west-2", "us-east-1")


def test_errors_map_to_the_same_classes(gateway: str, topic: str) -> None:
    transport = HttpTransport(gateway)
    transport.create_topic(topic, 2)
    with pytest.raises(TopicExists):
        transport.create_topic(topic)
    with pytest.raises(PartitionNotFound, match="Partition 5 of topic"):
        transport.watermarks(topic, 5)
    with pytest.raises(TopicNotFound):
        transport.fetch("nope-nope", 0, 0)
    wrong = HttpTransport(gateway, boto3.Session(aws_access_key_id=KEY,
                                                 aws_secret_access_key="wrong"))
    with pytest.raises(AccessDenied, match="signature"):
        wrong.list_topics()


@pytest.mark.parametrize(("status", "body", "cls"), [
    (429, b'{"message":"Too Many Requests"}', Throttled),
    (503, b'{"message":"Service Unavailable"}', RequestTimedOut),
    (504, b'{"message":"Endpoint request timed out"}', RequestTimedOut),
    (500, b"not json", RequestTimedOut),
    (413, b'{"message":"Request Entity Too Large"}', RecordTooLarge),
    (404, b'{"error_code": 40401, "message": "gone"}', TopicNotFound),
    (403, b'{"message":"Forbidden"}', AccessDenied),
])
def test_error_bodies_without_our_code(status: int, body: bytes, cls: type) -> None:
    error = error_from_reply(status, body)
    assert type(error) is cls
    assert error.retriable == (status in (429, 500, 503, 504))


def test_connection_failures_are_retriable() -> None:
    with pytest.raises(RequestTimedOut, match="no answer"):
        HttpTransport("http://127.0.0.1:9", boto3.Session(
            aws_access_key_id=KEY, aws_secret_access_key=SECRET)).list_topics()


def test_an_append_left_without_a_reply_is_retried_only_after_its_deadline() -> None:
    """The connection drops after the request went out: the attempt may still be running
    in the API, so the error comes only once the API can no longer start a write for it
    (and a retry cannot overlap it). Nothing sent (connection refused): no wait."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        def drop_after_request() -> None:
            conn, _ = server.accept()
            conn.recv(65536)
            conn.close()

        threading.Thread(target=drop_after_request, daemon=True).start()
        port = server.getsockname()[1]
        transport = HttpTransport(f"http://127.0.0.1:{port}", boto3.Session(
            aws_access_key_id=KEY, aws_secret_access_key=SECRET))
        waits: list[float] = []
        transport._sleep = waits.append
        with pytest.raises(RequestTimedOut, match="may have been applied"):
            transport.append("t", 0, make_batch([b"x"]))
    assert len(waits) == 1
    assert wire.APPEND_RETRY_AFTER_MS / 1000 - 5 < waits[0] <= wire.APPEND_RETRY_AFTER_MS / 1000
    assert wire.APPEND_RETRY_AFTER_MS > wire.APPEND_DEADLINE_MS
    refused = HttpTransport(f"http://127.0.0.1:{port}", boto3.Session(
        aws_access_key_id=KEY, aws_secret_access_key=SECRET))
    refused._sleep = waits.append
    with pytest.raises(RequestTimedOut, match="nothing was sent"):
        refused.append("t", 0, make_batch([b"x"]))
    assert len(waits) == 1


@pytest.mark.parametrize(("status", "body", "outcome"), [
    (200, b'{"direct_endpoint": "direct://s?bucket=b&region=eu-west-1"}',
     "direct://s?bucket=b&region=eu-west-1"),
    (404, b'{"message":"Not Found"}', None),  # API Gateway: a deployment without the route
    (403, b'{"message":"Forbidden"}', AccessDenied),
    (200, b'{"direct_endpoint": "https://elsewhere"}', "answered no direct endpoint"),
    (200, b"<html>", "answered no direct endpoint"),
])
def test_direct_endpoint_reads_the_deployments_answer(
        monkeypatch: pytest.MonkeyPatch, status: int, body: bytes, outcome: Any) -> None:
    transport = HttpTransport("https://abc123.execute-api.eu-west-1.amazonaws.com",
                              boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET))
    sent: list[str] = []

    def answer(method: str, url: str, body_: bytes | None, headers: dict[str, str]) -> Any:
        sent.append(f"{method} {url} {'Authorization' in headers}")
        return _Reply(status, {}, body)

    monkeypatch.setattr(transport, "_send", answer)
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            transport.direct_endpoint()
    elif outcome is None or outcome.startswith("direct"):
        assert transport.direct_endpoint() == outcome
    else:
        with pytest.raises(StreamletError, match=outcome):
            transport.direct_endpoint()
    assert sent == ["GET https://abc123.execute-api.eu-west-1.amazonaws.com/v1/deployment True"]


def test_the_producer_rides_out_throttling_over_http(gateway: str, topic: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    transport = HttpTransport(gateway)
    transport.create_topic(topic)
    real = transport._send
    throttles = iter([True, True, False])

    def flaky(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Any:
        if "/batches" in url and next(throttles, False):
            return _Reply(429, {}, b'{"message": "Too Many Requests"}')  # API Gateway's own
        return real(method, url, body, headers)

    monkeypatch.setattr(transport, "_send", flaky)
    with Producer(transport=transport, retry_backoff_ms=1) as producer:
        meta = producer.send(topic, b"once").result(timeout=30)
    assert meta.offset == 0
    assert transport.watermarks(topic, 0) == (0, 1)


def test_split_batches_round_trips_and_rejects_truncation() -> None:
    batches = [make_batch([b"a"]), make_batch([b"b", b"c"], codec="gzip")]
    assert split_batches(b"".join(batches)) == batches
    with pytest.raises(Exception, match="ends inside"):
        split_batches(b"".join(batches)[:-3])


def test_gateway_builds_http_api_events(live_platform: LocalPlatform,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "body": "aGk=", "isBase64Encoded": True,
                "headers": {"X-Test": "1"}}

    fake = types.SimpleNamespace(
        routes=lambda: [("POST /v1/topics/{topic}/partitions/{partition}/batches", "h")],
        local_mode=lambda: None, bound_engine=lambda engine, endpoint: contextlib.nullcontext(),
        bound_grants=lambda source: contextlib.nullcontext(), h=handler)
    monkeypatch.setitem(sys.modules, "fake_handlers", fake)
    gateway = Gateway(None, credentials={KEY: SECRET}, handlers="fake_handlers").start()
    try:
        url = f"{gateway.url}/v1/topics/a.b/partitions/3/batches?expected_offset=7&x=1&x=2"
        reply = POOL.request("POST", url, body=b"\x00\xff", headers=signed(
            "POST", url, b"\x00\xff", content_type="application/octet-stream"))
        missing = POOL.request("GET", f"{gateway.url}/nope", headers=signed(
            "GET", f"{gateway.url}/nope"))
    finally:
        gateway.stop()
    assert (reply.status, reply.data, reply.headers["X-Test"]) == (200, b"hi", "1")
    assert missing.status == 404
    [event] = seen
    assert event["routeKey"] == "POST /v1/topics/{topic}/partitions/{partition}/batches"
    assert event["pathParameters"] == {"topic": "a.b", "partition": "3"}
    assert event["queryStringParameters"] == {"expected_offset": "7", "x": "1,2"}
    assert event["rawQueryString"] == "expected_offset=7&x=1&x=2"
    assert event["isBase64Encoded"] and event["body"] == "AP8="
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["stage"] == "$default"
    assert event["requestContext"]["authorizer"]["iam"]["userArn"] == (
        f"arn:aws:iam::000000000000:user/{KEY}")  # the signer, as API Gateway passes it


def test_admin_over_http_describes_like_direct(gateway: str, live_platform: LocalPlatform,
                                               topic: str) -> None:
    Admin(gateway).create_topic(topic, 2, {"retention.ms": 1000})
    over_http = Admin(gateway).describe_topic(topic)
    direct = Admin(live_platform.endpoint).describe_topic(topic)
    assert over_http == direct


def test_gateway_refuses_bodies_over_api_gateways_limit(gateway: str) -> None:
    url = f"{gateway}/v1/topics/t/partitions/0/batches"
    reply = POOL.request("POST", url, body=b"x" * (10 * 1024 * 1024 + 1))
    assert (reply.status, json.loads(reply.data)["error_code"]) == (413, 41301)


def test_close_releases_the_connection_pool_and_clients_close_what_they_made(
        gateway: str, topic: str) -> None:
    transport = HttpTransport(gateway)
    transport.list_topics()
    assert len(transport._pool.pools) == 1
    transport.close()
    assert len(transport._pool.pools) == 0
    transport.list_topics()  # a closed transport reconnects if used again
    transport.close()
    admin = Admin(gateway)
    admin.create_topic(topic)
    pool = admin._transport._pool  # type: ignore[attr-defined]
    assert len(pool.pools) == 1
    admin.close()
    assert len(pool.pools) == 0


def test_loopback_endpoints_sign_for_the_local_region() -> None:
    """A developer whose profile region is eu-west-1 still reaches `streamlet local`."""
    session = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                            region_name="eu-west-1")
    assert HttpTransport("http://127.0.0.1:4567", session)._region == "us-east-1"
    assert HttpTransport("http://[::1]:4567", session)._region == "us-east-1"
    assert HttpTransport("https://api.example.com", session)._region == "eu-west-1"
