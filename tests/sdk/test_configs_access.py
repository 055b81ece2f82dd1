"""Topic config routes are administration: a caller granted produce and consume on a
topic may not read or change its configs (403, nothing changed); an administrator may."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from streamlet import AccessDenied, Admin
from streamlet.engine.grants import Grant, http_policy
from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS
from streamlet.local.gateway import Gateway
from streamlet.local.principals import Principal
from streamlet.policy import Policy
from streamlet.transport.http import HttpTransport

LOCAL_API = "arn:aws:execute-api:us-east-1:000000000000:local"
USER = Principal("writer", "writer", "writer-secret", (Policy.from_json(http_policy(
    [Grant.produce("cfg"), Grant.consume("cfg", "cfg")], LOCAL_API), "writer grants"),))


@pytest.fixture(scope="module")
def gateway(platform: LocalPlatform) -> Iterator[Gateway]:
    started = Gateway(platform.engine(), principals=[USER]).start()
    yield started
    started.stop()


def transport(gateway: Gateway, key: str, secret: str) -> HttpTransport:
    return HttpTransport(gateway.url, boto3.Session(aws_access_key_id=key,
                                                    aws_secret_access_key=secret,
                                                    region_name="us-east-1"))


def test_only_an_administrator_reads_and_changes_topic_configs(live_platform: LocalPlatform,
                                                               gateway: Gateway,
                                                               topic: str) -> None:
    name = f"cfg-{topic}"
    admin = Admin(transport=transport(gateway, *LOCAL_CREDENTIALS))
    admin.create_topic(name, config={"retention.ms": 60000})
    writer = Admin(transport=transport(gateway, "writer", "writer-secret"))
    for attempt in (lambda: writer.incremental_alter_configs({name: {"retention.ms": ("SET", 1)}}),
                    lambda: writer.alter_configs({name: {}}),
                    lambda: writer.describe_configs([name])):
        with pytest.raises(AccessDenied):
            attempt()
    assert admin.describe_configs([name])[name]["retention.ms"].value == "60000"
    admin.incremental_alter_configs({name: {"retention.ms": ("DELETE", None)}})
    assert admin.describe_configs([name])[name]["retention.ms"].is_default
