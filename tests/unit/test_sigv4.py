"""The local gateway's SigV4 check refuses what API Gateway's IAM authorization refuses.

Requests are signed with botocore's SigV4Auth (and once with curl) at a fixed time; each
test breaks one rule of ``streamlet.local.sigv4``'s docstring, whose AWS sources it cites.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from streamlet.local.sigv4 import Caller, SignatureRejected, SigV4Verifier, gateway_hosts

KEY, SECRET = "AKIDLOCAL", "local-secret"
TEMP_KEY, TEMP_SECRET, TOKEN = "ASIATEMP", "temp-secret", "session-token"
HOST = "127.0.0.1:4567"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
STAMP = "20260102T030405Z"


class _Signer(SigV4Auth):
    """botocore's SigV4, leaving ``unsigned`` headers out of SignedHeaders."""

    def __init__(self, credentials: Credentials, service: str, region: str,
                 unsigned: tuple[str, ...]) -> None:
        super().__init__(credentials, service, region)
        self._unsigned = unsigned

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in super().headers_to_sign(request).items():
            if name not in self._unsigned:
                headers[name] = value
        return headers


def signed(method: str = "GET", path: str = "/v3/clusters", body: bytes = b"", *,
           host: str = HOST, region: str = "us-east-1", service: str = "execute-api",
           key: str = KEY, secret: str = SECRET, token: str | None = None,
           headers: dict[str, str] | None = None, unsigned: tuple[str, ...] = (),
           at: float = NOW) -> dict[str, str]:
    """The headers of a request signed by botocore at ``at``, Host included."""
    request = AWSRequest(method=method, url=f"http://127.0.0.1:1{path}", data=body,
                         headers={"Host": host, **(headers or {})})
    when = datetime.fromtimestamp(at, UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        _Signer(Credentials(key, secret, token), service, region, unsigned).add_auth(request)
    return dict(request.headers.items())


def signed_with_date_header(stamp: str = STAMP, unsigned_date: bool = False
                            ) -> dict[str, str]:
    """Signed with a ``Date`` header carrying the time and no X-Amz-Date (botocore's parts)."""
    headers = {"Host": HOST, "Date": stamp}
    request = AWSRequest(method="GET", url=f"http://{HOST}/v3/clusters", headers=headers)
    request.context["timestamp"] = stamp
    signer = _Signer(Credentials(KEY, SECRET), "execute-api", "us-east-1",
                     ("date",) if unsigned_date else ())
    signature = signer.signature(signer.string_to_sign(
        request, signer.canonical_request(request)), request)
    names = "host" if unsigned_date else "date;host"
    return {**headers, "Authorization": f"AWS4-HMAC-SHA256 Credential={KEY}/{stamp[:8]}/"
            f"us-east-1/execute-api/aws4_request, SignedHeaders={names}, "
            f"Signature={signature}"}


def verifier(**options: Any) -> SigV4Verifier:
    return SigV4Verifier({KEY: SECRET, TEMP_KEY: TEMP_SECRET}, clock=lambda: NOW,
                         session_tokens={TEMP_KEY: TOKEN}, **options)


def refusal(headers: dict[str, str], body: bytes = b"", *, path: str = "/v3/clusters",
            method: str = "GET", **options: Any) -> str:
    with pytest.raises(SignatureRejected) as refused:
        verifier(**options).verify(method, path, headers, body)
    return str(refused.value)


# ---- a correct request and its caller -------------------------------------------------------


def test_a_correctly_signed_request_names_its_caller() -> None:
    body = b'{"topic_name": "orders"}'
    headers = signed("POST", "/v3/clusters/streamlet/topics?validate=true", body,
                     headers={"Content-Type": "application/json"})
    caller = verifier().verify("POST", "/v3/clusters/streamlet/topics?validate=true",
                               headers, body)
    assert caller == Caller(KEY, f"arn:aws:iam::000000000000:user/{KEY}")


def test_the_caller_is_the_principal_the_gateway_was_configured_with() -> None:
    arn = "arn:aws:iam::123456789012:role/producer"
    assert verifier(principals={KEY: arn}).verify("GET", "/v3/clusters", signed(), b"") \
        == Caller(KEY, arn)


def test_check_is_none_or_the_reason() -> None:
    assert verifier().check("GET", "/v3/clusters", signed(), b"") is None
    assert "not signed" in (verifier().check("GET", "/", {"Host": HOST}, b"") or "")


# ---- rule 1: one well-formed Authorization header ------------------------------------------


def test_a_repeated_authorization_header_is_refused() -> None:
    headers = signed()
    # the gateway joins a repeated header with commas, as API Gateway's event does
    headers["Authorization"] = f"{headers['Authorization']},{headers['Authorization']}"
    assert "more than one Authorization header" in refusal(headers)


def test_an_authorization_header_repeated_in_another_case_is_refused() -> None:
    headers = signed()
    headers["authorization"] = headers["Authorization"]
    assert "more than one Authorization header" in refusal(headers)


def test_a_second_authorization_scheme_is_refused() -> None:
    headers = signed()
    headers["Authorization"] += ",Basic dXNlcjpwYXNz"
    assert "Unexpected 'Basic dXNlcjpwYXNz'" in refusal(headers)


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda a: a.replace(", Signature=", ", Nonce=x, Signature="), "Unexpected 'Nonce=x'"),
    (lambda a: a.split(", Signature=")[0], "requires 'Signature'"),
    (lambda a: a.replace("/aws4_request", "/aws4"), "The Credential must be"),
    (lambda a: a[:-8] + "ZZZZZZZZ", "64 lowercase hexadecimal"),
    (lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"), "not a SigV4"),
])
def test_a_malformed_authorization_header_says_what_is_wrong(edit: Any, reason: str) -> None:
    headers = signed()
    headers["Authorization"] = edit(headers["Authorization"])
    assert reason in refusal(headers)


# ---- rule 2: known key, session token exactly when configured -------------------------------


def test_an_unknown_key_or_a_wrong_secret_is_refused() -> None:
    assert "unknown access key" in refusal(signed(key="AKIDUNKNOWN"))
    assert "does not match" in refusal(signed(secret="wrong"))


def test_a_temporary_key_signs_with_its_session_token() -> None:
    headers = signed(key=TEMP_KEY, secret=TEMP_SECRET, token=TOKEN)
    assert verifier().verify("GET", "/v3/clusters", headers, b"").access_key == TEMP_KEY
    assert "needs its X-Amz-Security-Token" in refusal(
        signed(key=TEMP_KEY, secret=TEMP_SECRET))
    assert "not this access key's session token" in refusal(
        signed(key=TEMP_KEY, secret=TEMP_SECRET, token="stolen"))
    assert "not this access key's session token" in refusal(signed(token=TOKEN))


def test_the_session_token_must_be_signed() -> None:
    headers = signed(key=TEMP_KEY, secret=TEMP_SECRET, token=TOKEN,
                     unsigned=("x-amz-security-token",))
    assert "x-amz-security-token header must be signed" in refusal(headers)


# ---- rule 3: the credential scope ----------------------------------------------------------


def test_the_scope_must_name_the_gateways_region() -> None:
    assert "valid region: 'us-east-1', not 'eu-west-1'" in refusal(signed(region="eu-west-1"))
    eu = verifier(region="eu-west-1")
    assert eu.verify("GET", "/v3/clusters", signed(region="eu-west-1"), b"").access_key == KEY
    assert eu.check("GET", "/v3/clusters", signed(), b"") is not None


def test_the_scope_must_name_execute_api() -> None:
    assert "correct service: 'execute-api', not 's3'" in refusal(signed(service="s3"))


# ---- rule 4: what must be signed ------------------------------------------------------------


def test_host_must_be_signed() -> None:
    assert "host header must be signed" in refusal(signed(unsigned=("host",)))


def test_x_amz_date_must_be_signed() -> None:
    assert "x-amz-date header must be signed" in refusal(signed(unsigned=("x-amz-date",)))


def test_every_x_amz_header_sent_must_be_signed() -> None:
    headers = signed(headers={"X-Amz-Target": "Streamlet.Produce"},
                     unsigned=("x-amz-target",))
    assert "x-amz-target header must be signed" in refusal(headers)
    headers = signed()
    headers["X-Amz-Meta-Added"] = "after signing"
    assert "x-amz-meta-added header must be signed" in refusal(headers)


def test_a_signed_header_must_be_in_the_request() -> None:
    headers = signed(headers={"X-Trace": "1"})
    del headers["X-Trace"]
    assert "signed header 'x-trace' is not in the request" in refusal(headers)


def test_content_type_need_not_be_signed_as_aws_documents() -> None:
    # "You can optionally include other standard headers in the signature, such as
    # content-type" (IAM User Guide, Create a signed AWS API request); curl -d adds an
    # unsigned application/x-www-form-urlencoded.
    body = b'{"topic_name": "orders"}'
    headers = signed("POST", body=body, headers={"Content-Type": "application/json"},
                     unsigned=("content-type",))
    assert verifier().verify("POST", "/v3/clusters", headers, body).access_key == KEY


# ---- rule 5: the host is the gateway's own ------------------------------------------------


@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:4567", "127.0.0.1.evil.example", "127.0.0.1@evil.example",
    "127.0.0.1:4567,evil.example", "[::1]x", "localhost:port",
])
def test_a_signed_foreign_host_is_refused(host: str) -> None:
    assert f"Host '{host}' is not this gateway's" in refusal(signed(host=host))


@pytest.mark.parametrize("host", ["127.0.0.1:4567", "localhost:9", "[::1]:80", "localhost"])
def test_by_default_any_loopback_name_is_the_gateways(host: str) -> None:
    assert verifier().verify("GET", "/v3/clusters", signed(host=host), b"").access_key == KEY


def test_configured_hosts_are_the_only_ones() -> None:
    hosts = gateway_hosts("127.0.0.1", 4567)
    assert verifier(hosts=hosts).check("GET", "/v3/clusters", signed(host="localhost:4567"),
                                       b"") is None
    assert "not this gateway's" in refusal(signed(host="127.0.0.1:4568"), hosts=hosts)
    assert "not this gateway's" in refusal(signed(host="10.0.0.5:4567"), hosts=hosts)
    lan = {*hosts, "10.0.0.5:4567"}
    assert verifier(hosts=lan).check("GET", "/v3/clusters", signed(host="10.0.0.5:4567"),
                                     b"") is None


def test_the_signature_covers_the_host_the_request_arrived_with() -> None:
    headers = signed(host="localhost:4567")
    headers["Host"] = HOST
    assert "does not match" in refusal(headers)


def test_gateway_hosts() -> None:
    assert gateway_hosts("localhost", 80) == {
        "127.0.0.1:80", "localhost:80", "[::1]:80", "127.0.0.1", "localhost", "[::1]"}
    assert gateway_hosts("::1", 8080) == {"127.0.0.1:8080", "localhost:8080", "[::1]:8080"}
    assert gateway_hosts("10.0.0.5", 4567) == {"10.0.0.5:4567"}
    assert "127.0.0.1:4567" in gateway_hosts("0.0.0.0", 4567)


# ---- rule 6: the date ----------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [-4.9, 0, 4.9])
def test_a_signature_within_5_minutes_is_current(minutes: float) -> None:
    headers = signed(at=NOW + minutes * 60)
    assert verifier().check("GET", "/v3/clusters", headers, b"") is None


def test_an_old_signature_has_expired() -> None:
    reason = refusal(signed(at=NOW - 360))
    assert reason == ("Signature expired: 20260102T025805Z is now earlier than "
                      "20260102T025905Z (20260102T030405Z - 5 min.)")


def test_a_signature_from_the_future_is_not_yet_current() -> None:
    reason = refusal(signed(at=NOW + 360))
    assert reason == ("Signature not yet current: 20260102T031005Z is still later than "
                      "20260102T030905Z (20260102T030405Z + 5 min.)")


def test_a_signed_date_header_may_carry_the_time() -> None:
    # "If we can't find an x-amz-date header, then we look for a date header" (IAM User
    # Guide, Elements of an AWS API request signature), in ISO 8601 basic format.
    assert verifier().verify("GET", "/v3/clusters", signed_with_date_header(), b"") \
        .access_key == KEY
    assert "date header must be signed" in refusal(signed_with_date_header(unsigned_date=True))


def test_the_date_must_be_iso_8601_basic() -> None:
    headers = signed_with_date_header()
    headers["Date"] = "Fri, 02 Jan 2026 03:04:05 GMT"
    assert "not in ISO 8601 basic format" in refusal(headers)
    undated = signed_with_date_header(unsigned_date=True)
    del undated["Date"]
    assert "no X-Amz-Date or Date header" in refusal(undated)


def test_the_scope_date_must_be_the_request_date() -> None:
    headers = signed()
    headers["Authorization"] = headers["Authorization"].replace("/20260102/", "/20260101/")
    assert "'20260101' != '20260102'" in refusal(headers)


# ---- rules 7 and 8: the body and the signature ----------------------------------------------


def test_the_body_is_signed() -> None:
    headers = signed("POST", body=b'{"a": 1}')
    assert "does not match" in refusal(headers, b'{"a": 2}', method="POST")


def test_x_amz_content_sha256_must_hash_the_body() -> None:
    body = b"payload"
    sha = hashlib.sha256(body).hexdigest()
    headers = signed("POST", body=body, headers={"X-Amz-Content-SHA256": sha})
    assert verifier().check("POST", "/v3/clusters", headers, body) is None
    headers = signed("POST", body=body, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert "does not match the request body" in refusal(headers, body, method="POST")


def test_the_query_string_is_signed() -> None:
    headers = signed(path="/v1/topics/t/partitions/0/batches?offset=5")
    assert "does not match" in refusal(headers, path="/v1/topics/t/partitions/0/batches"
                                                    "?offset=0")


# ---- curl --aws-sigv4 -------------------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[tuple[str, list[tuple[str, str, dict[str, str], bytes]]]]:
    """A loopback HTTP server recording each request (method, path, headers, body)."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, dict(self.headers.items()),
                         self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    thread.join()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("extra", [[], ["-d", "a=1"],
                                   ["-H", "Content-Type: application/json", "-d", "{}"]])
def test_curl_aws_sigv4_requests_are_accepted(echo: Any, extra: list[str]) -> None:
    url, seen = echo
    subprocess.run(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:execute-api",
                    "--user", f"{KEY}:{SECRET}", *extra, f"{url}/v3/clusters"],
                   check=True, capture_output=True, timeout=30)
    method, path, headers, body = seen[0]
    live = SigV4Verifier({KEY: SECRET}, clock=time.time)
    assert live.verify(method, path, headers, body).access_key == KEY
