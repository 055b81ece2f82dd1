"""Transactions: what they cost, how long a commit takes, how fast exactly-once processing
runs, and whether a commit wins against busy partitions.

Run from the repository root::

    python -m bench.bench_txn            # ~10 minutes on 2 cores
    python -m bench.bench_txn --quick    # a smoke run, ~1-2 minutes

Everything runs against one embedded ``LocalPlatform`` (moto in server mode on
127.0.0.1, every request serialized; the HTTP rows go through its local gateway, which
runs the Lambda handlers), in this process:

1. cost: units, S3 requests and dollars per transaction and per million records at 10,
   100 and 1,000 records per transaction, against the same records sent without one
   (bench/txn_cost.py). Counted from the requests, so it carries over to AWS.
2. latency: begin, sends, commit, p50/p99, direct and over HTTP (bench/txn_timing.py).
3. loops: ``processing.run`` against an at-least-once loop over the same input.
4. contention: a 10-partition transaction against rival producers, design (b) as built
   and a model of design (a) (bench/txn_contention.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from rich.console import Console

from streamlet.local import LocalPlatform

from . import report
from . import txn_report as tr
from .bench_core import load_average, print_machine
from .events import make_values
from .moto_heap import drop_tracked
from .txn_contention import A_ATTEMPTS, PARTITIONS, RIVAL_THREADS, measure_contention
from .txn_cost import LINGER_MS, measure_costs
from .txn_timing import measure_latency, measure_loops


@dataclass(frozen=True)
class Plan:
    cost_units: int
    latency_txns: int
    loop_records: int
    loop_rounds: int
    contention_txns: int
    rival_rates: tuple[float, ...]


FULL = Plan(cost_units=10, latency_txns=100, loop_records=20_000, loop_rounds=3,
            contention_txns=5, rival_rates=(1.0, 5.0))
QUICK = Plan(cost_units=2, latency_txns=10, loop_records=2_000, loop_rounds=1,
             contention_txns=2, rival_rates=(5.0,))


def section_cost(out: Console, lp: LocalPlatform, plan: Plan) -> None:
    out.print(f"## 1. Write cost per transaction: {plan.cost_units} transactions per row after "
              "a warm-up one, against the same records sent without a transaction\n")
    sizes = {k: statistics.mean(map(len, make_values(k, 2_000, seed=3))) for k in tr.KINDS}
    out.print("Mean value size: " + ", ".join(f"{k} class {v:,.1f} B" for k, v in sizes.items())
              + f"; keys ~9 B; the Producer's defaults (zstd, 256 KiB batches, idempotent) "
              f"but linger_ms={LINGER_MS:,} (batches close when full or at the flush); "
              "inline limit 8,192 B. 1 partition: every record to partition 0; 4: keyed.\n")
    rows = measure_costs(lp, plan.cost_units)
    out.print("### 1a. Per transaction (WRU / RRU as billed; $ per million transactions)\n")
    report.show(out, tr.per_txn_table(rows))
    out.print("\n### 1b. Per million records: writing them, then one read_committed reader\n")
    report.show(out, tr.per_million_table(rows))
    wru, rru, usd = tr.fixed_cost(rows)
    largest = max(r.largest_record for r in rows)
    out.print(f"\nA transaction's fixed cost over its plain sends (median of the rows): "
              f"{wru:.1f} WRU + {rru:.1f} RRU = ${usd * 1e6:.2f} per million transactions. "
              f"Largest transaction record: {largest:,} B (< 1 KB: 2 WRU per write inside "
              f"TransactWriteItems).")
    out.print(tr.requests_line(rows))
    out.print("Prices: WRU $0.625/M, RRU $0.125/M, S3 PUT $0.005/1,000, GET $0.0004/1,000 "
              "(us-east-1 on-demand); DynamoDB doubles units inside TransactWriteItems. Not "
              "counted: init_transactions and producer ids (once per producer), storage, "
              "API Gateway and Lambda.\n")


def section_latency(out: Console, lp: LocalPlatform, plan: Plan) -> None:
    out.print(f"## 2. Transaction latency on the local platform: {plan.latency_txns} "
              "transactions of 10 keyed ~100 B records per row after 3 warm-up ones, each "
              "followed by the same records sent by a plain idempotent producer\n")
    rows = [measure_latency(lp, path, partitions, plan.latency_txns)
            for path in ("direct", "http") for partitions in (1, 4)]
    report.show(out, tr.latency_table(rows))
    out.print("")
    for line in tr.calls_lines(rows):
        out.print(line)
    out.print("\nlinger_ms=5; begin = begin_transaction(); sends+flush = 10 send() then flush() "
              "(each batch's append, with its check of the transaction); commit = "
              "commit_transaction() with nothing left to flush. Local moto on loopback, in "
              "this process: not AWS latency.\n")


def section_loops(out: Console, lp: LocalPlatform, plan: Plan) -> None:
    out.print(f"## 3. Consume-transform-produce: {plan.loop_records:,} input records (~100 B, "
              f"4 partitions) -> one output each (4 partitions), direct mode, "
              f"{plan.loop_rounds} round(s) alternating\n")
    runs = measure_loops(lp, plan.loop_records, plan.loop_rounds)
    report.show(out, tr.loop_table(runs))
    out.print("\nEach loop: a new consumer group (max_poll_records 500, poll timeout 0.2 s), "
              "one Producer (linger_ms 5). Exactly once: processing.run, a transaction per "
              "poll carrying the input offsets. At least once: poll, send every output, "
              "flush, commit. Timed from the poll that returned the first records to the "
              "last commit. WRU/RRU and $: every request of the passes (group join, "
              "heartbeats, offset commits included), all rounds together, per 1,000 "
              "input records; failed requests are billed by AWS but not booked here.\n")


def section_contention(out: Console, lp: LocalPlatform, plan: Plan) -> None:
    out.print(f"## 4. A {PARTITIONS}-partition transaction (one record per partition) against "
              f"{RIVAL_THREADS} rival threads appending to every partition, "
              f"{plan.contention_txns} transactions per row\n")
    report.show(out, tr.contention_table(measure_contention(lp, plan.contention_txns,
                                                            plan.rival_rates)))
    out.print(f"\n(b): the SDK producer, linger_ms 0; PutItem per batch > 1 counts appends "
              f"that met a rival and went again. (a): {A_ATTEMPTS} attempts at most, each "
              "reading the 10 tails (fresh, one after another) then one TransactWriteItems "
              "of the 10 batch items; window = tail reads to commit answer; exp(-rivals x "
              "window) is the chance that no rival lands in a window at the measured rate. "
              "The local moto server serializes every request, so the rivals reach only a "
              "few appends per second per partition here.\n")


SECTIONS = {"cost": section_cost, "latency": section_latency, "loops": section_loops,
            "contention": section_contention}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.bench_txn")
    parser.add_argument("--quick", action="store_true", help="a small, fast run")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    chosen = str(args.only).split(",")
    if unknown := sorted(set(chosen) - set(SECTIONS)):
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    plan = QUICK if args.quick else FULL
    out = report.console()
    print_machine(out, argv, "Transactions", "bench.bench_txn")
    started = time.perf_counter()
    with LocalPlatform() as lp:
        for name in chosen:
            section_started = time.perf_counter()
            SECTIONS[name](out, lp, plan)
            drop_tracked()
            out.print(f"({name}: {time.perf_counter() - section_started:,.1f} s; load average "
                      f"now {load_average()})\n")
    out.print(f"Total time: {time.perf_counter() - started:,.1f} s; load average at end: "
              f"{load_average()}")


if __name__ == "__main__":
    main()
