"""Who is on a Kafka connection (SASL), and what they may do (the HTTP API's grants).

Authentication, the AWS way a third party can verify:

- **OAUTHBEARER** whose token is a SigV4-*presigned* ``sts:GetCallerIdentity`` request
  (the aws-iam-authenticator / Vault AWS-auth pattern; :mod:`.tokens` makes them). The
  gateway executes it against STS, which answers with the signer's ARN only if the
  signature is valid; the answer is cached until the token expires. The request must be
  for an STS host (``sts[.REGION].amazonaws.com``, or the one endpoint configured for the
  local platform): the gateway never fetches a URL a client chose. The token must also
  sign the ``x-streamlet-audience`` header with the gateway's audience, so a presigned
  GetCallerIdentity made for another service cannot be replayed here.
- **PLAIN** (access key id and secret) and no authentication at all only on the local
  platform, whose credentials are well known.

The session lasts until the token expires (SaslAuthenticate's ``session_lifetime_ms``);
a client re-authenticates on the same connection (KIP-368) or the gateway closes it.

Authorization uses the grants of the HTTP API, one source of truth
(:mod:`streamlet.engine.grants`): each Kafka operation is the HTTP route that does the
same (producing to ``orders`` partition 3 is ``POST /v1/topics/orders/partitions/3/
batches``; group operations ``POST /v1/groups/{group}/commits``; administration the
REST v3 admin routes), evaluated with :mod:`streamlet.policy` against the caller's
policies: on AWS, the grant registry that ``grant_*`` fills; locally, each principal's
own policies.

Example:
    >>> auth = open_access()
    >>> auth.new_session("127.0.0.1").principal is None
    True
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

from ..errors import AccessDenied
from ..policy import Policy, evaluate, execute_api_arn
from . import codes
from .protocol import ApiKey

__all__ = ["AUDIENCE_HEADER", "Authenticator", "PlainVerifier", "Session", "StsVerifier",
           "open_access"]

AUDIENCE_HEADER = "x-streamlet-audience"
DEFAULT_AUDIENCE = "streamlet"
MAX_TOKEN_AGE_S = 15 * 60
"""A presigned token older than this is refused (STS allows presigning for 12 hours)."""
_PRE_AUTH = frozenset({ApiKey.ApiVersions, ApiKey.SaslHandshake, ApiKey.SaslAuthenticate})
_STS_HOST = re.compile(r"sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")


class AuthFailed(Exception):
    """A SASL exchange failed; the message goes back to the client."""


@dataclass
class Session:
    """One connection's identity."""

    peer: str
    principal: str | None = None
    authenticated: bool = False
    mechanism: str | None = None
    expires_ms: int | None = None
    closing: bool = False
    decisions: dict[tuple[str, str], bool] = field(default_factory=dict)
    handler_state: dict[str, object] = field(default_factory=dict)
    """What the API handlers keep for this connection (its producers' last batches)."""


class Verifier(Protocol):
    """Turns a SASL mechanism's client message into (caller ARN, expiry ms or None)."""

    def verify(self, message: bytes) -> tuple[str, int | None]: ...


PolicySource = Callable[[str], tuple[Policy, ...]]
"""The caller ARN's IAM policies over :attr:`Authenticator.api_arn`."""


@dataclass(frozen=True)
class ApiArn:
    """The execute-api ARN parts the grants' policies are written against."""

    region: str = "us-east-1"
    account: str = "000000000000"
    api_id: str = "kafka"
    stage: str = "$default"

    @property
    def arn(self) -> str:
        return f"arn:aws:execute-api:{self.region}:{self.account}:{self.api_id}"


class Authenticator:
    """The gateway's SASL mechanisms and authorization; no mechanisms = no authentication."""

    def __init__(self, mechanisms: Mapping[str, Verifier] | None = None,
                 policies: PolicySource | None = None, api: ApiArn | None = None,
                 *, optional: bool = False) -> None:
        self.mechanisms = dict(mechanisms or {})
        self._policies = policies
        self.api = api or ApiArn()
        self.optional = optional
        """Local platform: a connection without SASL is an administrator; one that
        authenticates gets its principal's policies."""

    @property
    def required(self) -> bool:
        return bool(self.mechanisms) and not self.optional

    def new_session(self, peer: str) -> Session:
        return Session(peer, authenticated=not self.required)

    def gate(self, session: Session, api_key: int) -> int | None:
        """An error code for a request the session may not send yet (or any more)."""
        if session.expires_ms is not None and time.time() * 1000 >= session.expires_ms \
                and api_key not in _PRE_AUTH:
            session.closing = True  # KIP-368: re-authenticate, or reconnect
            return codes.SASL_AUTHENTICATION_FAILED
        if session.authenticated or api_key in _PRE_AUTH:
            return None
        session.closing = True
        return codes.SASL_AUTHENTICATION_FAILED

    # ---- SASL ---------------------------------------------------------------------------

    def handshake(self, session: Session, mechanism: str) -> int:
        if mechanism not in self.mechanisms:
            return codes.UNSUPPORTED_SASL_MECHANISM
        session.mechanism = mechanism
        return codes.NONE

    def authenticate(self, session: Session, message: bytes) -> tuple[int, str | None, int]:
        """(error code, error message, session lifetime ms) for one SaslAuthenticate."""
        verifier = self.mechanisms.get(session.mechanism or "")
        if verifier is None:
            return codes.ILLEGAL_SASL_STATE, "SaslHandshake first.", 0
        try:
            caller, expires_ms = verifier.verify(message)
        except AuthFailed as error:
            session.closing = True
            return codes.SASL_AUTHENTICATION_FAILED, str(error), 0
        if session.principal is not None and session.principal != caller:
            session.closing = True
            return (codes.SASL_AUTHENTICATION_FAILED,
                    "Re-authentication must keep the principal.", 0)
        session.principal, session.authenticated = caller, True
        session.expires_ms, session.decisions = expires_ms, {}
        lifetime = 0 if expires_ms is None else max(1, expires_ms - int(time.time() * 1000))
        return codes.NONE, None, lifetime

    # ---- authorization ------------------------------------------------------------------

    def allows(self, session: Session, method: str, path: str) -> bool:
        """Whether the session's caller may invoke ``method path`` (open access: yes)."""
        if session.principal is None:
            return not self.required
        if self._policies is None:
            return True
        key = (method, path)
        if key not in session.decisions:
            arn = execute_api_arn(self.api.region, self.api.account, self.api.api_id,
                                  self.api.stage, method, path)
            policies = self._policies(session.principal)
            session.decisions[key] = evaluate(policies, "execute-api:Invoke", arn).allowed
        return session.decisions[key]

    def check(self, session: Session, method: str, path: str, what: str) -> None:
        if not self.allows(session, method, path):
            raise AccessDenied(f"{what} is outside the caller's grant.")


def open_access() -> Authenticator:
    """No authentication and every operation allowed (the local platform's default)."""
    return Authenticator()


# ---- routes standing for Kafka operations (what a grant must allow) ------------------------


def produce_route(topic: str, partition: int) -> tuple[str, str]:
    return "POST", f"/v1/topics/{topic}/partitions/{partition}/batches"


def read_route(topic: str, partition: int | None = None) -> tuple[str, str]:
    return "GET", f"/v1/topics/{topic}/partitions/{'*' if partition is None else partition}" \
                  "/batches"


def describe_route(topic: str) -> tuple[str, str]:
    return "GET", f"/v1/topics/{topic}"


def group_route(group: str) -> tuple[str, str]:
    return "POST", f"/v1/groups/{group}/commits"


def transaction_route(transactional_id: str) -> tuple[str, str]:
    """Using a transactional id (what a produce grant's id prefix allows)."""
    return "POST", f"/v1/transactions/{transactional_id}/begin"


def admin_route(method: str, path: str) -> tuple[str, str]:
    return method, f"/v3/clusters/streamlet{path}"


PRODUCER_ID_ROUTE = ("POST", "/v1/producer-ids")


# ---- verifiers ------------------------------------------------------------------------------


class PlainVerifier:
    """SASL/PLAIN against known access keys: ``{access key: (secret, caller ARN)}``
    (the local platform only: PLAIN sends the secret itself)."""

    def __init__(self, credentials: Mapping[str, tuple[str, str]]) -> None:
        self._credentials = dict(credentials)

    def verify(self, message: bytes) -> tuple[str, int | None]:
        parts = message.split(b"\x00")
        if len(parts) != 3:
            raise AuthFailed("Malformed PLAIN message.")
        user, password = parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
        known = self._credentials.get(user)
        if known is None or known[0] != password:
            raise AuthFailed("Unknown access key or wrong secret.")
        return known[1], None


def oauth_token(message: bytes) -> str:
    """The bearer token of an OAUTHBEARER client first message (RFC 7628)."""
    text = message.decode("utf-8", errors="replace")
    for part in text.split("\x01"):
        if part.startswith("auth="):
            scheme, _, token = part[5:].partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    raise AuthFailed("Malformed OAUTHBEARER message: no 'auth=Bearer <token>'.")


def decode_token(token: str) -> str:
    """The presigned URL inside a token (base64url, padding optional)."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthFailed("The token is not a base64url presigned STS request.") from None


class StsVerifier:
    """OAUTHBEARER with a presigned ``sts:GetCallerIdentity``, executed against STS.

    ``endpoint``: the one STS endpoint to accept instead of AWS's (the local platform's
    moto, which routes a request by its Authorization header: the presigned signature is
    moved there, never for AWS); ``fetch``: how to send the request (tests).
    """

    def __init__(self, audience: str = DEFAULT_AUDIENCE, endpoint: str | None = None,
                 fetch: Callable[[str, dict[str, str]], tuple[int, bytes]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.audience = audience
        self._endpoint = urlsplit(endpoint) if endpoint else None
        self._fetch = fetch or (_moto_get if endpoint else _http_get)
        self._clock = clock
        self._cache: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def verify(self, message: bytes) -> tuple[str, int | None]:
        token = oauth_token(message)
        now_ms = int(self._clock() * 1000)
        with self._lock:
            cached = self._cache.get(token)
            if cached is not None and cached[1] > now_ms:
                return cached
        url, expires_ms = self._checked(decode_token(token), now_ms)
        status, body = self._fetch(url, {AUDIENCE_HEADER: self.audience})
        if status != 200:
            raise AuthFailed(f"STS refused the presigned request (HTTP {status}): a bad "
                             "signature, an expired token or another audience.")
        caller = _arn_in(body)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now_ms}
            self._cache[token] = (caller, expires_ms)
        return caller, expires_ms

    def _checked(self, url: str, now_ms: int) -> tuple[str, int]:
        """The URL to send (only to an STS host), and when the token expires."""
        parts = urlsplit(url)
        if self._endpoint is not None:
            if (parts.scheme, parts.netloc) != (self._endpoint.scheme, self._endpoint.netloc):
                raise AuthFailed("The token is not for this platform's STS endpoint.")
        elif parts.scheme != "https" or not _STS_HOST.fullmatch(parts.hostname or "") \
                or parts.port not in (None, 443):
            raise AuthFailed("The token is not a request to an AWS STS endpoint.")
        query = {k: v[0] for k, v in parse_qs(parts.query, strict_parsing=False).items()}
        if query.get("Action") != "GetCallerIdentity" or parts.path not in ("", "/"):
            raise AuthFailed("The token is not a presigned sts:GetCallerIdentity request.")
        signed = query.get("X-Amz-SignedHeaders", "").split(";")
        if AUDIENCE_HEADER not in signed:
            raise AuthFailed(f"The token does not sign the {AUDIENCE_HEADER} header "
                             "(make it with streamlet.kafka.tokens).")
        try:
            signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
            lifetime_s = int(query["X-Amz-Expires"])
        except (KeyError, ValueError):
            raise AuthFailed("The token has no valid X-Amz-Date / X-Amz-Expires.") from None
        start_ms = int(signed_at.replace(tzinfo=dt.UTC).timestamp() * 1000)
        expires_ms = start_ms + min(lifetime_s, MAX_TOKEN_AGE_S) * 1000
        if not start_ms - 5 * 60_000 <= now_ms < expires_ms:
            raise AuthFailed("The token has expired (or is dated in the future).")
        return parts.geturl(), expires_ms


def _http_get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read(65536))
    except urllib.error.HTTPError as error:
        return int(error.code), b""
    except (urllib.error.URLError, TimeoutError) as error:
        raise AuthFailed(f"STS could not be reached: {error}") from None


def _moto_get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """moto's STS: it routes an unsigned request by the service in an Authorization header
    (never a presigned query), so the presigned signature is moved there."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    authorization = (f"AWS4-HMAC-SHA256 Credential={query.get('X-Amz-Credential', '')}, "
                     f"SignedHeaders={query.get('X-Amz-SignedHeaders', '')}, "
                     f"Signature={query.get('X-Amz-Signature', '')}")
    return _http_get(url, {**headers, "Authorization": authorization,
                           "X-Amz-Date": query.get("X-Amz-Date", "")})


def _arn_in(body: bytes) -> str:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise AuthFailed("STS answered something that is not GetCallerIdentity.") from None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Arn" and element.text:
            return element.text.strip()
    raise AuthFailed("STS answered without an Arn.")


# ---- where callers' policies come from ----------------------------------------------------


class StaticPolicies:
    """``{caller ARN: policies}`` (the local platform's principals, tests)."""

    def __init__(self, by_caller: Mapping[str, tuple[Policy, ...]]) -> None:
        self._by_caller = dict(by_caller)

    def __call__(self, caller: str) -> tuple[Policy, ...]:
        return self._by_caller.get(caller, ())


class RegistryPolicies:
    """The grant registry ``grant_*`` fills (SSM parameters under ``path``), re-read every
    ``ttl_s``; a caller's grants become one policy over the gateway's API ARN, built by
    the same :func:`streamlet.engine.grants.http_policy` as the CDK's."""

    def __init__(self, path: str, api: ApiArn, ssm: Any = None, ttl_s: float = 60.0) -> None:
        self.path, self._api, self._ssm, self._ttl_s = path, api, ssm, ttl_s
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._grants: dict[str, list[Any]] = {}

    def __call__(self, caller: str) -> tuple[Policy, ...]:
        from ..engine.grants import http_policy, principal_key

        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= self._ttl_s:
                self._refresh()
            grants = list(self._grants.get(principal_key(caller), ()))
        if not grants:
            return ()
        return (Policy.from_json(http_policy(grants, self._api.arn), "grant registry"),)

    def _refresh(self) -> None:
        import json

        from ..engine.grants import Grant, principal_key

        if self._ssm is None:
            import boto3

            self._ssm = boto3.client("ssm")
        grants: dict[str, list[Any]] = {}
        try:
            pages = self._ssm.get_paginator("get_parameters_by_path").paginate(
                Path=self.path, Recursive=False)
            for page in pages:
                for parameter in page.get("Parameters", []):
                    try:
                        entry = json.loads(parameter["Value"])
                        grant = Grant.decode(entry["grant"])
                        key = principal_key(str(entry["principal"]))
                    except (ValueError, KeyError, TypeError):
                        continue
                    grants.setdefault(key, []).append(grant)
        except Exception:  # keep the last registry read, as the handlers do
            if self._read_at is None:
                raise
            self._read_at = time.monotonic()
            return
        self._grants, self._read_at = grants, time.monotonic()
