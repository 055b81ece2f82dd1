"""Helpers the routers share: request URLs, v3 cluster checks, long polls, v2 instances.

Kept in one module so sibling routers import from here and never from each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from streamlet.engine.groups import GroupStore
from streamlet.engine.instances import ConsumerInstances
from streamlet.errors import ClusterNotFound
from streamlet.groups.instance import ConsumerInstance
from streamlet.groups.subscriptions import Subscriptions
from streamlet.wire import CLUSTER_ID

from ._access import Access
from ._runtime import engine

T = TypeVar("T")
MAX_WAIT_MS = 20_000
"""Long-poll bound: well under API Gateway's 30-second integration timeout."""
DEADLINE_MARGIN_MS = 2_000
"""A long poll ends this long before the Lambda's own deadline."""
POLL_FIRST_S, POLL_MAX_S = 0.02, 0.2
"""A long poll re-checks after 20 ms, doubling to at most 200 ms between checks."""
ClusterId = Annotated[str, Path(description="Always `streamlet`.")]
INSTANCE = "/consumers/<group>/instances/<name>"
V2_JSON = "application/vnd.kafka.v2+json"


# ---- the request ------------------------------------------------------------------------


def new_router() -> Router:
    """A Powertools router (its constructor is not annotated, hence this typed factory)."""
    made: Router = Router()  # type: ignore[no-untyped-call]
    return made


def unquoted(segment: str) -> str:
    """A path parameter as the client meant it (Powertools matches the raw, encoded path)."""
    return unquote(segment)


def base_url(event: Any) -> str:
    """``https://{domain}[/{stage}]``, as the client reached this API (for ``metadata.self``)."""
    headers = event.get("headers") or {}
    context = event.get("requestContext") or {}
    host = headers.get("host") or context.get("domainName") or "localhost"
    scheme = str(headers.get("x-forwarded-proto", "https")).split(",")[0].strip()
    stage = context.get("stage") or "$default"
    prefix = "" if stage == "$default" else f"/{stage}"
    return f"{scheme}://{host}{prefix}"


def no_content() -> Response[None]:
    return Response(204)


def resource_meta(event: Any, path: str, crn: str) -> dict[str, Any]:
    """A v3 resource's ``metadata``: its URL and its ``crn:///kafka=streamlet{crn}`` name."""
    return {"self": f"{base_url(event)}{path}", "resource_name": f"crn:///kafka={CLUSTER_ID}{crn}"}


def related(event: Any, path: str) -> dict[str, str]:
    """A v3 relationship: ``{"related": URL}``."""
    return {"related": f"{base_url(event)}{path}"}


def listing(event: Any, kind: str, path: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    """A v3 collection: ``kind``, ``metadata`` (its URL; never a next page) and ``data``."""
    return {"kind": kind, "metadata": {"self": f"{base_url(event)}{path}", "next": None},
            "data": data}


def check_cluster(cluster_id: str) -> None:
    """REST Proxy v3 paths name the cluster: this deployment's is ``streamlet``."""
    if unquoted(cluster_id) != CLUSTER_ID:
        raise ClusterNotFound(unquoted(cluster_id), CLUSTER_ID)


# ---- long polls -------------------------------------------------------------------------


def wait_budget_ms(lambda_context: Any) -> int:
    """At most MAX_WAIT_MS, and never past the Lambda's own deadline (minus a margin)."""
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return MAX_WAIT_MS
    return max(0, min(MAX_WAIT_MS, int(remaining()) - DEADLINE_MARGIN_MS))


def long_poll(attempt: Callable[[], T], done: Callable[[T], bool], wait_ms: int) -> T:
    """Run ``attempt`` until ``done(result)`` or ``wait_ms`` pass; returns the last result.

    Re-checks after 20 ms, then backs off to one check every 200 ms: a quiet partition
    costs a few reads a second, and new data is seen within 200 ms.
    """
    deadline = time.monotonic() + wait_ms / 1000
    delay = POLL_FIRST_S
    while True:
        result = attempt()
        remaining = deadline - time.monotonic()
        if done(result) or remaining <= 0:
            return result
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, POLL_MAX_S)


# ---- the caller's group state ------------------------------------------------------------


def groups(access: Access) -> GroupStore:
    """The group store acting for the caller: its members and leases are bound to it, and
    leases and commits must name existing partitions."""
    found = engine()
    return found.groups.bound(access.principal, found.topics)


def instances(access: Access) -> ConsumerInstances:
    """REST v2 instances acting for the caller (another principal's are refused)."""
    return engine().instances.bound(access.principal)


# ---- REST Proxy v2 consumer instances ---------------------------------------------------


def subscriptions(access: Access) -> Subscriptions:
    """Group membership of the caller's consumer instances, limited to its grant."""
    return Subscriptions(groups(access), instances(access), engine().topics,
                         grant=access)


def owned_instance(access: Access, group: str, name: str) -> ConsumerInstance:
    """The caller's instance named by the path (AccessDenied if another principal's)."""
    return instances(access).get(unquoted(group), unquoted(name))


def instance(access: Access, group: str, name: str) -> ConsumerInstance:
    """The caller's instance named by the path; a subscribed one's member heartbeats."""
    return beat(access, owned_instance(access, group, name))


def beat(access: Access, state: ConsumerInstance) -> ConsumerInstance:
    """A subscribed instance's heartbeat (after a request's checks: a refusal writes
    nothing)."""
    if state.subscribed:
        subscriptions(access).heartbeat(state)
    return state


def leave(access: Access, state: ConsumerInstance) -> None:
    """A subscribed instance hands its partitions over at once (unsubscribe, delete)."""
    if state.subscribed:
        subscriptions(access).leave(state)
