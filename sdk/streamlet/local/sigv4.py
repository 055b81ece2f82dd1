"""Checking SigV4 signatures the way API Gateway's IAM authorization does (local gateway).

The signature is recomputed with botocore's own SigV4 code over exactly the headers the
client signed, with the secret of the access key it names, and compared in constant
time; the scope must be ``execute-api`` and X-Amz-Date within 5 minutes of now.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

__all__ = ["MAX_SKEW_S", "SERVICE", "SigV4Verifier"]

SERVICE = "execute-api"
MAX_SKEW_S = 300
_AUTH = re.compile(r"AWS4-HMAC-SHA256\s+(.*)", re.S)


class _SignedHeadersOnly(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client said it signed."""

    def __init__(self, credentials: Credentials, region: str, names: list[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._names = names

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._names:
            headers[name] = request.headers[name]
        return headers


@dataclass(frozen=True)
class _Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str


def _parse_authorization(value: str) -> _Authorization | None:
    found = _AUTH.fullmatch(value.strip())
    if not found:
        return None
    parts = dict(p.strip().partition("=")[::2] for p in found.group(1).split(","))
    scope = parts.get("Credential", "").split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not parts.get("Signature"):
        return None
    names = [n.strip().lower() for n in parts.get("SignedHeaders", "").split(";") if n.strip()]
    return _Authorization(scope[0], scope[1], scope[2], scope[3], names, parts["Signature"])


class SigV4Verifier:
    """Checks a request's SigV4 signature against known access keys.

    Example:
        >>> SigV4Verifier({"AKID": "secret"}).check("GET", "/v3/clusters", {}, b"")
        'Missing Authentication Token: the request is not signed.'
    """

    def __init__(self, credentials: Mapping[str, str], max_skew_s: int = MAX_SKEW_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._secrets = dict(credentials)
        self._max_skew_s = max_skew_s
        self._clock = clock

    def check(self, method: str, raw_uri: str, headers: Mapping[str, str], body: bytes
              ) -> str | None:
        """None if the signature is valid, else why the request is refused."""
        lower = {k.lower(): v for k, v in headers.items()}
        if "authorization" not in lower:
            return "Missing Authentication Token: the request is not signed."
        auth = _parse_authorization(lower["authorization"])
        if auth is None:
            return "The Authorization header is not a SigV4 (AWS4-HMAC-SHA256) signature."
        problem = self._check_scope(auth, lower) or self._check_date(auth, lower) \
            or _check_payload(lower, body)
        if problem:
            return problem
        expected = self._signature(auth, method, raw_uri, lower, body)
        if not hmac.compare_digest(expected, auth.signature):
            return "The request signature we calculated does not match the signature provided."
        return None

    def _check_scope(self, auth: _Authorization, headers: Mapping[str, str]) -> str | None:
        if auth.access_key not in self._secrets:
            return "The security token included in the request is invalid."
        if auth.service != SERVICE:
            return f"Credential should be scoped to correct service: '{SERVICE}'."
        if "host" not in auth.signed_headers or any(
                n not in headers for n in auth.signed_headers):
            return "The signed headers must include host and be present in the request."
        return None

    def _check_date(self, auth: _Authorization, headers: Mapping[str, str]) -> str | None:
        stamp = headers.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "The request has no valid X-Amz-Date header."
        if abs(signed_at.timestamp() - self._clock()) > self._max_skew_s \
                or stamp[:8] != auth.date:
            return "Signature expired: X-Amz-Date is more than 5 minutes from now."
        return None

    def _signature(self, auth: _Authorization, method: str, raw_uri: str,
                   headers: Mapping[str, str], body: bytes) -> str:
        signed = {name: headers[name] for name in auth.signed_headers}
        request = AWSRequest(method=method, url=f"http://{headers['host']}{raw_uri}",
                             data=body, headers=signed)
        request.context["timestamp"] = headers["x-amz-date"]
        secret = self._secrets[auth.access_key]
        signer = _SignedHeadersOnly(Credentials(auth.access_key, secret), auth.region,
                                    auth.signed_headers)
        canonical = signer.canonical_request(request)
        return str(signer.signature(signer.string_to_sign(request, canonical), request))


def _check_payload(headers: Mapping[str, str], body: bytes) -> str | None:
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        return "X-Amz-Content-SHA256 does not match the request body."
    return None
