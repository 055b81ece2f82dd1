"""Triggers: append-to-invocation latency, what a million delivered records cost, and what a
quiet minute costs.

All three run the real dispatcher (``LocalTriggers``: the log table's DynamoDB stream on
the local moto server, read every ``poll`` seconds, a session per signalled partition) with
a no-op Python handler. Every DynamoDB request the dispatcher makes is sized as DynamoDB
bills it (``bench.billing``), S3 GETs are counted, and each stream read that starts work is
what one dispatcher invocation is on AWS (Lambda reads a DynamoDB stream shard 4 times a
second and invokes the function with what it found, free of charge for the reads).

1. Latency: a producer sends ``RATE`` records/s (``linger_ms=0``) to a 2-partition topic;
   the handler notes when each record arrives (the send time is in the value).
2. Cost per million delivered records at batch sizes 1, 100 and 1,000: the same live flow
   (``RATE_COST`` records/s, ``maximum_batching_window_ms`` 500) until every record is
   delivered, scaled to 10^6, with signals gathered for 1 s as the deployed stream mapping
   does (the smallest window, rounded up). Dispatcher duration is the sessions' summed wall
   time at 1,024 MB (an upper bound: sessions of one invocation run in parallel).
3. Idle: 60 s with the trigger running and nothing appended: billable requests counted.

    python -m bench.bench_triggers
"""

from __future__ import annotations

import json
import math
import os
import platform as pyplatform
import statistics
import threading
import time
from collections import Counter
from typing import Any

from streamlet import Admin, Producer
from streamlet.engine import Engine
from streamlet.local import LocalPlatform
from streamlet.triggers import Trigger
from streamlet.triggers.local import LocalTriggers

from .bench_core import cpu_model
from .billing import GET_PRICE, RRU_PRICE, WRU_PRICE, item_size, write_units

LAMBDA_REQUEST = 0.20 / 1_000_000
LAMBDA_GB_S = 0.0000133334  # arm64
DISPATCHER_GB = 1.0
RATE, LATENCY_S = 50, 20.0
RATE_COST, COST_S = 200, 15.0
IDLE_S = 60.0
MAPPING_WINDOW_S = 1.0
BATCH_SIZES = (1, 100, 1000)
READS = ("Query", "GetItem")
WRITES = ("PutItem", "UpdateItem", "DeleteItem")


class Meter:
    """Every DynamoDB request of the dispatcher's engine, in billed units; S3 GETs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.rru = self.wru = 0.0
        self.gets = 0

    def install(self, dynamodb: Any, s3: Any) -> tuple[Any, Any]:
        dynamodb.meta.events.register("before-parameter-build.dynamodb", self._before)
        dynamodb.meta.events.register("after-call.dynamodb", self._after)
        s3.meta.events.register("after-call.s3.GetObject", self._get)
        return dynamodb, s3

    def reset(self) -> None:
        with self.lock:
            self.ops.clear()
            self.rru = self.wru = 0.0
            self.gets = 0

    def _get(self, **_: Any) -> None:
        with self.lock:
            self.gets += 1

    @staticmethod
    def _before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["metered"] = params

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        op, params = model.name, context.get("metered", {})
        rru = wru = 0.0
        if op == "Query":
            size = sum(item_size(i) for i in parsed.get("Items", []))
            rru = max(1, math.ceil(size / 4096))
        elif op == "GetItem":
            rru = max(1, math.ceil(item_size(parsed.get("Item", {})) / 4096))
        elif op in WRITES:
            item = params.get("Item") or parsed.get("Attributes") or params.get("Key", {})
            wru = write_units(item_size(item))
        elif op == "TransactWriteItems":  # commits: a lease item each, 2 units in a transaction
            wru = write_units(0, transactional=True) * len(params["TransactItems"])
        with self.lock:
            self.ops[op] += 1
            self.rru += rru
            self.wru += wru


class Arrivals:
    """The handler: when each record arrived, how many invocations and records."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency_ms: list[float] = []
        self.invocations = 0
        self.records = 0

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        import base64

        now = time.time()
        batch = [r for rs in event["records"].values() for r in rs]
        with self.lock:
            self.invocations += 1
            self.records += len(batch)
            for record in batch:
                sent = json.loads(base64.b64decode(record["value"]))["sent"]
                self.latency_ms.append((now - sent) * 1000)


def runner(lp: LocalPlatform, meter: Meter, poll_s: float, window_s: float = 0.0
           ) -> LocalTriggers:
    dynamodb, s3 = meter.install(lp.client("dynamodb"), lp.client("s3"))
    return LocalTriggers(Engine(dynamodb, s3, lp.names), lp.client("dynamodb"),
                         lp.client("dynamodbstreams"), poll_interval_s=poll_s,
                         batching_window_s=window_s)


def send(lp: LocalPlatform, topic: str, rate: float, seconds: float) -> int:
    sent = 0
    with Producer(lp.endpoint, linger_ms=0) as producer:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            producer.send(topic, json.dumps({"sent": time.time(), "n": sent}).encode())
            sent += 1
            time.sleep(max(0.0, sent / rate - elapsed))
    return sent


def latency(lp: LocalPlatform, poll_s: float) -> dict[str, float]:
    topic = f"bench-trig-lat-{time.monotonic_ns()}"
    Admin(lp.endpoint).create_topic(topic, 2)
    arrivals = Arrivals()
    with runner(lp, Meter(), poll_s) as triggers:
        triggers.add(Trigger("lat", topic, function="bench:handler", batch_size=100,
                             maximum_batching_window_ms=0), handler=arrivals)
        sent = send(lp, topic, RATE, LATENCY_S)
        triggers.drain(timeout=60)
    values = sorted(arrivals.latency_ms)
    assert arrivals.records == sent, (arrivals.records, sent)
    return {"poll_s": poll_s, "records": sent, "p50": statistics.median(values),
            "p99": values[int(0.99 * (len(values) - 1))], "max": values[-1]}


def cost(lp: LocalPlatform, batch_size: int) -> dict[str, float]:
    topic = f"bench-trig-cost-{batch_size}-{time.monotonic_ns()}"
    Admin(lp.endpoint).create_topic(topic, 2)
    meter, arrivals = Meter(), Arrivals()
    with runner(lp, meter, 0.25, MAPPING_WINDOW_S) as triggers:
        triggers.add(Trigger("cost", topic, function="bench:handler", batch_size=batch_size),
                     handler=arrivals)
        triggers.drain(timeout=30)
        meter.reset()
        wakes0, sessions0 = triggers.wakes, len(triggers.results)
        sent = send(lp, topic, RATE_COST, COST_S)
        triggers.drain(timeout=600)
        sessions = triggers.results[sessions0:]
        wakes = triggers.wakes - wakes0
    assert arrivals.records == sent, (arrivals.records, sent)
    scale = 1_000_000 / sent
    gb_s = sum(r.elapsed_ms for r in sessions) / 1000 * DISPATCHER_GB
    row = {"batch_size": batch_size, "records": sent, "wakes": wakes * scale,
           "sessions": len(sessions) * scale, "invocations": arrivals.invocations * scale,
           "rru": meter.rru * scale, "wru": meter.wru * scale, "gets": meter.gets * scale,
           "gb_s": gb_s * scale, "requests": sum(meter.ops.values()) * scale}
    row["usd_dispatcher"] = row["wakes"] * LAMBDA_REQUEST + row["gb_s"] * LAMBDA_GB_S
    row["usd_storage"] = row["rru"] * RRU_PRICE + row["wru"] * WRU_PRICE + row["gets"] * \
        GET_PRICE
    row["usd_function"] = row["invocations"] * LAMBDA_REQUEST
    return row


def idle(lp: LocalPlatform) -> dict[str, float]:
    topic = f"bench-trig-idle-{time.monotonic_ns()}"
    Admin(lp.endpoint).create_topic(topic, 4)
    meter, arrivals = Meter(), Arrivals()
    with runner(lp, meter, 0.25) as triggers:
        triggers.add(Trigger("idle", topic, function="bench:handler"), handler=arrivals)
        triggers.drain(timeout=30)
        meter.reset()
        polls0, wakes0 = triggers.polls, triggers.wakes
        time.sleep(IDLE_S)
        polls, wakes = triggers.polls - polls0, triggers.wakes - wakes0
    return {"seconds": IDLE_S, "dynamodb": sum(meter.ops.values()), "s3": meter.gets,
            "dispatcher": wakes, "functions": arrivals.invocations, "stream_reads": polls}


def main() -> None:
    print("python -m bench.bench_triggers")
    print(f"machine: {cpu_model()} x{os.cpu_count()}, "
          f"Python {pyplatform.python_version()}, local moto server; load average at start "
          f"{_load()}")
    started = time.monotonic()
    with LocalPlatform() as lp:
        lat = [latency(lp, poll) for poll in (0.05, 0.25)]
        costs = [cost(lp, size) for size in BATCH_SIZES]
        quiet = idle(lp)
    print(f"\n1. append -> invocation, {RATE} records/s for {LATENCY_S:.0f} s, 2 partitions, "
          "window 0, producer linger_ms=0")
    print(f"{'stream read every':>18} {'records':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in lat:
        print(f"{r['poll_s']:>17.2f}s {r['records']:>8.0f} {r['p50']:>8.0f} {r['p99']:>8.0f} "
              f"{r['max']:>8.0f}")
    print(f"\n2. per million records delivered ({RATE_COST} records/s for {COST_S:.0f} s, "
          "window 500 ms, stream read every 0.25 s, signals gathered 1 s), dispatcher at "
          "1,024 MB arm64")
    print(f"{'batch':>6} {'dispatcher':>11} {'sessions':>9} {'fn invokes':>11} "
          f"{'rec/invoke':>10} {'DDB reqs':>10} {'RRU':>10} {'WRU':>10} {'S3 GET':>7} "
          f"{'GB-s':>9} {'$ dispatch':>11} {'$ DynamoDB':>11} {'$ fn reqs':>10} {'$ total':>8}")
    for r in costs:
        total = r["usd_dispatcher"] + r["usd_storage"] + r["usd_function"]
        print(f"{r['batch_size']:>6.0f} {r['wakes']:>11,.0f} {r['sessions']:>9,.0f} "
              f"{r['invocations']:>11,.0f} {1_000_000 / r['invocations']:>10.1f} "
              f"{r['requests']:>10,.0f} {r['rru']:>10,.0f} {r['wru']:>10,.0f} "
              f"{r['gets']:>7,.0f} {r['gb_s']:>9,.0f} {r['usd_dispatcher']:>11.3f} "
              f"{r['usd_storage']:>11.3f} {r['usd_function']:>10.3f} {total:>8.3f}")
    print(f"\n3. a quiet minute ({quiet['seconds']:.0f} s, 4 partitions, trigger running): "
          f"{quiet['dispatcher']:.0f} dispatcher invocations, {quiet['dynamodb']:.0f} DynamoDB "
          f"requests, {quiet['s3']:.0f} S3 requests, {quiet['functions']:.0f} function "
          f"invocations; {quiet['stream_reads']:.0f} stream reads (Lambda's, not billed)")
    print(f"\nrun time {time.monotonic() - started:.0f} s; load average at end {_load()}")


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
