"""Kafka clients through the gateway against the SDK's direct mode, in one run.

Run from the repository root:  python -m bench.bench_kafka

Processes: `streamlet local` (moto, its own process), `streamlet gateway --auth none` (its
own process, so its CPU time is its own), and this script, which drives confluent-kafka
(librdkafka) through the gateway and Streamlet's SDK in direct mode against the same
platform, same topic shape, same records (~1 KiB JSON order events, lz4).

Measured: produce and consume throughput (median of RUNS), produce latency (one record
at a time, acknowledged before the next: p50/p99), and the gateway's CPU per MB passed
through (user + system time of its process over the bytes of the record values), beside
the SDK's own client CPU per MB in direct mode (which does the engine's work in-process).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka import TopicPartition as KafkaTP

from streamlet import Admin, Consumer, Producer, TopicPartition

from .events import make_keys, make_values
from .latency import percentile

RECORDS = 10_000
RUNS = 3
LATENCY_SENDS = 200
PARTITIONS = 4
QUIET = {"log_level": 3}
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Path:
    label: str
    produce: list[float] = field(default_factory=list)   # records/s per run
    consume: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0           # CPU of the process doing the Kafka/engine work
    mb: float = 0.0              # record value MB passed through (produced + consumed)


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_local() -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "local", "--port", "0",
                             "--api-port", "0", "--archive-interval", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    exports = dict(shlex.split(proc.stdout.readline())[1].split("=", 1)  # type: ignore[union-attr]
                   for _ in range(5))
    return proc, exports


def start_gateway(endpoint: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "streamlet.cli", "gateway", "--endpoint",
                             endpoint, "--host", "127.0.0.1", "--port", "0", "--auth", "none"],
                            stderr=subprocess.PIPE, text=True, env=env)
    while True:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        found = re.search(r"advertised as (\S+:\d+)", line)
        if found:
            return proc, found[1]
        if not line:
            raise RuntimeError("the gateway did not start")


def kafka_produce(bootstrap: str, topic: str, keys: list[bytes], values: list[bytes]) -> float:
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                              "compression.type": "lz4", "enable.idempotence": True,
                              "partitioner": "murmur2_random", **QUIET})
    start = time.perf_counter()
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(120) == 0
    return len(values) / (time.perf_counter() - start)


def kafka_consume(bootstrap: str, topic: str, count: int) -> float:
    consumer = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
                              "enable.auto.commit": False, **QUIET})
    consumer.assign([KafkaTP(topic, p, 0) for p in range(PARTITIONS)])
    got, start = 0, time.perf_counter()
    while got < count:
        got += sum(1 for m in consumer.consume(1000, 1.0) if m.error() is None)
    rate = count / (time.perf_counter() - start)
    consumer.close()
    return rate


def kafka_latency(bootstrap: str, topic: str, values: list[bytes]) -> list[float]:
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": 0,
                              "enable.idempotence": True, **QUIET})
    producer.produce(topic, b"warm-up")
    producer.flush(10)
    out = []
    for value in values:
        start = time.perf_counter()
        producer.produce(topic, value)
        producer.flush(10)
        out.append((time.perf_counter() - start) * 1000)
    return out


def sdk_produce(endpoint: str, topic: str, keys: list[bytes], values: list[bytes]) -> float:
    with Producer(endpoint, linger_ms=5, compression_type="lz4") as producer:
        start = time.perf_counter()
        futures = [producer.send(topic, v, key=k) for k, v in zip(keys, values, strict=True)]
        producer.flush()
        for future in futures:
            future.result(60)
        return len(values) / (time.perf_counter() - start)


def sdk_consume(endpoint: str, topic: str, count: int) -> float:
    with Consumer(endpoint=endpoint, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        got, start = 0, time.perf_counter()
        while got < count:
            got += len(consumer.poll(timeout=1.0))
        return count / (time.perf_counter() - start)


def sdk_latency(endpoint: str, topic: str, values: list[bytes]) -> list[float]:
    with Producer(endpoint, linger_ms=0) as producer:
        producer.send(topic, b"warm-up").result(10)
        out = []
        for value in values:
            start = time.perf_counter()
            producer.send(topic, value).result(10)
            out.append((time.perf_counter() - start) * 1000)
        return out


def main() -> None:
    values, keys = make_values("order", RECORDS), make_keys(RECORDS)
    mb = sum(map(len, values)) / 1e6
    local, exports = start_local()
    env = {**os.environ, **exports}
    os.environ.update(exports)
    endpoint = exports["STREAMLET_ENDPOINT"]
    gateway, bootstrap = start_gateway(endpoint, env)
    admin = Admin(endpoint)
    kafka, sdk = Path("confluent-kafka via the gateway"), Path("Streamlet SDK, direct mode")
    try:
        for run in range(RUNS):
            for path in (kafka, sdk):
                topic = f"bench-{'k' if path is kafka else 's'}-{run}"
                admin.create_topic(topic, PARTITIONS)
                cpu0 = cpu_of(gateway.pid) if path is kafka else time.process_time()
                if path is kafka:
                    kafka.produce.append(kafka_produce(bootstrap, topic, keys, values))
                    kafka.consume.append(kafka_consume(bootstrap, topic, RECORDS))
                    kafka.cpu_s += cpu_of(gateway.pid) - cpu0
                else:
                    sdk.produce.append(sdk_produce(endpoint, topic, keys, values))
                    sdk.consume.append(sdk_consume(endpoint, topic, RECORDS))
                    sdk.cpu_s += time.process_time() - cpu0
                path.mb += 2 * mb
        admin.create_topic("bench-latency", 1)
        lat_values = values[:LATENCY_SENDS]
        kafka.latency_ms = kafka_latency(bootstrap, "bench-latency", lat_values)
        sdk.latency_ms = sdk_latency(endpoint, "bench-latency", lat_values)
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(20)
        local.send_signal(signal.SIGINT)
        local.wait(20)
    print(f"{RECORDS:,} records x {RUNS} runs, {mb:.1f} MB of values a run "
          f"(~{mb * 1e6 / RECORDS:.0f} B each), {PARTITIONS} partitions, lz4, linger 5 ms\n")
    print("| Path | Produce rec/s (runs) | Median | MB/s | Consume rec/s (runs) | Median "
          "| Produce p50 ms | p99 ms | CPU s per MB (process) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path, who in ((kafka, "gateway"), (sdk, "SDK client")):
        produce, consume = statistics.median(path.produce), statistics.median(path.consume)
        print(f"| {path.label} | {' / '.join(f'{r:,.0f}' for r in path.produce)} "
              f"| {produce:,.0f} | {produce * mb / RECORDS:.2f} "
              f"| {' / '.join(f'{r:,.0f}' for r in path.consume)} | {consume:,.0f} "
              f"| {percentile(path.latency_ms, 50):.1f} | {percentile(path.latency_ms, 99):.1f} "
              f"| {path.cpu_s / path.mb:.3f} ({who}) |")


if __name__ == "__main__":
    main()
