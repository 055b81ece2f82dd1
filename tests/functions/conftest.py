"""Handler tests: API Gateway HTTP API (payload 2.0) events into the real handlers, on moto.

Events start from the captured shapes in ``events/`` and are completed for the route the
request matches, as API Gateway would (routeKey, pathParameters, query parameters, a
base64 body for binary content).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import boto3
import pytest
from moto import mock_aws

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "streamlet")

from functions import _access, _runtime, api
from streamlet.engine import Engine, Names
from streamlet.engine.grants import Grant, registry_entry, registry_path
from streamlet.groups.leases import Member
from streamlet.local import serialized_moto
from streamlet.records import TopicPartition
from tests.batches import make_batch

EVENTS = Path(__file__).parent / "events"
NAMES = Names(prefix="fn", bucket="fn-data")
USER = "arn:aws:iam::123456789012:user/streamlet-user"
"""The caller of the captured events (requestContext.authorizer.iam.userArn): an admin."""
HANDLERS = {"admin_handler": api.admin_handler, "produce_handler": api.produce_handler,
            "archiver_handler": api.archiver_handler,
            "consume_handler": api.consume_handler}


def _template(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())  # type: ignore[no-any-return]


_TEMPLATES = {name: _template(name) for name in ("get", "post_json", "post_binary")}


def _compiled_routes() -> list[tuple[str, str, re.Pattern[str], str]]:
    out = []
    for key, handler in api.routes():
        method, template = key.split(" ", 1)
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        out.append((key, method, re.compile(f"^{regex}$"), handler))
    return out


ROUTES = _compiled_routes()


def match(method: str, path: str) -> tuple[str, dict[str, str], str]:
    """(route key, path parameters, handler name); unknown routes go to the admin handler."""
    for key, route_method, pattern, handler in ROUTES:
        found = pattern.match(path)
        if found and route_method == method:
            return key, found.groupdict(), handler
    return "$default", {}, "admin_handler"


def event(method: str, path: str, body: Any = None, *, query: dict[str, Any] | str | None = None,
          headers: dict[str, str] | None = None, caller: str | None = None
          ) -> dict[str, Any]:
    """An HTTP API payload 2.0 event; bytes bodies go base64 as API Gateway sends them.

    ``caller`` replaces the signer's ARN (``requestContext.authorizer.iam.userArn``).
    """
    kind = "get" if body is None else "post_binary" if isinstance(body, bytes) else "post_json"
    out = copy.deepcopy(_TEMPLATES[kind])
    key, params, _ = match(method, path)
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    out.update(routeKey=key, rawPath=path, rawQueryString=raw_query)
    out["requestContext"].update(routeKey=key, timeEpoch=int(time.time() * 1000))
    out["requestContext"]["http"].update(method=method, path=path)
    out.pop("pathParameters", None)
    out.pop("queryStringParameters", None)
    if params:
        out["pathParameters"] = params
    if raw_query:
        out["queryStringParameters"] = dict(parse_qsl(raw_query, keep_blank_values=True))
    _set_body(out, body)
    out["headers"].update(headers or {})
    if caller is not None:
        out["requestContext"]["authorizer"]["iam"]["userArn"] = caller
    return out


def _set_body(out: dict[str, Any], body: Any) -> None:
    if body is None:
        out.pop("body", None)
    elif isinstance(body, bytes):
        out["body"] = base64.b64encode(body).decode()
    else:
        out["body"] = body if isinstance(body, str) else json.dumps(body)
    if "body" in out:
        out["headers"]["content-length"] = str(len(out["body"]))


@dataclass
class LambdaContext:
    """The fields Powertools reads from a Lambda context."""

    function_name: str = "streamlet-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:streamlet-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Reply:
    """A handler's answer, decoded."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def invoke(raw_event: dict[str, Any], handler: str | None = None) -> Reply:
    """Run the handler API Gateway would pick for ``raw_event``."""
    name = handler or match(raw_event["requestContext"]["http"]["method"],
                            raw_event["rawPath"])[2]
    result = HANDLERS[name](raw_event, LambdaContext())
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return Reply(result["statusCode"], dict(result.get("headers") or {}), data)


def call(method: str, path: str, body: Any = None, **kw: Any) -> Reply:
    """Build the event for ``method path`` and invoke its handler."""
    return invoke(event(method, path, body, **kw))


def register(principal_arn: str, grant: Grant) -> None:
    """Add a grant to the registry, as ``grant_*`` does on AWS (an SSM parameter)."""
    name = f"{registry_path(NAMES.prefix)}/{abs(hash((principal_arn, grant))):x}"
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=name, Type="String", Overwrite=True,
        Value=json.dumps(registry_entry(principal_arn, grant)))
    _access.reset()  # a new container reads the registry again


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """In-process moto with Streamlet's storage; the handlers build their engine from env.

    The grant registry names the captured events' caller (``USER``) an admin.
    """
    monkeypatch.setenv("STREAMLET_TABLE_PREFIX", NAMES.prefix)
    monkeypatch.setenv("STREAMLET_BUCKET", NAMES.bucket)
    monkeypatch.setenv(_access.GRANTS_PATH_ENV, registry_path(NAMES.prefix))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _runtime.reset()
    _access.reset()
    with mock_aws(), serialized_moto():
        s3 = boto3.client("s3", region_name="us-east-1")
        engine = Engine(boto3.client("dynamodb", region_name="us-east-1"), s3, NAMES)
        engine.provision(s3)
        register(USER, Grant.admin())
        yield engine
    _runtime.reset()
    _access.reset()


@pytest.fixture
def orders(aws: Engine) -> str:
    """A three-partition topic named ``orders``."""
    aws.create_topic("orders", 3)
    return "orders"


def with_groups(aws: Engine, topic: str) -> Engine:
    """Fills ``topic`` (3 partitions) and groups it: ``g``: member m-1 owns partition 0
    (committed 2 of 5); partition 1 committed 2 of 2 and released; partition 2 leased,
    never committed. ``idle``: one lease, no member."""
    aws.append(topic, 0, make_batch([b"x"] * 5))
    aws.append(topic, 1, make_batch([b"y"] * 2))
    tps = [TopicPartition(topic, p) for p in range(3)]
    store = aws.groups
    store.ensure_leases("g", tps)
    store.heartbeat("g", Member("m-1", 0, "cli", "10.0.0.1", "inst-1", (topic,)))
    leases = store.snapshot("g").leases
    p0 = store.take("g", tps[0], "m-1", leases[tps[0]])
    p1 = store.take("g", tps[1], "m-1", leases[tps[1]])
    assert p0 is not None and p1 is not None
    store.commit("g", "m-1", {tps[0]: (p0.epoch, 2, ""), tps[1]: (p1.epoch, 2, "")})
    store.release("g", tps[1], "m-1", p1.epoch)
    store.ensure_leases("idle", tps[:1])
    return aws
