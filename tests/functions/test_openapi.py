"""The exported OpenAPI document, the route contract with the CDK stack, Powertools wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from functions import api
from functions.openapi import PATH, render
from streamlet.engine import Engine
from tests.functions.conftest import call

CONTRACT = {
    "admin_handler": [
        "GET /v3/clusters", "GET /v3/clusters/{cluster_id}",
        "GET /v3/clusters/{cluster_id}/topics", "POST /v3/clusters/{cluster_id}/topics",
        "GET /v3/clusters/{cluster_id}/topics/{topic}",
        "PATCH /v3/clusters/{cluster_id}/topics/{topic}",
        "DELETE /v3/clusters/{cluster_id}/topics/{topic}",
        "GET /v3/clusters/{cluster_id}/topics/{topic}/partitions",
        "GET /v3/clusters/{cluster_id}/topics/{topic}/partitions/{partition}",
        "GET /v3/clusters/{cluster_id}/topics/{topic}/partitions/{partition}/offset",
        "GET /v3/clusters/{cluster_id}/topics/{topic}/configs",
        "GET /v3/clusters/{cluster_id}/brokers", "GET /v3/clusters/{cluster_id}/broker-configs",
        "GET /v3/clusters/{cluster_id}/acls",
        "GET /v3/clusters/{cluster_id}/topics/{topic}/partitions/-/reassignment",
        "GET /v3/clusters/{cluster_id}/topics/{topic}/partitions/{partition}/replicas",
        "GET /v3/clusters/{cluster_id}/topics/-/configs",
        "GET /v3/clusters/{cluster_id}/topics/{topic}/configs/{name}",
        "PUT /v3/clusters/{cluster_id}/topics/{topic}/configs/{name}",
        "DELETE /v3/clusters/{cluster_id}/topics/{topic}/configs/{name}",
        "POST /v3/clusters/{cluster_id}/topics/{topic}/configs:alter",
        "GET /v3/clusters/{cluster_id}/consumer-groups",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}/consumers",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}/consumers/{consumer}",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}/consumers/{consumer}/assignments",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}/consumers/{consumer}/assignments"
        "/{topic}/partitions/{partition}",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}/lags",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}/lags/{topic}/partitions"
        "/{partition}",
        "GET /v3/clusters/{cluster_id}/consumer-groups/{group}/lag-summary",
        "GET /v1/groups", "PUT /v1/groups/{group}/offsets", "DELETE /v1/groups/{group}",
        "GET /v1/transactions", "GET /v1/deployment"],
    "produce_handler": [
        "POST /v3/clusters/{cluster_id}/topics/{topic}/records",
        "POST /v3/clusters/{cluster_id}/topics/{topic}/records:batch",
        "POST /v1/topics/{topic}/partitions/{partition}/batches", "POST /v1/producer-ids",
        "POST /v1/transactions/{transactional_id}/init",
        "POST /v1/transactions/{transactional_id}/begin",
        "POST /v1/transactions/{transactional_id}/{number}/commit",
        "POST /v1/transactions/{transactional_id}/{number}/abort"],
    "consume_handler": [
        "GET /v1/topics/{topic}/partitions/{partition}/batches",
        "GET /v1/topics/{topic}/partitions/{partition}/offsets", "GET /v1/topics/{topic}",
        "GET /v1/groups/{group}", "GET /v1/groups/{group}/leases/{topic}/{partition}",
        "POST /v1/groups/{group}/leases",
        "POST /v1/groups/{group}/leases/{topic}/{partition}/take",
        "POST /v1/groups/{group}/leases/{topic}/{partition}/release",
        "POST /v1/groups/{group}/members/heartbeat", "POST /v1/groups/{group}/members/remove",
        "POST /v1/groups/{group}/commits",
        "POST /consumers/{group}", "DELETE /consumers/{group}/instances/{name}",
        "GET /consumers/{group}/instances/{name}/assignments",
        "POST /consumers/{group}/instances/{name}/assignments",
        "GET /consumers/{group}/instances/{name}/records",
        "POST /consumers/{group}/instances/{name}/positions",
        "POST /consumers/{group}/instances/{name}/positions/beginning",
        "POST /consumers/{group}/instances/{name}/positions/end",
        "POST /consumers/{group}/instances/{name}/subscription",
        "GET /consumers/{group}/instances/{name}/subscription",
        "DELETE /consumers/{group}/instances/{name}/subscription",
        "POST /consumers/{group}/instances/{name}/offsets",
        "GET /consumers/{group}/instances/{name}/offsets"],
    "archiver_handler": [
        "POST /v1/archive", "POST /v1/retention",
        "POST /v1/topics/{topic}/partitions/{partition}/delete-records"],
}


def test_committed_openapi_document_is_current() -> None:
    assert PATH.read_text() == render(), "regenerate it: python -m functions.openapi"


def test_routes_are_the_contract_and_every_operation_is_signed() -> None:
    found: dict[str, list[str]] = {}
    for key, handler in api.routes():
        found.setdefault(handler, []).append(key)
    assert {h: sorted(keys) for h, keys in found.items()} == {
        h: sorted(keys) for h, keys in CONTRACT.items()}
    document = json.loads(PATH.read_text())
    assert document["security"] == [{"sigv4": []}]
    for item in document["paths"].values():
        for operation in item.values():
            assert "422" not in operation["responses"]
            assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}


def test_importing_the_handlers_creates_no_client() -> None:
    code = ("import functions.api as a, functions._runtime as r; "
            "assert r._process.engine is None; print(len(a.routes()))")
    env = {"POWERTOOLS_TRACE_DISABLED": "1", "PATH": ""}
    if "PYTHONPATH" in os.environ:  # import the same source tree as this session
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=PATH.parents[1])
    assert out.stdout.strip() == str(sum(len(v) for v in CONTRACT.values()))


def test_metrics_are_emitted_as_emf(aws: Engine, orders: str, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()
    call("POST", "/v3/clusters/streamlet/topics/orders/records",
         {"value": {"type": "STRING", "data": "x"}})
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith('{"_aws"')]
    names = {m["Name"] for b in blobs for d in b["_aws"]["CloudWatchMetrics"]
             for m in d["Metrics"]}
    assert {"RecordsProduced", "BytesProduced", "RequestsOk"} <= names
