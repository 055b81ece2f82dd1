"""``streamlet local --kafka-port`` and ``streamlet gateway``, with kcat when it is installed
(Debian's kcat package; the test is skipped without it)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamlet import Admin
from streamlet.engine.grants import Grant, http_policy
from streamlet.local import LocalPlatform

QUIET = {"log_level": 3}


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


def test_the_gateway_command_refuses_http_endpoints() -> None:
    result = subprocess.run([sys.executable, "-m", "streamlet.cli", "gateway", "--endpoint",
                             "http://127.0.0.1:1", "--auth", "none"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1 and "direct://" in result.stderr


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
