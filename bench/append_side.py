"""One side of ``bench.bench_append``: its measurements against whichever streamlet is imported.

The driver runs a :class:`Side` in its own process for the current package, and this
module as a worker for the old one::

    PYTHONPATH=/tmp/streamlet-old/sdk:. python -m bench.append_side

The worker starts one ``LocalPlatform``, then reads one JSON command a line on stdin
(``{"section": "throughput"}``) and answers each with one line on stdout, prefixed
``BENCH-JSON``: ``{"section": ..., "result": ...}`` or ``{"error": traceback}``. Both
sides therefore run the same code, each on its own platform for the whole session.
Only APIs both packages share are used (see bench/append_cost.py).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from dataclasses import asdict
from functools import cache
from importlib import metadata
from typing import Any

import streamlet
from streamlet.local import LocalPlatform

from .append_cost import KINDS, measure_matrix, measure_naive, measure_trickle
from .bench_core import load_average
from .events import make_keys, make_values
from .latency import Latency, measure_latency, percentile
from .moto_heap import drop_tracked
from .naive import create_naive_table
from .throughput import Rate, naive_run, streamlet_run

PREFIX = "BENCH-JSON "
STREAMLET_RECORDS, NAIVE_RECORDS = 20_000, 1_000
LATENCY_RATE, LATENCY_SECONDS, LATENCY_LINGER_MS = 200, 10, 0
WRITE_OPS = ("TransactWriteItems", "PutItem")


@cache
def _throughput_records() -> tuple[list[bytes], list[bytes]]:
    return make_keys(STREAMLET_RECORDS), make_values("100 B", STREAMLET_RECORDS)


def _median_ms(durations: list[float]) -> float:
    return statistics.median(durations) * 1000 if durations else 0.0


def latency_summary(lat: Latency) -> dict[str, Any]:
    """Percentiles of send() -> poll(), and what the engines' requests took meanwhile."""
    ms = lat.millis()
    start, end = lat.window(0, len(lat.sent))
    end = max(end, max(lat.received.values(), default=end))
    calls = {op: lat.timer.durations(op, start, end) for op in sorted(lat.timer.calls)}
    pauses = lat.gc.between(start, end)
    return {"sent": len(lat.sent), "delivered": len(ms), "out_of_order": lat.out_of_order,
            "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "max": max(ms), "calls": {op: [len(d), _median_ms(d)] for op, d in calls.items()},
            "gc": [len(pauses), max(pauses, default=0.0) * 1000]}


class Side:
    """The measurements of one package version, on one local platform."""

    def __init__(self) -> None:
        self.lp = LocalPlatform()
        self.lp.start()
        self._rounds = 0

    def close(self) -> None:
        self.lp.stop()

    def hello(self) -> dict[str, Any]:
        """Which package this side measures."""
        engine_log = sys.modules.get("streamlet.engine.log")
        return {"package": str(streamlet.__file__), "version": metadata.version("streamlet"),
                "engine_doc": (getattr(engine_log, "__doc__", "") or "").split("\n")[0]}

    def cost(self) -> dict[str, Any]:
        rows = [*measure_matrix(self.lp), measure_trickle(self.lp)]
        return {"rows": [asdict(row) for row in rows]}

    def naive(self) -> dict[str, Any]:
        return {"rows": [asdict(measure_naive(self.lp, kind)) for kind in KINDS]}

    def throughput(self) -> dict[str, Any]:
        """One round: the Producer with defaults, then the naive writer (rec/s each)."""
        keys, values = _throughput_records()
        rate = Rate("defaults", STREAMLET_RECORDS)
        streamlet_run(self.lp, keys, values, {}, rate)
        ddb = self.lp.client("dynamodb")
        create_naive_table(ddb)
        self._rounds += 1
        naive = naive_run(ddb, self._rounds, keys[:NAIVE_RECORDS], values[:NAIVE_RECORDS])
        return {"streamlet": rate.rates[0], "naive": naive, "batches": len(rate.batches),
                "in_s3": rate.s3_batches, "records": STREAMLET_RECORDS,
                "naive_records": NAIVE_RECORDS}

    def latency(self) -> dict[str, Any]:
        return latency_summary(measure_latency(self.lp, LATENCY_RATE, LATENCY_SECONDS,
                                               LATENCY_LINGER_MS))

    def run(self, section: str) -> dict[str, Any]:
        """Run one section; the reply carries the load average around it."""
        if section not in ("hello", "cost", "naive", "throughput", "latency"):
            raise ValueError(f"unknown section {section!r}")
        load, started = load_average(), time.perf_counter()
        result = getattr(self, section)()
        drop_tracked()  # moto keeps every model instance: start each section small
        return {"section": section, "result": result, "load_start": load,
                "load_end": load_average(), "seconds": time.perf_counter() - started}


def serve(side: Side) -> None:
    """Answer commands from stdin until it closes."""
    for line in sys.stdin:
        try:
            reply = side.run(json.loads(line)["section"])
        except Exception:  # the driver reports it and stops
            reply = {"error": traceback.format_exc()}
        print(PREFIX + json.dumps(reply), flush=True)


def main() -> None:
    side = Side()
    try:
        serve(side)
    finally:
        side.close()


if __name__ == "__main__":
    main()
