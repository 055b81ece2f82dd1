"""The HTTP path against direct mode, in one run: throughput, latency, requests and cost.

Run from the repository root:  python -m bench.bench_http

Both paths use the same LocalPlatform: direct mode runs the engine in-process over
boto3; the HTTP path signs each request with SigV4 and goes through the local gateway,
which runs the very Lambda handlers that API Gateway invokes. Requests per 1,000 records
are counted at the transport, then priced at us-east-1 list prices.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from typing import Any

from streamlet import Admin, Consumer, Producer
from streamlet.local import LocalPlatform
from streamlet.transport import connect

from .events import make_values
from .latency import percentile

RECORDS = 5000
RUNS = 3
APIGW_PER_REQUEST = 1.00 / 1_000_000       # HTTP API, first 300M requests
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_S = 0.0000133334             # arm64
LAMBDA_GB = 0.5                            # the stack's produce/consume memory (512 MB)


class Counting:
    """A transport wrapper that counts calls per method."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.calls = inner, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return target(*args, **kwargs)

        return counted


def produce(endpoint: str, topic: str, values: list[bytes]) -> tuple[float, Counter[str]]:
    transport = Counting(connect(endpoint))
    with Producer(transport=transport) as producer:  # type: ignore[arg-type]
        producer.send(topic, b"warm-up").result(timeout=30)
        transport.calls.clear()
        started = time.perf_counter()
        futures = [producer.send(topic, v, key=str(i % 64)) for i, v in enumerate(values)]
        producer.flush()
        elapsed = time.perf_counter() - started
    assert all(f.exception() is None for f in futures)
    return len(values) / elapsed, transport.calls


def consume(endpoint: str, topic: str, total: int) -> tuple[float, Counter[str]]:
    transport = Counting(connect(endpoint))
    consumer = Consumer(topic, transport=transport, auto_offset_reset="earliest")  # type: ignore[arg-type]
    consumer.assignment()
    transport.calls.clear()
    started, got = time.perf_counter(), 0
    while got < total:
        got += len(consumer.poll(timeout=1))
    return total / (time.perf_counter() - started), transport.calls


def latency(endpoint: str, topic: str, rate: float = 100, seconds: float = 5
            ) -> list[float]:
    sent: dict[bytes, float] = {}
    got: list[float] = []
    stop = threading.Event()
    consumer = Consumer(topic, endpoint=endpoint, auto_offset_reset="latest")
    consumer.poll(timeout=0.2)

    def read() -> None:
        while not stop.is_set():
            for r in consumer.poll(timeout=0.05):
                if r.value in sent:
                    got.append((time.perf_counter() - sent[r.value]) * 1000)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with Producer(endpoint=endpoint, linger_ms=0) as producer:
        for i in range(int(rate * seconds)):
            value = f"lat-{i}".encode()
            sent[value] = time.perf_counter()
            producer.send(topic, value)
            time.sleep(1 / rate)
    time.sleep(1)
    stop.set()
    reader.join(timeout=5)
    return got


def main() -> None:
    print("python -m bench.bench_http")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; one LocalPlatform "
          "(moto server + local gateway running the Lambda handlers), loopback only\n")
    values = make_values("click", RECORDS)
    with LocalPlatform() as lp:
        paths = {"direct": lp.endpoint, "http": lp.start_gateway()}
        rows = {}
        for name, endpoint in paths.items():
            prod, cons, calls = [], [], Counter[str]()
            for run in range(RUNS):
                topic = f"bench-{name}-{run}-{time.monotonic_ns()}"
                Admin(endpoint).create_topic(topic, 4)
                rate, produce_calls = produce(endpoint, topic, values)
                crate, consume_calls = consume(endpoint, topic, RECORDS + 1)
                prod.append(rate)
                cons.append(crate)
                calls = produce_calls + consume_calls
            topic = f"bench-{name}-lat-{time.monotonic_ns()}"
            Admin(endpoint).create_topic(topic, 1)
            lat = latency(endpoint, topic)
            rows[name] = (statistics.median(prod), statistics.median(cons), lat, calls)
        _print(rows)


def _print(rows: dict[str, tuple[float, float, list[float], Counter[str]]]) -> None:
    print(f"{'path':<7} {'produce rec/s':>14} {'consume rec/s':>14} {'e2e p50 ms':>11} "
          f"{'e2e p99 ms':>11}   (medians of 3 runs; latency: 100 rec/s for 5 s)")
    for name, (prod, cons, lat, _) in rows.items():
        print(f"{name:<7} {prod:>14,.0f} {cons:>14,.0f} {percentile(lat, 50):>11.1f} "
              f"{percentile(lat, 99):>11.1f}")
    print(f"\nHTTP/direct produce: {rows['http'][0] / rows['direct'][0]:.2f}x, consume: "
          f"{rows['http'][1] / rows['direct'][1]:.2f}x")
    calls = rows["http"][3]
    appends, fetches = calls["append"], calls["fetch"]
    per_k = {"append (produce)": appends * 1000 / RECORDS,
             "fetch (consume)": fetches * 1000 / (RECORDS + 1)}
    print(f"\nHTTP requests per 1,000 records (last run; {RECORDS} records, 4 partitions, "
          "linger 5 ms):")
    requests = 0.0
    for what, n in per_k.items():
        requests += n
        print(f"  {what:<18} {n:8.2f}")
    duration_s = percentile(rows["http"][2], 50) / 1000
    apigw = requests * APIGW_PER_REQUEST
    lam = requests * (LAMBDA_PER_REQUEST + LAMBDA_GB * duration_s * LAMBDA_PER_GB_S)
    print(f"\nAPI Gateway + Lambda per 1,000 records: ${apigw + lam:.7f} "
          f"(API Gateway ${apigw:.7f}, Lambda ${lam:.7f}; Lambda duration taken as the "
          f"measured local e2e p50 {duration_s * 1000:.0f} ms at 512 MB arm64 — an upper "
          "bound for a warm handler) = "
          f"${(apigw + lam) * 1000:.4f} per million records, before DynamoDB "
          "(see bench_core section 2).")


if __name__ == "__main__":
    main()
