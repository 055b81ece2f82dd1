"""``streamlet local --kafka-port`` and ``streamlet gateway``, with kcat when it is installed
(Debian's kcat package; the test is skipped without it)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from typer.testing import CliRunner

from streamlet import Admin
from streamlet.cli import app
from streamlet.engine.grants import Grant, http_policy
from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS
from streamlet.local.gateway import Gateway
from streamlet.local.principals import Principal
from streamlet.policy import Policy

QUIET = {"log_level": 3}
LOCAL_API = "arn:aws:execute-api:us-east-1:000000000000:local"


@pytest.fixture(scope="module")
def local_exports() -> Iterator[dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "local", "--port", "0",
                             "--api-port", "0", "--archive-interval", "0", "--kafka-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        exports = dict(shlex.split(proc.stdout.readline())[1].split("=", 1)  # type: ignore[union-attr]
                       for _ in range(6))
        yield exports
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr


def test_local_prints_the_bootstrap_line_and_serves_kafka(local_exports: dict[str, str],
                                                          topic: str) -> None:
    bootstrap = local_exports["KAFKA_BOOTSTRAP_SERVERS"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", bootstrap)
    Admin(local_exports["STREAMLET_ENDPOINT"]).create_topic(topic, 1)
    producer = Producer({"bootstrap.servers": bootstrap, **QUIET})
    producer.produce(topic, b"hello", b"k")
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cli", **QUIET})
    assert consumer.get_watermark_offsets(TopicPartition(topic, 0), 10) == (0, 1)
    consumer.close()


@pytest.mark.skipif(shutil.which("kcat") is None,
                    reason="kcat is not installed (apt-get install kcat): kcat -L/-P/-C untested")
def test_kcat_lists_produces_and_consumes(local_exports: dict[str, str], topic: str) -> None:
    bootstrap = local_exports["KAFKA_BOOTSTRAP_SERVERS"]
    Admin(local_exports["STREAMLET_ENDPOINT"]).create_topic(topic, 2)
    listing = subprocess.run(["kcat", "-b", bootstrap, "-L", "-t", topic], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    assert f'topic "{topic}" with 2 partitions' in listing
    subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", ":", "-H", "src=kcat",
                    "-z", "zstd"], input="a:one\nb:two\nc:three\n", text=True, timeout=30,
                   check=True)
    out = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                          "-f", "%k=%s %h\\n"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert sorted(out.split("\n")[:-1]) == ["a=one src=kcat", "b=two src=kcat",
                                            "c=three src=kcat"]


def test_the_gateway_command_serves_any_direct_endpoint(live_platform: LocalPlatform,
                                                        topic: str) -> None:
    live_platform.engine().create_topic(topic, 1)
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "gateway", "--endpoint",
                             live_platform.endpoint, "--host", "127.0.0.1", "--port", "0",
                             "--auth", "none"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "advertised as" not in line:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            assert line, "the gateway exited"
        bootstrap = re.search(r"advertised as (\S+:\d+)", line)[1]  # type: ignore[index]
        producer = Producer({"bootstrap.servers": bootstrap, **QUIET})
        producer.produce(topic, b"via the gateway command")
        assert producer.flush(10) == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert live_platform.engine().watermarks(topic, 0) == (0, 1)


def test_the_gateway_command_serves_the_storage_an_http_endpoint_names(
        live_platform: LocalPlatform, topic: str) -> None:
    api = live_platform.start_gateway()  # the HTTP API of `streamlet local`
    live_platform.engine().create_topic(topic, 1)
    key, secret = LOCAL_CREDENTIALS  # the caller's: they sign the question and reach moto
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "gateway", "--endpoint",
                             api, "--host", "127.0.0.1", "--port", "0", "--auth", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        said = [proc.stderr.readline()]  # type: ignore[union-attr]
        while "advertised as" not in said[-1]:
            assert said[-1], f"the gateway exited: {said}"
            said.append(proc.stderr.readline())  # type: ignore[union-attr]
        assert any(f"{api} keeps its data in {live_platform.direct_endpoint}" in line
                   for line in said), said
        bootstrap = re.search(r"advertised as (\S+:\d+)", said[-1])[1]  # type: ignore[index]
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send(topic, key=b"k", value=b"through the API's storage").get(10)
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10_000)
        consumer.assign([KafkaTopicPartition(topic, 0)])
        got = next(iter(consumer))
        consumer.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert (got.offset, got.key, got.value) == (0, b"k", b"through the API's storage")
    assert live_platform.engine().watermarks(topic, 0) == (0, 1)


@contextlib.contextmanager
def _api_without_the_route() -> Iterator[str]:
    """What an HTTP API deployed before ``GET /v1/deployment`` answers: API Gateway's 404."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"message":"Not Found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _gateway_fails(url: str, *needles: str, key: str = LOCAL_CREDENTIALS[0],
                   secret: str = LOCAL_CREDENTIALS[1]) -> None:
    """``streamlet gateway --endpoint url`` exits 1 with one ``error:`` line naming every
    needle, and no traceback."""
    result = CliRunner().invoke(app, ["gateway", "--endpoint", url, "--auth", "none"],
                                env={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret})
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_the_gateway_command_explains_an_unreachable_api() -> None:
    _gateway_fails("http://127.0.0.1:1", "Cannot ask http://127.0.0.1:1 for its storage",
                   "no answer from the API")


def test_the_gateway_command_explains_a_deployment_older_than_the_route() -> None:
    with _api_without_the_route() as url:
        _gateway_fails(url, f"{url} does not answer GET /v1/deployment (404)",
                       "update the deployment", "--endpoint 'direct://PREFIX?bucket=BUCKET&region=REGION'",
                       "DirectEndpoint")


def test_the_gateway_command_explains_a_caller_without_the_admin_grant(
        live_platform: LocalPlatform) -> None:
    policy = Policy.from_json(http_policy([Grant.produce(), Grant.consume()], LOCAL_API))
    api = Gateway(live_platform.engine(), direct_endpoint=live_platform.direct_endpoint,
                  principals=[Principal("writer", "writer", "writer-secret", (policy,))]
                  ).start()
    try:
        _gateway_fails(api.url, f"{api.url} would not name its storage",
                       "user/writer is not authorized", "GET/v1/deployment", "grant_admin",
                       "direct://PREFIX", key="writer", secret="writer-secret")
    finally:
        api.stop()


def test_local_principals_authenticate_with_plain_and_keep_their_grants(
        tmp_path: Path, topic: str) -> None:
    policy = tmp_path / "writer.json"
    policy.write_text(json.dumps(http_policy(
        [Grant.produce(topic)], "arn:aws:execute-api:us-east-1:000000000000:local")))
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "local", "--port", "0",
                             "--api-port", "0", "--archive-interval", "0", "--kafka-port", "0",
                             "--principal", f"writer={policy}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(7)]  # type: ignore[union-attr]
        exports = dict(shlex.split(line)[1].split("=", 1) for line in lines[:6])
        secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", lines[6])[1]  # type: ignore[index]
        Admin(exports["STREAMLET_ENDPOINT"]).create_topic(topic, 1)
        Admin(exports["STREAMLET_ENDPOINT"]).create_topic(f"other-{topic}", 1)
        producer = Producer({"bootstrap.servers": exports["KAFKA_BOOTSTRAP_SERVERS"],
                             "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
                             "sasl.username": "writer", "sasl.password": shlex.split(secret)[0],
                             **QUIET})
        delivered: dict[str, object] = {}
        for name in (topic, f"other-{topic}"):
            producer.produce(name, b"x", on_delivery=lambda e, m: delivered.__setitem__(
                m.topic(), e))
        producer.flush(10)
        assert delivered[topic] is None
        assert "AUTHORIZATION" in delivered[f"other-{topic}"].name()  # type: ignore[attr-defined]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
