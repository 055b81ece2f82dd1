"""Who is calling, and may they reach the topics a request body names?

API Gateway's IAM authorization checks each request's route ARN, so the topic or group in
a *path* is already checked when a handler runs. Topics named in a *body* (REST v2
assignments, subscriptions, positions and commits; the native group routes' leases,
takes, commits and heartbeats) are checked here, by evaluating the caller's grant with
:mod:`streamlet.policy` against the route that reads the topic
(:func:`streamlet.engine.grants.read_route`: reading ``orders`` partition 3 is
``execute-api:Invoke`` on ``GET /v1/topics/orders/partitions/3/batches``). A refusal is
403 ``access_denied`` naming the topic, before anything is written.

Identity: ``requestContext.authorizer.iam.userArn`` (what API Gateway's IAM authorizer
puts in a payload 2.0 event; the local gateway does the same). Grants: the local gateway
binds the caller's own policies (:func:`bound_grants`); on AWS, the grant registry that
``grant_*`` fills (SSM parameters under ``STREAMLET_GRANTS_PATH``, re-read every
``GRANTS_TTL_S``). A caller with no registered grant may read no body-named topic.

Example:
    >>> access = caller_access(event)                          # doctest: +SKIP
    >>> access.check_read("payroll", 0)                        # doctest: +SKIP
    Traceback (most recent call last):
    AccessDenied: Topic 'payroll' (partition 0) is outside the caller's grant ...
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from streamlet.engine.aws import translated
from streamlet.engine.grants import Grant, http_policy, principal_key, read_route
from streamlet.errors import AccessDenied, RetriableError
from streamlet.policy import Decision, Policy, evaluate, execute_api_arn

from ._runtime import logger

GRANTS_PATH_ENV = "STREAMLET_GRANTS_PATH"
GRANTS_TTL_S = 60.0
"""How long a container trusts the registry it read (a revoked grant lingers this long
for body-named topics; paths are checked by API Gateway at once)."""
INVOKE = "execute-api:Invoke"


class PolicySource(Protocol):
    """Where a caller's policies come from: the local gateway, or the grant registry."""

    def policies(self, caller_arn: str, api_arn: str) -> tuple[Policy, ...]: ...


@dataclass(frozen=True)
class StaticPolicies:
    """The local gateway's principals: ARN -> their policies (as given to the gateway)."""

    by_caller: Mapping[str, Sequence[Policy]]
    region: str = "us-east-1"

    def policies(self, caller_arn: str, api_arn: str) -> tuple[Policy, ...]:
        return tuple(self.by_caller.get(caller_arn, ()))


class GrantRegistry:
    """The grants ``grant_*`` registered (SSM parameters under ``path``), read lazily and
    cached for ``ttl_s``; each caller's become one policy over this API."""

    def __init__(self, path: str, ttl_s: float = GRANTS_TTL_S, ssm: Any = None) -> None:
        self.path = path
        self._ttl_s = ttl_s
        self._ssm = ssm
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._grants: dict[str, list[Grant]] = {}

    def policies(self, caller_arn: str, api_arn: str) -> tuple[Policy, ...]:
        grants = self.grants(caller_arn)
        return (Policy.from_json(http_policy(grants, api_arn), "grant registry"),) if grants \
            else ()

    def grants(self, caller_arn: str) -> list[Grant]:
        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= self._ttl_s:
                self._refresh()
            return list(self._grants.get(principal_key(caller_arn), ()))

    def _refresh(self) -> None:
        """Re-read the registry; on failure keep the last one read (if any)."""
        try:
            self._grants = _parse_registry(self._read())
        except RetriableError as error:
            if self._read_at is None:
                raise
            logger.warning("grant registry not refreshed", error=str(error))
        self._read_at = time.monotonic()

    def _read(self) -> list[str]:
        if self._ssm is None:
            import boto3

            self._ssm = boto3.client("ssm")
        values: list[str] = []
        with translated("read the grant registry"):
            for page in self._ssm.get_paginator("get_parameters_by_path").paginate(
                    Path=self.path, Recursive=False):
                values += [p["Value"] for p in page.get("Parameters", [])]
        return values


def _parse_registry(values: Sequence[str]) -> dict[str, list[Grant]]:
    """``{principal key: grants}`` from registry values; a malformed one is skipped."""
    out: dict[str, list[Grant]] = {}
    for value in values:
        try:
            entry = json.loads(value)
            grant = Grant.decode(entry["grant"])
            key = principal_key(str(entry["principal"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("malformed grant registry entry skipped", value=value[:200])
            continue
        out.setdefault(key, []).append(grant)
    return out


# ---- where the grants come from ------------------------------------------------------------


@dataclass
class _Process:
    registry: GrantRegistry | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_process = _Process()
_bound: ContextVar[PolicySource | None] = ContextVar("streamlet_grants", default=None)


@contextlib.contextmanager
def bound_grants(source: PolicySource) -> Iterator[None]:
    """Take the callers' policies from ``source`` inside this block (the local gateway)."""
    token = _bound.set(source)
    try:
        yield
    finally:
        _bound.reset(token)


def reset() -> None:
    """Forget the process-wide registry (tests simulate a fresh container with it)."""
    with _process.lock:
        _process.registry = None


def _source() -> PolicySource | None:
    bound = _bound.get()
    if bound is not None:
        return bound
    path = os.environ.get(GRANTS_PATH_ENV)
    if not path:
        return None
    with _process.lock:
        if _process.registry is None or _process.registry.path != path:
            _process.registry = GrantRegistry(path)
        return _process.registry


# ---- the caller's access --------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One request's caller and what its grant allows (decisions cached per request)."""

    caller: str | None
    policies: tuple[Policy, ...]
    region: str
    account: str
    api_id: str
    stage: str
    _seen: dict[str, Decision] = field(default_factory=dict, compare=False, repr=False)

    @property
    def principal(self) -> str:
        """What members and instances are bound to; AccessDenied without an identity."""
        if not self.caller:
            raise AccessDenied("The request carries no IAM identity (requestContext."
                               "authorizer.iam.userArn); nothing was changed.")
        return principal_key(self.caller)

    def allows(self, method: str, path: str) -> Decision:
        """IAM's decision for invoking ``method path`` with the caller's policies."""
        arn = execute_api_arn(self.region, self.account, self.api_id, self.stage, method, path)
        if arn not in self._seen:
            self._seen[arn] = evaluate(self.policies, INVOKE, arn)
        return self._seen[arn]

    def may_read(self, topic: str) -> bool:
        return self.allows(*read_route(topic)).allowed

    def check_read(self, topic: str, partition: int | None = None) -> None:
        """AccessDenied naming the topic unless the grant reads it (that partition)."""
        where = "" if partition is None else f" (partition {partition})"
        self.check_route(*read_route(topic, partition), f"Topic '{topic}'{where}")

    def check_route(self, method: str, path: str, subject: str) -> None:
        """AccessDenied naming ``subject`` unless the grant may invoke ``method path`` (the
        route that stands for what a request names in its body or query)."""
        decision = self.allows(method, path)
        if not decision.allowed:
            raise AccessDenied(f"{subject} is outside the caller's grant "
                               f"({decision.describe()}); nothing was changed.")


def caller_access(event: Any) -> Access:
    """The :class:`Access` of the request ``event`` (API Gateway HTTP API, payload 2.0)."""
    context = event.get("requestContext") or {}
    iam = (context.get("authorizer") or {}).get("iam") or {}
    caller = iam.get("userArn") or None
    source = _source()
    region = getattr(source, "region", None) or os.environ.get("AWS_REGION", "us-east-1")
    account, api_id = str(context.get("accountId", "")), str(context.get("apiId", ""))
    stage = str(context.get("stage") or "$default")
    api_arn = f"arn:aws:execute-api:{region}:{account}:{api_id}"
    policies = source.policies(caller, api_arn) if source is not None and caller else ()
    return Access(caller, policies, region, account, api_id, stage)
