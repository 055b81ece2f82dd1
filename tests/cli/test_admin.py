"""`streamlet admin archive | retention | delete-records` against the local platform."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from streamlet import Admin, Consumer, Producer, TopicPartition
from streamlet.cli import app
from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS
from tests.cli.test_cli import assert_fails


@pytest.fixture(scope="module")
def gateway(platform: LocalPlatform) -> str:
    return platform.start_gateway(port=0)


@pytest.fixture(params=["direct", "http"])
def run(request: pytest.FixtureRequest, live_platform: LocalPlatform,
        monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`streamlet --endpoint E ...` over the direct and the HTTP transport (local creds)."""
    url = live_platform.endpoint
    if request.param == "http":
        key, secret = LOCAL_CREDENTIALS
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        url = request.getfixturevalue("gateway")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, ["--endpoint", url, *args])

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def rows(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    return [line.split() for line in result.stdout.splitlines()[1:]]


def test_archive_then_read_back_then_retention(run, topic: str) -> None:  # type: ignore[no-untyped-def]
    admin = Admin(run.url)
    admin.create_topic(topic, 2, {"retention.bytes": 0})
    with Producer(run.url) as producer:
        for i in range(40):
            producer.send(topic, f"v{i}".encode(), partition=i % 2)
    assert rows(run("admin", "archive", "--topic", topic)) == [  # nothing is due yet
        [topic, "0", "0", "0", "0", "20", "0"], [topic, "1", "0", "0", "0", "20", "0"]]
    archived = rows(run("admin", "archive", "--topic", topic, "--force"))
    assert [(r[1], r[2], r[4], r[5]) for r in archived] == [("0", "1", "20", "20"),
                                                             ("1", "1", "20", "20")]
    with Consumer(endpoint=run.url, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        got = []
        while len(got) < 20:
            got += [r.value for r in consumer.poll(timeout=1)]
    assert got == [f"v{i}".encode() for i in range(0, 40, 2)]
    expired = rows(run("admin", "retention", "--topic", topic))  # retention.bytes=0
    assert [(r[2], r[3], r[4]) for r in expired] == [("0", "20", "1"), ("0", "20", "1")]
    assert admin.watermarks(topic, 0) == (20, 20)


def test_delete_records_and_its_errors(run, topic: str) -> None:  # type: ignore[no-untyped-def]
    Admin(run.url).create_topic(topic, 1)
    with Producer(run.url) as producer:
        for _ in range(10):
            producer.send(topic, b"x", partition=0)
    result = run("admin", "delete-records", topic, "-p", "0", "--before", "4")
    assert result.exit_code == 0 and result.stdout.strip().endswith("low watermark 4")
    with Consumer(endpoint=run.url, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek(TopicPartition(topic, 0), 1)  # below the log start: reset to earliest
        first = []
        while not first:
            first = consumer.poll(timeout=1)
    assert first[0].offset == 4
    assert_fails(run("admin", "delete-records", topic, "-p", "0", "--before", "11"),
                 "Offset 11 is out of range")
    assert_fails(run("admin", "delete-records", "nope", "-p", "0", "--before", "1"), "nope")
    assert_fails(run("admin", "archive", "--topic", "no/such"), "no/such")
