"""``streamlet local --trigger TOPIC=module:function``: local handlers get the Lambda events."""

from __future__ import annotations

import gzip
import json
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from streamlet import Admin, Producer
from streamlet.cli import app
from streamlet.cli.common import CliError
from streamlet.cli.triggers import parse_sink, parse_trigger, parse_triggers
from streamlet.triggers import TopicDestination

HANDLER = textwrap.dedent("""
    import base64, json, os

    def handle(event, context):
        with open(os.environ["TRIGGER_OUT"], "a") as out:
            for key, records in event["records"].items():
                for r in records:
                    out.write(json.dumps([event["eventSource"], key, r["offset"],
                                          base64.b64decode(r["value"]).decode()]) + "\\n")
""")


def test_specs_become_triggers() -> None:
    trigger = parse_trigger("orders=app.handlers:bill?batch_size=10&on_failure=orders.dlq"
                            "&bisect_batch_on_function_error=true&starting_position=TRIM_HORIZON")
    assert (trigger.name, trigger.topic, trigger.function) == \
        ("orders.app.handlers.bill", "orders", "app.handlers:bill")
    assert (trigger.batch_size, trigger.bisect_batch_on_function_error) == (10, True)
    assert trigger.on_failure == TopicDestination("orders.dlq")
    assert parse_trigger("orders=m:f?name=x&group_id=g").group == "g"


@pytest.mark.parametrize(("spec", "needle"), [
    ("orders", "TOPIC=module:function"), ("orders=module", "TOPIC=module:function"),
    ("orders=m:f?batch_size=big", "an integer"), ("orders=m:f?surprise=1", "Unknown"),
    ("orders=m:f?batch_size=0", "batch_size"), ("bad/topic=m:f", "bad/topic"),
])
def test_bad_specs_are_one_clear_error(spec: str, needle: str) -> None:
    with pytest.raises(CliError, match=needle):
        parse_trigger(spec)
    result = CliRunner().invoke(app, ["local", "--port", "0", "--trigger", spec])
    assert result.exit_code == 1 and needle in result.stderr


def test_sink_specs_become_sink_triggers() -> None:
    trigger = parse_sink("orders=sqs:http://127.0.0.1:4566/000000000000/q.fifo?body=value"
                         "&batch_size=10&on_failure=orders.dlq")
    assert trigger.sink == {"kind": "sqs", "queue_url": "http://127.0.0.1:4566/000000000000/"
                            "q.fifo", "body": "value"}
    assert (trigger.name, trigger.batch_size, trigger.starting_position) == \
        ("orders.sqs", 10, "TRIM_HORIZON")
    with pytest.raises(CliError, match="KIND one of"):
        parse_sink("orders=ftp:x")


def test_two_specs_cannot_make_one_name() -> None:
    with pytest.raises(CliError, match="same trigger name"):
        parse_triggers(["orders=m:f", "orders=m:f"])


def test_local_runs_a_handler_module_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text(HANDLER)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlet.cli", "local", "--port", "0", "--api-port", "0",
         "--archive-interval", "0", "--trigger",
         "orders=handlers:handle?starting_position=TRIM_HORIZON&batch_size=2",
         "--sink", "orders=s3:lake-bucket?prefix=raw/"],
        cwd=tmp_path, env={**_env(), "TRIGGER_OUT": str(out)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        exports = dict(shlex.split(proc.stdout.readline())[1].split("=", 1)  # type: ignore[union-attr]
                       for _ in range(5))
        endpoint = exports["STREAMLET_ENDPOINT"]
        s3 = boto3.client("s3", endpoint_url=exports["AWS_ENDPOINT_URL"],
                          region_name="us-east-1", aws_access_key_id="streamlet-local",
                          aws_secret_access_key="streamlet-local")
        s3.create_bucket(Bucket="lake-bucket")
        Admin(endpoint).create_topic("orders", 1)  # created after the trigger started
        with Producer(endpoint, linger_ms=0) as producer:
            for i in range(5):
                producer.send("orders", f"v{i}").result(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lines = out.read_text().splitlines() if out.exists() else []
            if len(lines) >= 5:
                break
            time.sleep(0.1)
        got = [json.loads(line) for line in lines]
        assert [g[2:] for g in got] == [[i, f"v{i}"] for i in range(5)]
        assert {(g[0], g[1]) for g in got} == {("SelfManagedKafka", "orders-0")}
        (row,) = Admin(endpoint).describe_group("orders.handlers.handle")
        assert (row.current_offset, row.lag) == (5, 0)
        while time.monotonic() < deadline and not s3.list_objects_v2(
                Bucket="lake-bucket").get("KeyCount"):
            time.sleep(0.1)
        (item,) = s3.list_objects_v2(Bucket="lake-bucket")["Contents"]
        body = gzip.decompress(s3.get_object(Bucket="lake-bucket", Key=item["Key"])["Body"]
                               .read())
        assert [json.loads(line)["value"] for line in body.splitlines()] == \
            [f"v{i}" for i in range(5)]
        assert item["Key"].startswith("raw/orders/dt=")
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Trigger orders.handlers.handle: orders -> handlers:handle" in stderr
    assert "Trigger orders.s3: orders -> s3 sink" in stderr
    assert "Traceback" not in stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STREAMLET_"))}
