"""Fault injection at botocore's HTTP layer (reliability.md section 7).

A :class:`FaultySession` replaces ``client._endpoint.http_session``, so each fault acts
below botocore's retry loop and decides whether the request really reaches the
server (moto). A seeded :class:`FaultPlan` picks the fault for each request.

Needs real HTTP (``ThreadedMotoServer`` or the local platform): in-process ``mock_aws``
answers in a ``before-send`` hook, so the HTTP session, and these faults, never run.
"""

from __future__ import annotations

import io
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient
from botocore.compat import HTTPHeaders
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session
from urllib3 import HTTPResponse

Fault = Literal[
    "ok",
    "throttle",
    "timeout_before",
    "lost_ack",
    "ambiguous_500",
    "crash_before",
    "crash_after",
]
FAULTS: tuple[Fault, ...] = get_args(Fault)
INJECTED: tuple[Fault, ...] = FAULTS[1:]
OpFilter = Collection[str] | Callable[[str], bool]
ClientT = TypeVar("ClientT", bound=BaseClient)

_SENT_FAULTS = frozenset({"ok", "lost_ack", "ambiguous_500", "crash_after"})
_DDB_TARGET_PREFIX = "DynamoDB_20120810"
_DDB_NAMESPACE = "com.amazonaws.dynamodb.v20120810#"


class SimulatedCrash(BaseException):
    """A process death at a fault point; escapes botocore's ``except Exception``."""


@dataclass(frozen=True)
class FaultRates:
    """Per-request probabilities of each fault; the remainder is "ok".

    ``timeout_before`` is reliability.md's "drop": the request never reaches the server.
    """

    throttle: float = 0.0
    timeout_before: float = 0.0
    lost_ack: float = 0.0
    ambiguous_500: float = 0.0
    crash_before: float = 0.0
    crash_after: float = 0.0

    def __post_init__(self) -> None:
        rates = [getattr(self, name) for name in INJECTED]
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and sum to <= 1: {self}")

    def pick(self, u: float) -> Fault:
        """Map a uniform draw ``u`` in [0, 1) to a fault (fixed field order)."""
        edge = 0.0
        for fault in INJECTED:
            edge += getattr(self, fault)
            if u < edge:
                return fault
        return "ok"


@dataclass(frozen=True)
class Decision:
    """One request seen by a plan: its index, operation name and chosen fault."""

    index: int
    operation: str
    fault: Fault


class FaultPlan:
    """Seeded, thread-safe choice of a fault per request, with a replayable log."""

    def __init__(
        self,
        seed: int = 0,
        rates: FaultRates | None = None,
        ops: OpFilter | None = None,
        script: Sequence[Fault] | None = None,
    ) -> None:
        self.seed = seed
        self.rates = rates or FaultRates()
        self.enabled = True
        self._ops = ops
        self._script = list(script) if script is not None else None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._log: list[Decision] = []
        self._matched = 0

    @classmethod
    def scripted(cls, script: Sequence[Fault], ops: OpFilter | None = None) -> FaultPlan:
        """A plan giving ``script[n]`` to the n-th matching request, then "ok"."""
        bad = [f for f in script if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown faults in script: {bad}")
        return cls(ops=ops, script=script)

    def matches(self, operation: str) -> bool:
        """Whether the operation filter selects ``operation``."""
        if self._ops is None:
            return True
        if callable(self._ops):
            return self._ops(operation)
        return operation in self._ops

    def decide(self, operation: str) -> Fault:
        """Choose (and log) the fault for the next request of ``operation``."""
        with self._lock:
            fault: Fault = "ok"
            if self.enabled and self.matches(operation):
                fault = self._next_fault()
            self._log.append(Decision(len(self._log), operation, fault))
            return fault

    def _next_fault(self) -> Fault:
        n, self._matched = self._matched, self._matched + 1
        if self._script is not None:
            return self._script[n] if n < len(self._script) else "ok"
        return self.rates.pick(self._rng.random())

    @property
    def log(self) -> list[Decision]:
        """A copy of every decision so far, in request order."""
        with self._lock:
            return list(self._log)

    def counts(self) -> Counter[str]:
        """How many times each fault (not "ok") was injected."""
        return Counter(d.fault for d in self.log if d.fault != "ok")


def _header(request: AWSPreparedRequest, name: str) -> str | None:
    value = request.headers.get(name)
    if isinstance(value, bytes):
        return value.decode()
    return value


def operation_name(request: AWSPreparedRequest) -> str:
    """The operation: "PutItem" for DynamoDB (from ``X-Amz-Target``), "s3:PUT" for S3."""
    target = _header(request, "X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    return f"s3:{request.method.upper()}"


def _response(
    request: AWSPreparedRequest, status: int, headers: dict[str, str], body: bytes
) -> AWSResponse:
    raw = HTTPResponse(body=io.BytesIO(body), status=status, preload_content=False)
    http_headers = HTTPHeaders()
    for key, value in {**headers, "Content-Length": str(len(body))}.items():
        http_headers[key] = value
    return AWSResponse(request.url, status, http_headers, raw)


def error_response(request: AWSPreparedRequest, kind: Literal["throttle", "500"]) -> AWSResponse:
    """A synthetic error response in the request's protocol (JSON if ``X-Amz-Target``)."""
    target = _header(request, "X-Amz-Target")
    if target is not None:
        if kind == "throttle":
            return _json_error(request, target, "ThrottlingException", 400)
        return _json_error(request, target, "InternalServerError", 500)
    if kind == "throttle":
        return _xml_error(request, "SlowDown", 503, "Please reduce your request rate.")
    return _xml_error(request, "InternalError", 500, "We encountered an internal error.")


def _json_error(request: AWSPreparedRequest, target: str, code: str, status: int) -> AWSResponse:
    namespace = _DDB_NAMESPACE if target.startswith(_DDB_TARGET_PREFIX) else ""
    message = "Rate exceeded" if status == 400 else "Internal server error"
    body = json.dumps({"__type": namespace + code, "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
    return _response(request, status, headers, body)


def _xml_error(request: AWSPreparedRequest, code: str, status: int, message: str) -> AWSResponse:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>fault-injected</RequestId></Error>"
    ).encode()
    return _response(request, status, {"Content-Type": "application/xml"}, body)


class FaultySession:
    """An HTTP session that injects the plan's fault into each request."""

    def __init__(self, inner: URLLib3Session, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.attempts = 0
        self.sent = 0
        self._lock = threading.Lock()

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        """Send ``request`` subject to the plan's fault for it."""
        fault = self.plan.decide(operation_name(request))
        with self._lock:
            self.attempts += 1
        if fault not in _SENT_FAULTS:
            return self._before_send(request, fault)
        response = self._real_send(request)
        if fault == "ok":
            return response
        _ = response.content  # drain, so the pooled connection is released
        if fault == "lost_ack":
            raise ReadTimeoutError(endpoint_url=request.url)
        if fault == "ambiguous_500":
            return error_response(request, "500")
        raise SimulatedCrash(f"crash after sending {operation_name(request)}")

    def _before_send(self, request: AWSPreparedRequest, fault: Fault) -> AWSResponse:
        if fault == "throttle":
            return error_response(request, "throttle")
        if fault == "timeout_before":
            raise ReadTimeoutError(endpoint_url=request.url)
        raise SimulatedCrash(f"crash before sending {operation_name(request)}")

    def _real_send(self, request: AWSPreparedRequest) -> AWSResponse:
        with self._lock:
            self.sent += 1
        return self.inner.send(request)

    def close(self) -> None:
        """Close the wrapped session."""
        self.inner.close()


def install(client: ClientT, plan: FaultPlan) -> ClientT:
    """Route ``client``'s HTTP traffic through a :class:`FaultySession` using ``plan``."""
    endpoint = client._endpoint  # type: ignore[attr-defined]  # private in botocore-stubs
    inner = endpoint.http_session
    if isinstance(inner, FaultySession):
        inner = inner.inner
    endpoint.http_session = FaultySession(inner, plan)
    return client


def uninstall(client: ClientT) -> ClientT:
    """Restore the real HTTP session if :func:`install` wrapped it."""
    endpoint = client._endpoint  # type: ignore[attr-defined]  # private in botocore-stubs
    if isinstance(endpoint.http_session, FaultySession):
        endpoint.http_session = endpoint.http_session.inner
    return client


def session_of(client: BaseClient) -> FaultySession:
    """The :class:`FaultySession` installed on ``client``."""
    session = client._endpoint.http_session  # type: ignore[attr-defined]  # private
    if not isinstance(session, FaultySession):
        raise TypeError("no FaultySession installed on this client")
    return session
