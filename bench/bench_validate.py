"""Produce-time validation cost: ``streamlet.validation.validate_batch`` by codec and shape.

Run from the repository root::

    python -m bench.bench_validate            # about a minute on 2 cores
    python -m bench.bench_validate --runs 3   # quicker, noisier

Each batch is built once with streamlet's own builder (seeded JSON values of ~100 B or
~1 KiB, customer-id keys, no headers) and validated over and over: one run validates it
for RUN_S seconds and yields seconds per batch; the table shows the median of the runs
and their spread. ``parse_header`` (header and CRC-32C only, what the engine checked
before) is timed the same way for comparison. A second table times the refusal of
64 MiB-of-zeros bombs. Pure CPU, one thread: no platform, no I/O.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from aiokafka import codec as akcodec
from rich.console import Console
from rich.table import Table

from streamlet.codec import COMPRESSION_CODES, HEADER, HEADER_SIZE, BatchBuilder, parse_header
from streamlet.codec import calc_crc32c as crc32c
from streamlet.errors import CorruptRecord
from streamlet.validation import BatchLimits, validate_batch

from . import report
from .bench_core import cpu_model, load_average
from .codec_speed import implementation
from .events import make_keys, make_values

TS0 = 1_718_000_000_000
NOW = TS0 + 60_000
SHAPES = ((1, "100 B"), (100, "100 B"), (1000, "100 B"), (100, "1 KiB"))
RUNS, RUN_S = 7, 0.25
PARTITION_CEILING_BPS = 1_000_000  # ~1,000 WCU/s of 1 KB per DynamoDB partition key
BOMB_BYTES = 64 * 1024 * 1024
LIMITS = BatchLimits()  # max.message.bytes 1 MiB, stored and decompressed


@dataclass(frozen=True)
class Cost:
    """Seconds per validation of one batch, one entry per run."""

    codec: str
    records: int
    kind: str
    stored: int
    uncompressed: int
    validate_runs: list[float]
    header_runs: list[float]

    @property
    def validate_s(self) -> float:
        return statistics.median(self.validate_runs)

    @property
    def header_s(self) -> float:
        return statistics.median(self.header_runs)


def build(codec: str, count: int, kind: str) -> bytes:
    builder = BatchBuilder(codec, 64 * 1024 * 1024)
    for i, (key, value) in enumerate(zip(make_keys(count), make_values(kind, count),
                                         strict=True)):
        builder.append(key, value, [], TS0 + i)
    return builder.build(producer_id=-1, epoch=-1, base_sequence=-1)


def seconds_per_call(call: Callable[[], object], run_s: float) -> float:
    """Call repeatedly for ``run_s`` seconds; the mean time of one call."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < run_s:
        call()
        calls += 1
    return elapsed / calls


def measure(codec: str, count: int, kind: str, runs: int) -> Cost:
    buf, plain = build(codec, count, kind), build("none", count, kind)
    validate_batch(buf, LIMITS, NOW, "bench", 0)  # accepted, or the benchmark is wrong
    validate = [seconds_per_call(lambda: validate_batch(buf, LIMITS, NOW, "bench", 0), RUN_S)
                for _ in range(runs)]
    header = [seconds_per_call(lambda: parse_header(buf), RUN_S) for _ in range(runs)]
    return Cost(codec, count, kind, len(buf), len(plain), validate, header)


def cost_table(rows: list[Cost]) -> Table:
    out = []
    for r in rows:
        n = report.num
        us = [s * 1e6 for s in r.validate_runs]
        out.append([r.codec, f"{r.records:,} x {r.kind}", n(r.stored), n(r.uncompressed),
                    n(r.validate_s * 1e6, 1), f"{min(us):,.1f}-{max(us):,.1f}",
                    n(r.stored / r.validate_s / 1e6, 1),
                    n(r.uncompressed / r.validate_s / 1e6, 1),
                    n(r.records / r.validate_s), n(r.header_s * 1e6, 2),
                    f"{PARTITION_CEILING_BPS / (r.stored / r.validate_s):.2%}"])
    return report.table(["Codec", "Batch", "Stored B", "Uncompressed B", "Validate µs",
                         "Runs µs (min-max)", "MB/s stored", "MB/s uncompressed",
                         "Records/s", "Header+CRC only µs", "Core at 1 MB/s stored"], out, 2)


def bomb(codec: str) -> bytes:
    """A batch claiming one record whose payload is 64 MiB of zeros, compressed."""
    payload = {"gzip": akcodec.gzip_encode, "snappy": akcodec.snappy_encode,
               "lz4": akcodec.lz4_encode, "zstd": akcodec.zstd_encode}[codec](bytes(BOMB_BYTES))
    head = bytearray(HEADER.pack(0, HEADER_SIZE - 12 + len(payload), -1, 2, 0,
                                 COMPRESSION_CODES[codec], 0, NOW, NOW, -1, -1, -1, 1))
    buf = bytes(head) + payload
    return buf[:17] + crc32c(memoryview(buf)[21:]).to_bytes(4, "big") + buf[21:]


def refusal_seconds(buf: bytes, limits: BatchLimits) -> float:
    start = time.perf_counter()
    try:
        validate_batch(buf, limits, NOW, "bench", 0)
    except CorruptRecord:
        return time.perf_counter() - start
    raise RuntimeError("a bomb was accepted")


def bomb_table(runs: int) -> Table:
    limits = BatchLimits(max_batch_bytes=8 * 1024 * 1024)  # snappy's bomb is ~3 MB stored
    rows = []
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        buf = bomb(codec)
        times = [refusal_seconds(buf, limits) for _ in range(runs)]
        rows.append([codec, report.num(len(buf)), report.num(BOMB_BYTES),
                     report.num(statistics.median(times) * 1e3, 2)])
    return report.table(["Codec", "Stored B", "Expands to B", "Refused after ms (median)"],
                        rows)


def versions() -> str:
    names = ("aiokafka", "cramjam", "lz4", "backports.zstd", "streamlet")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def print_machine(out: Console, argv: list[str], runs: int) -> None:
    out.print("# Streamlet produce-time validation cost\n")
    out.print(f"Command: python -m bench.bench_validate{' ' + ' '.join(argv) if argv else ''}")
    out.print(f"CPU: {cpu_model()}, {os.cpu_count()} cores (one thread used)")
    out.print(f"Python: {platform.python_implementation()} {platform.python_version()} "
              f"on {platform.platform()}")
    out.print(f"Packages: {versions()}; record module: {implementation()}")
    out.print(f"Runs: {runs} of {RUN_S} s per cell, median shown; {LIMITS}")
    out.print(f"Load average at start (1/5/15 min): {load_average()}\n")


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per cell (median)")
    args = parser.parse_args(args_in)
    out, started = report.console(), time.perf_counter()
    print_machine(out, args_in, args.runs)
    rows = [measure(codec, count, kind, args.runs)
            for count, kind in SHAPES for codec in COMPRESSION_CODES]
    report.show(out, cost_table(rows))
    out.print("")
    report.show(out, bomb_table(args.runs))
    out.print(f"\nTotal time: {time.perf_counter() - started:.1f} s; "
              f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
