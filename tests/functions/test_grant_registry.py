"""The grant registry the handlers read on AWS: SSM parameters written by ``grant_*``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions._access import GrantRegistry, caller_access
from streamlet.engine.grants import Grant, registry_entry
from streamlet.errors import AccessDenied, Throttled

ROLE = "arn:aws:iam::123456789012:role/team/billing"
SESSION = "arn:aws:sts::123456789012:assumed-role/billing/botocore-session-1796280000"


class FakeSsm:
    """``get_parameters_by_path`` in pages of two; counts reads; can fail."""

    def __init__(self, values: list[str]) -> None:
        self.values, self.reads, self.failure = values, 0, None

    def get_paginator(self, name: str) -> FakeSsm:
        assert name == "get_parameters_by_path"
        return self

    def paginate(self, Path: str, Recursive: bool) -> list[dict[str, Any]]:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        return [{"Parameters": [{"Value": v} for v in self.values[i:i + 2]]}
                for i in range(0, len(self.values), 2)]


def entry(principal: str, grant: Grant) -> str:
    return json.dumps(registry_entry(principal, grant))


def test_a_roles_sessions_get_the_roles_grants() -> None:
    ssm = FakeSsm([entry(ROLE, Grant.consume("billing")), entry(ROLE, Grant.produce("x")),
                   "not json", json.dumps({"principal": ROLE, "grant": "owner:*:*"})])
    registry = GrantRegistry("/streamlet/p/grants", ssm=ssm)
    assert registry.grants(SESSION) == [Grant.consume("billing"), Grant.produce("x")]
    assert registry.grants("arn:aws:sts::999999999999:assumed-role/billing/s") == []
    assert ssm.reads == 1  # cached


def test_the_registry_is_reread_after_its_ttl_and_kept_when_a_reread_fails() -> None:
    ssm = FakeSsm([entry(ROLE, Grant.consume("billing"))])
    registry = GrantRegistry("/p", ttl_s=0.0, ssm=ssm)
    assert registry.grants(SESSION) == [Grant.consume("billing")]
    ssm.failure = Throttled("slow down")
    assert registry.grants(SESSION) == [Grant.consume("billing")]  # the last one read
    first = GrantRegistry("/p", ssm=ssm)
    with pytest.raises(Throttled):  # nothing read yet: fail closed (a retriable 429)
        first.grants(SESSION)


def test_a_caller_without_identity_or_grant_is_refused(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    monkeypatch.delenv("STREAMLET_GRANTS_PATH", raising=False)
    event = {"requestContext": {"accountId": "1", "apiId": "a", "stage": "$default"}}
    access = caller_access(event)
    with pytest.raises(AccessDenied, match="no IAM identity"):
        _ = access.principal
    with pytest.raises(AccessDenied, match="'orders'"):
        access.check_read("orders", 0)
