"""``GET /v1/deployment``: the admin function names the storage it serves, as the SDK's
direct endpoint (what ``streamlet gateway --endpoint https://...`` then serves)."""

from __future__ import annotations

import doctest

import pytest

from functions import api
from streamlet.engine import Engine
from streamlet.transport import connect, direct
from tests.functions.conftest import NAMES, call, match


def test_the_route_names_the_tables_and_bucket_of_the_environment(
        aws: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # what Lambda sets
    assert match("GET", "/v1/deployment")[2] == "admin_handler"
    reply = call("GET", "/v1/deployment")
    assert reply.status == 200
    assert reply.json() == {"direct_endpoint": "direct://fn?bucket=fn-data&region=eu-west-1"}
    engine = connect(reply.json()["direct_endpoint"])
    assert isinstance(engine, Engine) and engine.names == NAMES


def test_a_bound_engine_answers_the_endpoint_bound_with_it(aws: Engine) -> None:
    local = "direct+http://127.0.0.1:4566/fn?bucket=fn-data&region=us-east-1"
    with api.bound_engine(aws, local):
        assert call("GET", "/v1/deployment").json() == {"direct_endpoint": local}
    with api.bound_engine(aws):  # a server that was not told: an error, never a guess
        refused = call("GET", "/v1/deployment")
    assert refused.status == 500 and "was not told" in refused.json()["message"]


def test_the_endpoint_string_is_what_the_direct_transport_reads() -> None:
    assert doctest.testmod(direct).failed == 0
    local = direct.direct_endpoint(NAMES, "us-east-1", "http://127.0.0.1:4566")
    assert local == "direct+http://127.0.0.1:4566/fn?bucket=fn-data&region=us-east-1"
    engine = connect(local)
    assert isinstance(engine, Engine) and engine.names == NAMES
    with pytest.raises(ValueError, match="Not an http"):
        direct.direct_endpoint(NAMES, "us-east-1", "127.0.0.1:4566")
