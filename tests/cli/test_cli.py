"""The `streamlet` command against the shared local platform (typer's CliRunner)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from streamlet import Admin, Consumer, Producer, TopicPartition
from streamlet.cli import app

Run = Callable[..., Result]


@pytest.fixture
def cli(endpoint: str) -> Run:
    """Run `streamlet --endpoint ENDPOINT ARGS...` in-process."""
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(app, ["--endpoint", endpoint, *args], input=input)

    return run


def assert_fails(result: Result, *needles: str) -> None:
    """Exit status 1 and exactly one `error:` line on stderr naming every needle."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


def json_lines(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def produce_numbered(endpoint: str, topic: str, n: int, partitions: int = 1) -> None:
    """Records v0..v{n-1} with timestamps 1000, 2000, ... (one partition unless told)."""
    Admin(endpoint).create_topic(topic, partitions)
    with Producer(endpoint) as producer:
        for i in range(n):
            producer.send(topic, f"v{i}", partition=i % partitions, timestamp_ms=(i + 1) * 1000)


# ---- topics ------------------------------------------------------------------------------------

def test_topics_round_trip(cli: Run, topic: str) -> None:
    created = cli("topics", "create", topic, "--partitions", "3", "-c", "retention.ms=60000",
                  "--config", "max.message.bytes=2048")
    assert created.exit_code == 0, created.output
    assert topic in cli("topics", "list").stdout.splitlines()

    described = cli("topics", "describe", topic)
    assert described.exit_code == 0, described.output
    summary, *table = described.stdout.split("\n\n")[0].splitlines()  # then the configs
    assert summary.startswith(f"Topic: {topic}\t")
    assert "PartitionCount: 3" in summary
    assert "Configs: max.message.bytes=2048,retention.ms=60000" in summary
    assert table[0].split() == ["PARTITION", "LOW", "HIGH", "MESSAGES"]
    assert [row.split() for row in table[1:]] == [[str(p), "0", "0", "0"] for p in range(3)]

    grown = cli("topics", "add-partitions", topic, "--total", "5")
    assert grown.exit_code == 0, grown.output
    assert "PartitionCount: 5" in cli("topics", "describe", topic).stdout

    assert cli("topics", "delete", topic).exit_code == 0
    assert topic not in cli("topics", "list").stdout.splitlines()


def test_describe_counts_messages(cli: Run, endpoint: str, topic: str) -> None:
    produce_numbered(endpoint, topic, 5, partitions=2)
    rows = cli("topics", "describe", topic).stdout.split("\n\n")[0].splitlines()[2:]
    assert [row.split() for row in rows] == [["0", "0", "3", "3"], ["1", "0", "2", "2"]]


@pytest.mark.parametrize(("args", "needles"), [
    (("topics", "create", "bad name!"), ["bad name!"]),
    (("topics", "create", "{topic}", "-c", "retention.ms=soon"), ["retention.ms"]),
    (("topics", "create", "{topic}", "-c", "no.such.key=1"), ["no.such.key"]),
    (("topics", "create", "{topic}", "-c", "retention.ms"), ["--config", "retention.ms"]),
    (("topics", "create", "{topic}", "--partitions", "lots"), ["--partitions"]),
    (("topics", "describe", "{topic}"), ["{topic}", "does not exist"]),
    (("topics", "delete", "{topic}"), ["{topic}"]),
    (("topics", "add-partitions", "{topic}", "--total", "2"), ["{topic}"]),
    (("consume", "{topic}", "-e"), ["{topic}"]),
    (("produce", "{topic}"), ["{topic}"]),
])
def test_bad_input_is_one_error_line(cli: Run, topic: str, args: tuple[str, ...],
                                     needles: list[str]) -> None:
    result = cli(*(a.format(topic=topic) for a in args), input="x\n")
    assert_fails(result, *(n.format(topic=topic) for n in needles))


def test_duplicate_topic(cli: Run, topic: str) -> None:
    assert cli("topics", "create", topic).exit_code == 0
    assert_fails(cli("topics", "create", topic), topic, "already exists")


def test_shrinking_a_topic_fails(cli: Run, topic: str) -> None:
    assert cli("topics", "create", topic, "-p", "3").exit_code == 0
    assert_fails(cli("topics", "add-partitions", topic, "--total", "2"), topic)


def test_missing_endpoint_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["topics", "list"])
    assert_fails(result, "--endpoint", "STREAMLET_ENDPOINT")


def test_endpoint_from_the_environment(endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic)
    result = CliRunner().invoke(app, ["topics", "list"], env={"STREAMLET_ENDPOINT": endpoint})
    assert topic in result.stdout.splitlines()


def test_bad_endpoint_scheme(cli: Run) -> None:
    assert_fails(CliRunner().invoke(app, ["-b", "kafka://x:9092", "topics", "list"]),
                 "kafka://x:9092")


# ---- produce / consume ---------------------------------------------------------------------

def test_produce_with_keys_and_headers_then_consume_json(cli: Run, endpoint: str,
                                                         topic: str) -> None:
    Admin(endpoint).create_topic(topic, 3)
    lines = "".join(f"user-{i % 5}:event {i}\n" for i in range(30)) + "\nno key here\n"
    produced = cli("produce", topic, "-K", ":", "-H", "source=cli", "-H", "trace=a=b",
                   input=lines)
    assert produced.exit_code == 0, produced.output
    assert "Produced 31 record(s)" in produced.stderr

    records = json_lines(cli("consume", topic, "-o", "beginning", "-e", "--format", "json"))
    assert len(records) == 31
    assert {r["topic"] for r in records} == {topic}
    assert all(r["tstype"] == "create" and isinstance(r["ts"], int) for r in records)
    assert all(r["headers"] == ["source", "cli", "trace", "a=b"] for r in records)
    payloads = {r["payload"]: r["key"] for r in records}
    assert payloads["no key here"] is None
    assert all(payloads[f"event {i}"] == f"user-{i % 5}" for i in range(30))
    for partition in range(3):
        offsets = [r["offset"] for r in records if r["partition"] == partition]
        assert offsets == list(range(len(offsets)))  # dense, in order
    for key in {r["key"] for r in records if r["key"]}:
        events = [int(str(r["payload"]).split()[1]) for r in records if r["key"] == key]
        assert len({r["partition"] for r in records if r["key"] == key}) == 1
        assert events == sorted(events)


def test_produce_to_a_partition_from_a_file(cli: Run, endpoint: str, topic: str,
                                            tmp_path: os.PathLike[str]) -> None:
    Admin(endpoint).create_topic(topic, 3)
    path = os.path.join(tmp_path, "in.txt")
    with open(path, "wb") as f:
        f.write(b"a\tone\r\nb\ttwo\n\n")
    result = cli("produce", topic, "--file", path, "-p", "2", "-K", "\\t")
    assert result.exit_code == 0, result.output
    assert "partitions: 2" in result.stderr
    out = cli("consume", topic, "-p", "2", "-o", "beginning", "-e", "-K", "=")
    assert out.stdout.splitlines() == ["a=one", "b=two"]


def test_consume_text_relative_absolute_and_count(cli: Run, endpoint: str, topic: str) -> None:
    produce_numbered(endpoint, topic, 10)
    assert cli("consume", topic, "-o", "-3", "-e").stdout.split() == ["v7", "v8", "v9"]
    assert cli("consume", topic, "-o", "-30", "-e").stdout.split() == [f"v{i}" for i in range(10)]
    assert cli("consume", topic, "-o", "6", "-e").stdout.split() == ["v6", "v7", "v8", "v9"]
    assert cli("consume", topic, "-o", "10", "-e").stdout == ""
    assert cli("consume", topic, "-o", "beginning", "-c", "2").stdout.split() == ["v0", "v1"]
    assert cli("consume", topic, "-o", "end", "-e").stdout == ""


def test_relative_offset_applies_per_partition(cli: Run, endpoint: str, topic: str) -> None:
    produce_numbered(endpoint, topic, 9, partitions=3)
    records = json_lines(cli("consume", topic, "-o", "-1", "-e", "-J"))
    assert sorted((r["partition"], r["offset"]) for r in records) == [(0, 2), (1, 2), (2, 2)]


def test_consume_from_a_timestamp(cli: Run, endpoint: str, topic: str) -> None:
    produce_numbered(endpoint, topic, 10)
    records = json_lines(cli("consume", topic, "-o", "@4500", "-e", "--format", "json"))
    assert [r["payload"] for r in records] == ["v4", "v5", "v6", "v7", "v8", "v9"]
    assert [r["ts"] for r in records] == [5000, 6000, 7000, 8000, 9000, 10000]
    assert cli("consume", topic, "-o", "s@1000", "-e", "-c", "1").stdout == "v0\n"
    assert cli("consume", topic, "-o", "@99999999", "-e").stdout == ""  # none: the end


def test_consume_binary_and_null_values_as_json(cli: Run, endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic)
    with Producer(endpoint) as producer:
        producer.send(topic, b"\xff\x00binary", key=b"k", headers=[("h", None)])
        producer.send(topic, None, key="tombstone")
    records = json_lines(cli("consume", topic, "-o", "beginning", "-e", "-J"))
    assert records[0]["payload"] == "/wBiaW5hcnk="  # base64: not UTF-8
    assert records[0]["headers"] == ["h", None]
    assert (records[1]["key"], records[1]["payload"]) == ("tombstone", None)


@pytest.mark.parametrize("offset", ["3", "nonsense", "@-5", "--2"])
def test_bad_offsets(cli: Run, endpoint: str, topic: str, offset: str) -> None:
    produce_numbered(endpoint, topic, 2)
    result = cli("consume", topic, f"--offset={offset}", "-e")
    assert_fails(result, "3" if offset == "3" else offset)
    if offset == "3":
        assert "out of range" in result.stderr and topic in result.stderr


def test_unknown_partition(cli: Run, endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, 2)
    assert_fails(cli("consume", topic, "-p", "5", "-e"), topic, "5")
    assert_fails(cli("produce", topic, "-p", "5", input="x\n"), topic, "5")


def test_bad_header_option(cli: Run, endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic)
    assert_fails(cli("produce", topic, "-H", "novalue", input="x\n"), "novalue")


def test_exit_at_end_reads_what_arrives_meanwhile(endpoint: str, topic: str) -> None:
    """-e stops at the end of the log as it is when the consumer catches up."""
    from streamlet.admin import Admin as RealAdmin
    from streamlet.cli.offsets import EndTracker

    produce_numbered(endpoint, topic, 3)
    tp = TopicPartition(topic, 0)
    consumer = Consumer(endpoint=endpoint)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    tracker = EndTracker(RealAdmin(endpoint), {tp: 3})
    assert not tracker.reached(consumer)
    assert len(consumer.poll(timeout=2)) == 3
    with Producer(endpoint) as producer:
        producer.send(topic, "late", partition=0)
    assert not tracker.reached(consumer)  # the watermark moved on: keep reading
    assert [r.value for r in consumer.poll(timeout=2)] == [b"late"]
    assert tracker.reached(consumer)


# ---- local ---------------------------------------------------------------------------------

def test_local_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["local", "--port", str(port)])
    assert_fails(result, str(port))


def test_local_runs_until_interrupted(topic: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "local", "--port", "0",
                             "--api-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        exports = dict(shlex.split(proc.stdout.readline())[1].split("=", 1)  # type: ignore[union-attr]
                       for _ in range(5))
        assert set(exports) == {"STREAMLET_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
        endpoint = exports["STREAMLET_ENDPOINT"]
        Admin(endpoint).create_topic(topic, 2)
        with Producer(endpoint) as producer:
            producer.send(topic, "hello", key="k").result(timeout=10)
        with Consumer(topic, endpoint=endpoint, auto_offset_reset="earliest") as consumer:
            assert [r.value for r in consumer.poll(timeout=5)] == [b"hello"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "listening on" in stderr and "Traceback" not in stderr
    assert "HTTP API (SigV4" in stderr and "/v3/clusters" in stderr


def test_local_adds_principals_with_their_own_policies(tmp_path: Path, topic: str) -> None:
    # issue 16 (point 6): the local gateway evaluates the policies of the principals it is
    # started with, so a grant's scope can be tried locally end to end.
    from streamlet.engine.grants import Grant, http_policy
    from streamlet.errors import AccessDenied
    from streamlet.transport.http import HttpTransport

    policy = tmp_path / "reader.json"
    policy.write_text(json.dumps(http_policy(
        [Grant.consume(topic)], "arn:aws:execute-api:us-east-1:000000000000:local")))
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "local", "--port", "0",
                             "--api-port", "0", "--archive-interval", "0",
                             "--principal", f"reader={policy}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(5):
            proc.stdout.readline()  # type: ignore[union-attr]
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("# principal reader (arn:aws:iam::000000000000:user/reader)")
        keys = dict(part.split("=", 1) for part in shlex.split(line.split(": ", 1)[1])[1:])
        url = _api_url(proc)
        admin = HttpTransport(url, _session("streamlet-local", "streamlet-local"))
        admin.create_topic(topic, 1)
        reader = HttpTransport(url, _session(keys["AWS_ACCESS_KEY_ID"],
                                             keys["AWS_SECRET_ACCESS_KEY"]))
        assert reader.watermarks(topic, 0) == (0, 0)
        with pytest.raises(AccessDenied, match="not authorized"):
            reader.create_topic(f"{topic}-x", 1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def _api_url(proc: subprocess.Popen[str]) -> str:
    for _ in range(50):
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if "HTTP API (SigV4" in line:
            return str(line.split(": ", 1)[1].split(" ")[0])
    raise AssertionError("the HTTP API never announced itself")


def _session(key: str, secret: str) -> Any:
    import boto3

    return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                         region_name="us-east-1")


@pytest.mark.parametrize(("spec", "needle"), [
    ("reader", "NAME=policy.json"), ("reader=/nonexistent.json", "No such file"),
    ("bad/name=x.json", "Principal name"), ("streamlet-local=x.json", "Principal name")])
def test_local_refuses_bad_principals(spec: str, needle: str) -> None:
    result = CliRunner().invoke(app, ["local", "--port", "0", "--principal", spec])
    assert_fails(result, needle)
