"""Checking SigV4 signatures the way API Gateway's IAM authorization does (local gateway).

:meth:`SigV4Verifier.verify` recomputes the signature with botocore's own SigV4 code over
exactly the headers the client signed, with the secret of the access key it names, compares
it in constant time and returns the :class:`Caller` (access key and principal) so the gateway
can authorize; a refused request raises :class:`SignatureRejected` saying which rule failed.
:meth:`SigV4Verifier.check` is the same as ``None`` or the reason. The rules, in the order
checked, are AWS's (IAM User Guide, "Create a signed AWS API request" [create] and
"Elements of an AWS API request signature" [elements]):

1. ONE ``Authorization: AWS4-HMAC-SHA256 Credential=KEY/YYYYMMDD/REGION/SERVICE/aws4_request,
   SignedHeaders=h1;h2, Signature=<64 hex>`` header, each element once [create, step 5]. A
   repeated header reaches the gateway joined with commas, and is refused.
2. The access key is known; ``X-Amz-Security-Token`` is sent exactly when a session token is
   configured for the key, and equals it ("The security token included in the request is
   invalid" otherwise).
3. The credential scope names this gateway's region and ``execute-api`` ("This restricts the
   resulting signature to the specified Region and service" [create, step 3]).
4. Every header in SignedHeaders is in the request; ``host`` and every ``x-amz-*`` header
   present are signed ("You must include the host header ... and any x-amz-* headers in the
   signature" [create, step 1]), and so is the date header used ("If you include a date or
   x-amz-date header, you must also include that header in the list of signed headers",
   AWS General Reference, "Create a canonical request"). Nothing else is required: "You
   can optionally include other standard headers in the signature, such as content-type"
   [create, step 1]. curl ``--aws-sigv4`` signs host, x-amz-date and the headers given with
   ``-H``, but not the ``application/x-www-form-urlencoded`` it adds for ``-d``.
5. Host is one of this gateway's own names (``hosts``; by default a loopback name on any
   port), so a signed foreign Host cannot be echoed into response links. The signature
   covers the Host value the request arrived with, so it cannot be swapped either.
6. The date is X-Amz-Date, else Date ("If we can't find an x-amz-date header, then we look
   for a date header" [elements]), in ISO 8601 basic format ``YYYYMMDD'T'HHMMSS'Z'``, on
   the credential scope's day ("The date that you specify in the credential scope must match
   the date of your request" [elements]) and within 5 minutes of the gateway's clock.
7. An X-Amz-Content-SHA256 header, if sent, is the SHA-256 of the body (it is an S3 header;
   other services hash the body themselves, so ``UNSIGNED-PAYLOAD`` is refused).
8. The signature matches.

Not supported: query-string (presigned URL) authentication, SigV4a, HTTP/2 ``:authority``.

Example:
    >>> verifier = SigV4Verifier({"AKID": "secret"}, region="eu-west-1")
    >>> verifier.check("GET", "/v3/clusters", {"Host": "127.0.0.1:4567"}, b"")
    'Missing Authentication Token: the request is not signed.'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

__all__ = ["LOCAL_ACCOUNT", "LOOPBACK_HOSTS", "MAX_SKEW_S", "REGION", "SERVICE", "Caller",
           "SigV4Verifier", "SignatureRejected", "gateway_hosts"]

SERVICE = "execute-api"
REGION = "us-east-1"
MAX_SKEW_S = 300
LOCAL_ACCOUNT = "000000000000"
"""The account of default principals (``arn:aws:iam::000000000000:user/KEY``)."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ALGORITHM = "AWS4-HMAC-SHA256"
_ELEMENTS = ("Credential", "SignedHeaders", "Signature")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_STAMP = re.compile(r"\d{8}T\d{6}Z")
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]/@\s]+)(?::(\d{1,5}))?")
_INVALID_TOKEN = "The security token included in the request is invalid"


class SignatureRejected(Exception):
    """A request API Gateway's IAM authorization would refuse; the message says why."""


@dataclass(frozen=True)
class Caller:
    """Who signed a request: the access key and the principal it belongs to."""

    access_key: str
    principal: str


@dataclass(frozen=True)
class _Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str


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


def gateway_hosts(host: str, port: int) -> frozenset[str]:
    """The Host values a gateway listening on ``host:port`` answers to (its ``hosts``).

    A loopback or wildcard address adds every loopback name; port 80 adds the bare names.

    Example:
        >>> sorted(gateway_hosts("127.0.0.1", 4567))
        ['127.0.0.1:4567', '[::1]:4567', 'localhost:4567']
    """
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host.lower()
    names = {name}
    if name in (*LOOPBACK_HOSTS, "0.0.0.0", "[::]"):
        names.update(LOOPBACK_HOSTS)
    return frozenset({f"{n}:{port}" for n in names} | (names if port == 80 else set()))


class SigV4Verifier:
    """Checks SigV4 signatures against known access keys, for one region and set of hosts.

    ``credentials`` maps access keys to secrets; ``principals`` maps them to the principal
    ARN :meth:`verify` returns (default ``arn:aws:iam::000000000000:user/KEY``);
    ``session_tokens`` gives the token a temporary key must send. ``hosts`` lists the
    ``host[:port]`` values the gateway answers to (see :func:`gateway_hosts`); ``None``
    accepts a loopback name (127.0.0.1, localhost, [::1]) on any port.

    Example:
        >>> SigV4Verifier({"AKID": "secret"}).check("GET", "/v3/clusters", {}, b"")
        'Missing Authentication Token: the request is not signed.'
    """

    def __init__(self, credentials: Mapping[str, str], max_skew_s: int = MAX_SKEW_S,
                 clock: Callable[[], float] = time.time, *, region: str = REGION,
                 hosts: Iterable[str] | None = None,
                 principals: Mapping[str, str] | None = None,
                 session_tokens: Mapping[str, str] | None = None) -> None:
        self._secrets = dict(credentials)
        self._max_skew_s = max_skew_s
        self._clock = clock
        self.region = region
        self._hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self._principals = dict(principals or {})
        self._tokens = dict(session_tokens or {})

    def check(self, method: str, raw_uri: str, headers: Mapping[str, str], body: bytes
              ) -> str | None:
        """None if the request is correctly signed, else why it is refused."""
        try:
            self.verify(method, raw_uri, headers, body)
        except SignatureRejected as refused:
            return str(refused)
        return None

    def verify(self, method: str, raw_uri: str, headers: Mapping[str, str], body: bytes
               ) -> Caller:
        """The caller who signed the request; raises :class:`SignatureRejected` if none."""
        lower = _lowered(headers)
        if "authorization" not in lower:
            raise SignatureRejected("Missing Authentication Token: the request is not signed.")
        auth = _parse_authorization(lower["authorization"])
        self._check_key(auth, lower)
        self._check_scope(auth)
        _check_signed_headers(auth, lower)
        self._check_host(lower["host"])
        stamp = self._check_date(auth, lower)
        _check_payload(lower, body)
        if not hmac.compare_digest(self._signature(auth, method, raw_uri, lower, body, stamp),
                                   auth.signature):
            raise SignatureRejected("The request signature we calculated does not match the "
                                    "signature provided.")
        default = f"arn:aws:iam::{LOCAL_ACCOUNT}:user/{auth.access_key}"
        return Caller(auth.access_key, self._principals.get(auth.access_key, default))

    def _check_key(self, auth: _Authorization, headers: Mapping[str, str]) -> None:
        if auth.access_key not in self._secrets:
            raise SignatureRejected(f"{_INVALID_TOKEN}: unknown access key.")
        expected = self._tokens.get(auth.access_key)
        sent = headers.get("x-amz-security-token")
        if expected is not None and sent is None:
            raise SignatureRejected(f"{_INVALID_TOKEN}: this temporary access key needs its "
                                    "X-Amz-Security-Token.")
        if sent is not None and (expected is None or not hmac.compare_digest(sent, expected)):
            raise SignatureRejected(f"{_INVALID_TOKEN}: X-Amz-Security-Token is not this "
                                    "access key's session token.")

    def _check_scope(self, auth: _Authorization) -> None:
        if auth.service != SERVICE:
            raise SignatureRejected(f"Credential should be scoped to correct service: "
                                    f"'{SERVICE}', not '{auth.service}'.")
        if auth.region != self.region:
            raise SignatureRejected(f"Credential should be scoped to a valid region: "
                                    f"'{self.region}', not '{auth.region}'.")

    def _check_host(self, host: str) -> None:
        if not self._is_own_host(host.lower()):
            raise SignatureRejected(f"Host '{host}' is not this gateway's: sign the request "
                                    "for the address it is sent to.")

    def _is_own_host(self, host: str) -> bool:
        if self._hosts is not None:
            return host in self._hosts
        found = _HOST.fullmatch(host)
        return found is not None and found.group(1) in LOOPBACK_HOSTS

    def _check_date(self, auth: _Authorization, headers: Mapping[str, str]) -> str:
        """The signing time stamp, from X-Amz-Date or else Date, checked."""
        name = "x-amz-date" if "x-amz-date" in headers else "date"
        stamp = headers.get(name, "")
        if not stamp:
            raise SignatureRejected("The request has no X-Amz-Date or Date header.")
        if name not in auth.signed_headers:
            raise SignatureRejected(f"The {name} header must be signed.")
        if not _STAMP.fullmatch(stamp):
            raise SignatureRejected(f"The {name} header is not in ISO 8601 basic format "
                                    f"(YYYYMMDD'T'HHMMSS'Z'): '{stamp}'.")
        if stamp[:8] != auth.date:
            raise SignatureRejected(f"Date in Credential scope does not match YYYYMMDD from "
                                    f"the {name} header: '{auth.date}' != '{stamp[:8]}'.")
        self._check_skew(stamp)
        return stamp

    def _check_skew(self, stamp: str) -> None:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        now, skew, minutes = self._clock(), self._max_skew_s, f"{self._max_skew_s / 60:g} min."
        if signed_at < now - skew:
            raise SignatureRejected(f"Signature expired: {stamp} is now earlier than "
                                    f"{_stamp(now - skew)} ({_stamp(now)} - {minutes})")
        if signed_at > now + skew:
            raise SignatureRejected(f"Signature not yet current: {stamp} is still later than "
                                    f"{_stamp(now + skew)} ({_stamp(now)} + {minutes})")

    def _signature(self, auth: _Authorization, method: str, raw_uri: str,
                   headers: Mapping[str, str], body: bytes, stamp: str) -> str:
        signed = {name: headers[name] for name in auth.signed_headers}
        request = AWSRequest(method=method, url=f"http://{headers['host']}{raw_uri}",
                             data=body, headers=signed)
        request.context["timestamp"] = stamp
        secret = self._secrets[auth.access_key]
        signer = _SignedHeadersOnly(Credentials(auth.access_key, secret), auth.region,
                                    auth.signed_headers)
        canonical = signer.canonical_request(request)
        return str(signer.signature(signer.string_to_sign(request, canonical), request))


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names; names repeated in another case joined with commas, as received."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _parse_authorization(value: str) -> _Authorization:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise SignatureRejected(f"The Authorization header is not a SigV4 ({ALGORITHM}) "
                                "signature.")
    if ALGORITHM in rest:
        raise SignatureRejected("The request has more than one Authorization header.")
    elements = _elements(rest)
    scope = elements["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not re.fullmatch(r"\d{8}", scope[1]):
        raise SignatureRejected("The Credential must be "
                                "ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request.")
    if not _SIGNATURE.fullmatch(elements["Signature"]):
        raise SignatureRejected("The Signature must be 64 lowercase hexadecimal digits.")
    names = [n.strip().lower() for n in elements["SignedHeaders"].split(";") if n.strip()]
    key, date, region, service = scope[:4]
    return _Authorization(key, date, region, service, names, elements["Signature"])


def _elements(text: str) -> dict[str, str]:
    """Credential, SignedHeaders and Signature, each exactly once and nothing else."""
    found: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        name, equals, value = part.partition("=")
        if not equals or name not in _ELEMENTS or name in found:
            raise SignatureRejected(f"Unexpected '{part}' in the Authorization header (it "
                                    "takes Credential, SignedHeaders and Signature once "
                                    "each, and a repeated header is refused).")
        found[name] = value.strip()
    for name in _ELEMENTS:
        if name not in found:
            raise SignatureRejected(f"Authorization header requires '{name}' parameter.")
    return found


def _check_signed_headers(auth: _Authorization, headers: Mapping[str, str]) -> None:
    for name in auth.signed_headers:
        if name not in headers:
            raise SignatureRejected(f"The signed header '{name}' is not in the request.")
    required = ["host", *sorted(n for n in headers if n.startswith("x-amz-"))]
    for name in required:
        if name not in auth.signed_headers:
            raise SignatureRejected(f"The {name} header must be signed (SignedHeaders: "
                                    f"'{';'.join(auth.signed_headers)}').")


def _check_payload(headers: Mapping[str, str], body: bytes) -> None:
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        raise SignatureRejected("X-Amz-Content-SHA256 does not match the request body.")


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")
