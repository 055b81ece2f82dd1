"""Conformance with Confluent's REST Proxy v3 API: every operation that applies to a
serverless cluster is driven through the real handlers and each 2xx body is validated
against the document's response schema (OpenAPI 3.0 dialect, ``$ref`` resolved).

The schemas are ``data/rest-v3-responses.json``, Streamlet's restatement of the response
contracts of Confluent's ``api/v3/openapi.yaml`` (``data/README.md`` says where each part
comes from and why Confluent's file is not vendored). To check against Confluent's own
file as well, point ``STREAMLET_CONFLUENT_V3_OPENAPI`` at a local copy of it.

Of the document's operations, 27 apply here (topics, configs, partitions, records,
consumer groups; not brokers, replicas, reassignments or ACLs), and all 27 are served
(``EXPECTED_MISSING`` lists any that would not be). The broker-level collections the
relationships lead to are served empty and checked too (``BROKER_LEVEL``).

Served today (27 of 27): clusters (2), topics (5), topic configs (5: list, one, set,
delete, ``configs:alter``) and every topic's configs (``topics/-/configs``), partitions
(3, with ``.../offset``), records and ``records:batch``, consumer groups (9: groups,
consumers, assignments, lags, lag summary).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from streamlet.engine import Engine
from streamlet.groups.leases import Member
from tests.functions.conftest import call, with_groups

DATA = Path(__file__).parent / "data"
CONTRACT: dict[str, Any] = json.loads((DATA / "rest-v3-responses.json").read_text())
CONFLUENT_ENV = "STREAMLET_CONFLUENT_V3_OPENAPI"
BASE = "https://abc123.execute-api.us-east-1.amazonaws.com"
C = "/clusters/{cluster_id}"
G = f"{C}/consumer-groups/{{consumer_group_id}}"
T = f"{C}/topics/{{topic_name}}"
P = f"{T}/partitions/{{partition_id}}"
SAMPLE = {"cluster_id": "streamlet", "consumer_group_id": "g", "consumer_id": "m-1",
          "topic_name": "orders", "partition_id": "0", "name": "retention.ms"}


@dataclass(frozen=True)
class Request:
    """One call of an operation: the document's path with ``SAMPLE`` filled in, unless
    ``path`` gives another (``{cluster_id}`` style) path."""

    body: Any = None
    query: dict[str, str] = field(default_factory=dict)
    path: str | None = None


OPERATIONS: dict[str, list[Request]] = {
    "GET /clusters": [Request()],
    f"GET {C}": [Request()],
    f"GET {C}/consumer-groups": [Request()],
    f"GET {G}": [Request()],
    f"GET {G}/consumers": [Request()],
    f"GET {G}/consumers/{{consumer_id}}": [Request()],
    f"GET {G}/consumers/{{consumer_id}}/assignments": [Request()],
    f"GET {G}/consumers/{{consumer_id}}/assignments/{{topic_name}}/partitions/{{partition_id}}":
        [Request()],
    f"GET {G}/lag-summary": [Request(), Request(path=f"{C}/consumer-groups/idle/lag-summary")],
    f"GET {G}/lags": [Request()],
    f"GET {G}/lags/{{topic_name}}/partitions/{{partition_id}}": [Request()],
    f"GET {C}/topics": [Request()],
    f"POST {C}/topics": [
        Request({"topic_name": "created", "partitions_count": 2,
                 "configs": [{"name": "retention.ms", "value": "3600000"}]}),
        Request({"topic_name": "dry", "validate_only": True})],
    f"GET {T}": [Request()],
    f"PATCH {T}": [Request({"partitions_count": 4})],
    f"DELETE {T}": [Request(path=f"{C}/topics/doomed")],
    f"GET {T}/configs": [Request()],
    f"POST {T}/configs:alter": [Request({"data": [
        {"name": "retention.ms", "value": "7200000"},
        {"name": "max.message.bytes", "operation": "DELETE"}]})],
    f"GET {T}/configs/{{name}}": [Request()],
    f"PUT {T}/configs/{{name}}": [Request({"value": "7200000"})],
    f"DELETE {T}/configs/{{name}}": [Request()],
    f"GET {C}/topics/-/configs": [Request()],
    f"GET {T}/partitions": [Request()],
    f"GET {P}": [Request()],
    f"GET {P}/offset": [Request(), Request(query={"offset_type": "latest"})],
    f"POST {T}/records": [Request({"key": {"type": "STRING", "data": "alice"},
                                   "value": {"type": "JSON", "data": {"item": 1}},
                                   "headers": [{"name": "h", "value": "aGk="}]}),
                          Request({"value": {"type": "BINARY", "data": "AA=="}})],
    f"POST {T}/records:batch": [Request({"entries": [
        {"id": "ok", "value": {"type": "STRING", "data": "v"}},
        {"id": "bad", "partition_id": 99, "value": {"type": "STRING", "data": "v"}}]})],
}
"""The 27 operations of the document that apply to a serverless cluster, with the
requests that drive them."""

EXPECTED_MISSING: dict[str, str] = {}
"""Operations of the document not served yet (none: topic config changes are served by
functions/v3_configs.py)."""

BROKER_LEVEL: dict[str, list[Request]] = {
    f"GET {C}/brokers": [Request()],
    f"GET {C}/broker-configs": [Request()],
    f"GET {C}/acls": [Request()],
    f"GET {C}/topics/-/partitions/-/reassignment": [Request()],
    f"GET {T}/partitions/-/reassignment": [Request()],
    f"GET {P}/replicas": [Request()],
}
"""Collections the required relationships lead to: served, always empty."""


@pytest.fixture
def cluster(aws: Engine) -> Engine:
    """Topics ``orders`` (3 partitions: 5, 2 and 0 records) and ``doomed``; group ``g``:
    member m-1 owns orders/0 (committed 2), orders/1 committed and released, orders/2
    leased, never committed, member m-2 owns nothing; group ``idle``: one lease, nothing
    committed, no member."""
    aws.create_topic("orders", 3)
    aws.create_topic("doomed", 1)
    with_groups(aws, "orders")
    aws.groups.heartbeat("g", Member("m-2", 0, topics=("orders",)))  # no client id, owns nothing
    return aws


def _concrete(key: str, request: Request) -> tuple[str, str]:
    method, template = key.split(" ", 1)
    path = request.path or template
    for name, value in SAMPLE.items():
        path = path.replace(f"{{{name}}}", value)
    return method, f"/v3{path}"


def _documented(document: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The operation's ``responses`` in ``document``, or None if it has no such operation."""
    method, path = key.split(" ", 1)
    item = document.get("paths", {}).get(path, {}).get(method.lower())
    return None if item is None else dict(item["responses"])


def _schema(document: dict[str, Any], response: dict[str, Any]) -> dict[str, Any] | None:
    """A response's JSON schema (following a ``#/components/responses`` reference), with
    the document's components beside it so that its ``$ref``s resolve."""
    while "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    return None if schema is None else {**schema, "components": document["components"]}


def _violations(document: dict[str, Any], key: str, status: int, body: bytes) -> list[str]:
    responses = _documented(document, key)
    assert responses is not None, key
    assert str(status) in responses, (key, status, sorted(responses))
    schema = _schema(document, responses[str(status)])
    if schema is None:
        return [] if not body else [f"{key} {status}: a body where none is documented"]
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    return [f"{key} {status} at /{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(json.loads(body))]


def _drive(key: str, requests: list[Request], document: dict[str, Any]) -> list[str]:
    """Every request of the operation: a 2xx answer, each body valid in ``document``."""
    problems = []
    for request in requests:
        method, path = _concrete(key, request)
        reply = call(method, path, request.body, query=request.query)
        if not 200 <= reply.status < 300:
            problems.append(f"{method} {path}: {reply.status} {reply.body[:300]!r}")
            continue
        problems += _violations(document, key, reply.status, reply.body)
    return problems


def _served(key: str, requests: list[Request]) -> bool:
    method, path = _concrete(key, requests[0])
    return 200 <= call(method, path, requests[0].body, query=requests[0].query).status < 300


def test_the_applicable_operations_are_the_27_documented_ones() -> None:
    documented = [f"{method.upper()} {path}" for path, item in CONTRACT["paths"].items()
                  for method, operation in item.items()
                  if not operation.get("x-streamlet-broker-level")]
    assert len(OPERATIONS) == 27 and sorted(documented) == sorted(OPERATIONS)
    assert sorted(BROKER_LEVEL) == sorted(
        f"{method.upper()} {path}" for path, item in CONTRACT["paths"].items()
        for method, operation in item.items() if operation.get("x-streamlet-broker-level"))
    assert set(EXPECTED_MISSING) <= set(OPERATIONS)
    served = [key for key in OPERATIONS if key not in EXPECTED_MISSING]
    assert len(served) == 27, served


def test_every_served_operation_answers_2xx_bodies_that_validate(cluster: Engine) -> None:
    """Each operation in turn (reads before the changes they would see), all problems at
    once: a non-2xx answer, or a body that breaks the documented schema."""
    problems = []
    for key, requests in {**OPERATIONS, **BROKER_LEVEL}.items():
        if key not in EXPECTED_MISSING:
            problems += _drive(key, requests, CONTRACT)
    assert problems == []


@pytest.mark.skipif(not os.environ.get(CONFLUENT_ENV),
                    reason=f"set {CONFLUENT_ENV} to a local copy of Confluent's "
                           "api/v3/openapi.yaml to validate against it too")
def test_served_operations_validate_against_confluents_own_document(cluster: Engine) -> None:
    """The same walk against Confluent's file; operations that revision lacks are left out
    (and named, if every one is)."""
    document = yaml.safe_load(Path(os.environ[CONFLUENT_ENV]).read_text())
    keys = [key for key in OPERATIONS
            if key not in EXPECTED_MISSING and _documented(document, key) is not None]
    assert keys, f"no served operation is in {os.environ[CONFLUENT_ENV]}"
    problems = [p for key in keys for p in _drive(key, OPERATIONS[key], document)]
    assert problems == []


def _links(body: Any) -> list[str]:
    """Every ``{"related": URL}`` in a body."""
    if isinstance(body, dict):
        if set(body) == {"related"}:
            return [body["related"]]
        return [link for value in body.values() for link in _links(value)]
    if isinstance(body, list):
        return [link for value in body for link in _links(value)]
    return []


def test_every_relationship_leads_to_a_resource(cluster: Engine) -> None:
    """Links from every GET operation served: each answers 200 (an empty list for the
    broker-level ones), so a client that follows them never meets a 404."""
    links: set[str] = set()
    for key, requests in {**OPERATIONS, **BROKER_LEVEL}.items():
        if key.startswith("GET ") and key not in EXPECTED_MISSING:
            for request in requests:
                links.update(_links(call(*_concrete(key, request), query=request.query).json()))
    assert len(links) > 20
    for link in sorted(links):
        assert link.startswith(BASE), link
        reply = call("GET", link.removeprefix(BASE))
        assert reply.status == 200, (link, reply.body)
