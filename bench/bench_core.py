"""Core benchmarks: producer throughput, write cost, end-to-end latency, codec speed.

Run from the repository root::

    python -m bench.bench_core            # everything, 1-2 minutes on 2 cores
    python -m bench.bench_core --only cost,codec

Everything runs against one embedded ``LocalPlatform`` (moto in server mode on
127.0.0.1, requests serialized), in this process. Results are printed as plain-text
tables that paste into Markdown (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from importlib import metadata

from rich.console import Console

from streamlet.local import LocalPlatform

from . import report
from .codec_speed import implementation, measure_codec
from .cost import CODECS, measure_costs
from .events import make_values
from .latency import POLL_TIMEOUT_S, measure_latency
from .moto_heap import drop_tracked
from .throughput import measure_throughput

SECTIONS = ("throughput", "cost", "latency", "codec")
STREAMLET_RECORDS, NAIVE_RECORDS, REPEATS = 20_000, 1_000, 3
COST_BATCHES = {1: 100, 10: 500, 100: 2_000}  # records per batch -> records appended
COST_NAIVE_RECORDS = 200
LATENCY_RATE, LATENCY_SECONDS, LATENCY_LINGER_MS = 200, 10, 0
CODEC_BATCH, CODEC_REPEATS = 500, 20


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """The machine's load averages: other processes on a 2-core box skew every number."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def versions() -> str:
    names = ("boto3", "moto", "aiokafka", "cramjam", "streamlet")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} ?")
    return ", ".join(found)


def print_machine(out: Console, argv: list[str], title: str = "Streamlet core benchmarks",
                  module: str = "bench.bench_core") -> None:
    out.print(f"# {title}\n")
    out.print(f"Command: python -m {module}{' ' + ' '.join(argv) if argv else ''}")
    out.print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    out.print(f"Python: {platform.python_implementation()} {platform.python_version()} "
              f"on {platform.platform()}")
    out.print(f"Packages: {versions()}; record module: {implementation()}")
    out.print("Storage: one in-process LocalPlatform (moto server mode, 127.0.0.1, serialized)")
    out.print(f"Load average at start (1/5/15 min): {load_average()}\n")


def section_throughput(out: Console, lp: LocalPlatform) -> None:
    out.print("## 1. Producer throughput, ~100 B JSON values, direct mode\n")
    rates = measure_throughput(lp, STREAMLET_RECORDS, NAIVE_RECORDS, REPEATS)
    report.show(out, report.throughput_table(rates))
    ratio = rates[0].median / rates[-1].median
    verdict = "met" if ratio >= 50 else "NOT met"
    out.print(f"\nStreamlet defaults / naive (medians of {REPEATS}): {ratio:,.1f}x "
              f"(target >= 50x: {verdict}). Streamlet: 4 partitions, keyed records, time "
              f"from first send() to flush() return, after one warm-up record. Naive: "
              f"{NAIVE_RECORDS:,} sequential PutItem calls per run.\n")


def section_cost(out: Console, lp: LocalPlatform) -> None:
    out.print("## 2. Write cost per 1,000 records (sized from the requests actually made)\n")
    sizes = {kind: statistics.mean(map(len, make_values(kind, 2_000, seed=3)))
             for kind in ("100 B", "1 KiB")}
    out.print("Mean value size: " + ", ".join(f"{k} class {v:,.1f} B" for k, v in sizes.items())
              + "; keys ~9 B; idempotent producer; default inline limit 8,192 B.\n")
    report.show(out, report.cost_table(measure_costs(lp, COST_BATCHES, COST_NAIVE_RECORDS)))
    out.print("\nWRU = 2 x ceil(item bytes / 1,024) per transactional item (1 x for the naive "
              "PutItem); WRU-eq adds 8 per S3 PUT ($0.005/1,000 PUT vs $0.625/M WRU).\n")


def section_latency(out: Console, lp: LocalPlatform) -> None:
    out.print(f"## 3. End-to-end latency, send() -> poll(), {LATENCY_RATE} records/s for "
              f"{LATENCY_SECONDS} s, 1 partition, linger_ms={LATENCY_LINGER_MS}, poll "
              f"timeout {POLL_TIMEOUT_S} s\n")
    lat = measure_latency(lp, LATENCY_RATE, LATENCY_SECONDS, LATENCY_LINGER_MS)
    report.show(out, report.latency_table(lat))
    out.print(f"\nDelivered {len(lat.received):,} of {len(lat.sent):,}, {lat.out_of_order} "
              "out of order. Local moto on loopback, in this process: not AWS latency.")


def section_codec(out: Console) -> None:
    out.print(f"## 4. Record codec speed, batches of {CODEC_BATCH} records, median of "
              f"{CODEC_REPEATS}\n")
    rows = [measure_codec(kind, codec, CODEC_BATCH, CODEC_REPEATS)
            for kind in ("100 B", "1 KiB") for codec in CODECS]
    report.show(out, report.codec_table(rows))
    out.print("")


def note_moto_heap(out: Console) -> None:
    tables, total = drop_tracked()
    out.print(f"moto kept {total:,} model instances reachable ({tables:,} DynamoDB Table "
              "copies from TransactWriteItems rollback backups); cleared before going on.\n")


def parse_sections(argv: list[str]) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_core")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {', '.join(SECTIONS)}")
    chosen: list[str] = str(parser.parse_args(argv).only).split(",")
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    return chosen


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    sections = parse_sections(argv)
    out = report.console()
    print_machine(out, argv)
    started = time.perf_counter()
    with LocalPlatform() as lp:
        for name, run in (("throughput", section_throughput), ("cost", section_cost),
                          ("latency", section_latency)):
            if name in sections:
                run(out, lp)
                note_moto_heap(out)
    if "codec" in sections:
        section_codec(out)
    out.print(f"Total time: {time.perf_counter() - started:,.1f} s; load average at end: "
              f"{load_average()}")


if __name__ == "__main__":
    main()
