"""What an idle consumer costs: read units per partition while nothing arrives.

An assigned consumer (no group) sits on a 4-partition topic that gets no records, with
``fetch_max_wait_ms`` at several values. After the pause between empty fetch rounds has
grown to its cap, the log table's requests are counted for ``STEADY_S`` seconds and
extrapolated to 30 days at us-east-1 on-demand prices. Then, idle again each time, a
record is produced and the time from ``send`` until ``poll`` returns it is measured, five
times (the price of a longer cap). The application polls with ``timeout=0.5`` in a loop.

    python -m bench.bench_idle
"""

from __future__ import annotations

import os
import platform as pyplatform
import statistics
import threading
import time

from streamlet import Admin, Consumer, Producer
from streamlet.local import LocalPlatform

from .bench_core import cpu_model
from .bench_groups import Meter, metered_engine
from .billing import RRU_PRICE

PARTITIONS = 4
STEADY_S = 30.0
MONTH_S = 30 * 86400
WAITS_MS = (250, 500, 1000, 5000)
WAKE_SAMPLES = 5


def idle_cost(lp: LocalPlatform, wait_ms: int) -> dict[str, float]:
    topic = f"bench-idle-{wait_ms}-{time.monotonic_ns()}"
    Admin(lp.endpoint).create_topic(topic, PARTITIONS)
    meter = Meter(lp.names.log_table)
    consumer = Consumer(topic, transport=metered_engine(lp, meter), fetch_max_wait_ms=wait_ms)
    got: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if consumer.poll(timeout=0.5):
                got.append(time.monotonic())

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    time.sleep(2 * wait_ms / 1000 + 0.5)  # the pause doubles from 5 ms up to the cap
    meter.reset()
    time.sleep(STEADY_S)
    with meter.lock:
        gets, rru = meter.ops["GetItem"], meter.rru
    wakes: list[float] = []
    with Producer(lp.endpoint) as producer:
        producer.send(topic, b"warm-up", partition=1).result()  # metadata and producer id
        for _ in range(WAKE_SAMPLES):
            time.sleep(2 * wait_ms / 1000 + 0.5)  # idle again: the pause is at its cap
            got.clear()
            sent = time.monotonic()
            producer.send(topic, b"wake up", partition=0).result()
            deadline = sent + wait_ms / 1000 + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.005)
            wakes.append((got[0] - sent) * 1000 if got else float("nan"))
    stop.set()
    thread.join(timeout=10)
    consumer.close()
    per_partition_month = rru / STEADY_S * MONTH_S / PARTITIONS
    return {"wait_ms": wait_ms, "gets_per_s": gets / STEADY_S / PARTITIONS,
            "rru_month": per_partition_month, "usd_month": per_partition_month * RRU_PRICE,
            "wake_median_ms": statistics.median(wakes), "wake_max_ms": max(wakes)}


def main() -> None:
    print("python -m bench.bench_idle")
    print(f"machine: {cpu_model()} x{os.cpu_count()}, "
          f"Python {pyplatform.python_version()}, local moto server")
    print(f"one assigned consumer, {PARTITIONS} idle partitions, {STEADY_S:.0f} s counted "
          f"per row; RRU at ${RRU_PRICE * 1e6:.3f}/M (on-demand, us-east-1)\n")
    with LocalPlatform() as lp:
        rows = [idle_cost(lp, wait) for wait in WAITS_MS]
    print(f"{'fetch_max_wait_ms':>17} {'fetches/s':>10} {'RRU/30 days':>12} "
          f"{'$/30 days':>10}   (per partition)   "
          f"send -> poll after idle, median / max of {WAKE_SAMPLES}")
    for r in rows:
        print(f"{r['wait_ms']:>17.0f} {r['gets_per_s']:>10.2f} {r['rru_month']:>12,.0f} "
              f"{r['usd_month']:>10.3f}                     "
              f"{r['wake_median_ms']:>6.0f} / {r['wake_max_ms']:.0f} ms")


if __name__ == "__main__":
    main()
