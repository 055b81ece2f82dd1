"""Tiered storage: what 1 million ~1 KiB JSON records cost, written once, read once by
one consumer, archived after an hour and kept 7 days, against Kinesis on-demand.

Run from the repository root::

    python -m bench.bench_tiered                   # 100,000 records per row, scaled to 1M
    python -m bench.bench_tiered --records 20000    # quicker, same per-request counts

Every DynamoDB and S3 request the engine makes is booked from the real request and its
response (``bench/ledger.py``); ``bench/tiered.py`` has the timeline of a row.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from datetime import UTC, datetime

from rich.console import Console

from streamlet.local import LocalPlatform
from streamlet.topicconfig import CONFIG_KEYS, DEFAULT_INLINE_BYTES, MAX_INLINE_BYTES

from . import report
from .bench_core import load_average, print_machine
from .billing import GET_PRICE, PUT_PRICE, RRU_PRICE, WRU_PRICE
from .events import make_keys, make_values
from .tiered import (
    CODEC,
    MILLION,
    PHASES,
    PRODUCER_DEFAULTS,
    SCHEDULE_LAG_S,
    KinesisCost,
    Spec,
    TieredBench,
    TieredRow,
    kinesis_rows,
)

RECORDS = 100_000
KINESIS_RATE = 1000
"""Records per second sharing Kinesis' stream-hour, as in performance.md 6(a)."""
TARGET_SAVING = 0.30
REQUESTED_LIMITS = {"S3 above 256 KiB": 256 * 1024, "S3 above 64 KiB": 64 * 1024}


def specs(out: Console) -> list[Spec]:
    rows = [Spec(f"inline up to the max ({MAX_INLINE_BYTES // 1024} KiB)", MAX_INLINE_BYTES)]
    for label, requested in REQUESTED_LIMITS.items():
        limit = min(requested, MAX_INLINE_BYTES)
        if limit < requested:
            out.print(f"{label}: {requested:,} B exceeds the maximum inline limit "
                      f"({MAX_INLINE_BYTES:,} B); using the maximum.")
        rows.append(Spec(label, limit))
    default = f"S3 above {DEFAULT_INLINE_BYTES // 1024} KiB (default)"
    return [*rows, Spec(default, DEFAULT_INLINE_BYTES), Spec("S3 above 4 KiB", 4 * 1024),
            Spec(f"{default}, 10 rec", DEFAULT_INLINE_BYTES, 10),
            Spec(f"{default}, 100 rec", DEFAULT_INLINE_BYTES, 100)]


def describe_scenario(out: Console, values: list[bytes]) -> None:
    sizes = list(map(len, values))
    over = sum(size > 1024 for size in sizes) / len(sizes)
    out.print(f"Records: {len(values):,} order-event JSON values per row (mean "
              f"{statistics.mean(sizes):,.1f} B, {min(sizes):,}-{max(sizes):,} B, {over:.0%} "
              "above 1,024 B) with customer-id keys, one partition. Every count below is "
              f"scaled x{MILLION / len(values):g} to 1,000,000 records (requests grow "
              "linearly with records; see the segment note under the table).")
    out.print(f"Producer defaults: batch_size {PRODUCER_DEFAULTS['batch_size']:,} B, "
              f"linger_ms {PRODUCER_DEFAULTS['linger_ms']}, codec {CODEC} (compression_type "
              "None and the topic's compression.type 'producer'), idempotent. Under a bulk "
              "load each batch fills to batch_size of uncompressed record bytes; rows "
              "ending in 'N rec' hold N records per batch instead.")
    defaults = ", ".join(f"{key} {CONFIG_KEYS[key].default}" for key in
                         ("segment.ms", "segment.bytes", "local.retention.ms", "retention.ms"))
    out.print(f"Topic config: defaults ({defaults}) but inline.max.bytes.")
    out.print(f"Timeline (injected clock): write and tail read at T0 (the consumer reads "
              f"shortly after the write, from the hot tier, engine.fetch with the default "
              f"max_bytes from offset 0 to the high watermark); one archiver pass at T0 + "
              f"segment.ms + {SCHEDULE_LAG_S} s; replay from the archive 1 min later (not in "
              f"the total); one retention pass at T0 + retention.ms + {SCHEDULE_LAG_S} s. "
              "Hot items are stored until their TTL (DynamoDB deletes expired items free, "
              "possibly up to ~2 days late: not counted), blobs until the archive pass, "
              "segments until the retention pass; 100 B per item more.")
    out.print(f"Kinesis on-demand (Standard): $0.08/GB in, $0.04/GB out, records rounded up "
              f"to 1 KiB; extended retention $0.10/GB-month for 6 of the 7 days (a rate "
              f"performance.md marks UNVERIFIED); $0.04 per stream-hour shared by "
              f"{KINESIS_RATE:,} records/s (performance.md 6(a)): 1M records = "
              f"{MILLION / KINESIS_RATE / 3600:.3f} stream-hours. GB = 2^30 B, month = 730 h. "
              "Streamlet: $0.625/M WRU, $0.125/M RRU, S3 PUT/COPY/POST/LIST $0.005/1,000, "
              "GET $0.0004/1,000, DynamoDB $0.25 and S3 Standard $0.023 per GB-month.\n")


def verdict(out: Console, rows: list[TieredRow], kinesis: list[KinesisCost]) -> None:
    default = next(r for r in rows if r.spec.inline_max == DEFAULT_INLINE_BYTES
                   and r.spec.per_batch is None)
    bar, rounded = kinesis[0].total, kinesis[1].total
    saving = 1 - default.total_usd / bar
    met = "met" if saving >= TARGET_SAVING else "NOT met"
    out.print(f"\nTarget: at the default settings (producer default batching, {CODEC}, "
              f"inline limit {DEFAULT_INLINE_BYTES:,} B) Streamlet at least "
              f"{TARGET_SAVING:.0%} cheaper per message than Kinesis on-demand: "
              f"${default.total_usd:.4f} vs ${bar:.4f} per million, {saving:.0%} cheaper "
              f"({met}); {1 - default.total_usd / rounded:.0%} cheaper than Kinesis with "
              f"each record's real size rounded up (${rounded:.4f}).")
    out.print(f"Default batching under a bulk load: {default.records / default.batches:,.1f} "
              f"records per batch, {default.batch_bytes / default.batches:,.0f} B per batch "
              f"after {CODEC} (largest {default.max_batch:,} B).")
    _breakdown(out, default)
    for phase in PHASES:
        requests = default.bill(phase).requests
        out.print(f"  {phase}: " + ", ".join(
            f"{op} {default.per_million(n):,.0f}" for op, n in sorted(requests.items())))
    out.print("Not counted: topic creation and producer-id allocation (once, not per record); "
              "API Gateway and Lambda (this is the SDK-direct path); a tail consumer's empty "
              "polls and offset commits; the archiver's scheduled runs that find nothing to "
              "do; free tiers.")


def _breakdown(out: Console, row: TieredRow) -> None:
    kept = row.bill("write", "read", "archive", "retention")
    m = row.per_million
    parts = {"DynamoDB writes": m(kept.wru) * WRU_PRICE,
             "S3 PUT/LIST/POST": m(kept.s3_put + kept.s3_list + kept.s3_post) * PUT_PRICE,
             "DynamoDB reads": m(kept.rru) * RRU_PRICE, "S3 GET": m(kept.s3_get) * GET_PRICE,
             "storage": row.storage_usd}
    total = sum(parts.values())
    out.print("Where the default row's money goes (requests per million by phase below): "
              + ", ".join(
        f"{name} ${usd:.4f} ({usd / total:.0%})"
        for name, usd in sorted(parts.items(), key=lambda kv: -kv[1])) + ".")


def segment_note(out: Console, rows: list[TieredRow]) -> None:
    limit = int(CONFIG_KEYS["segment.bytes"].default)
    row = rows[0]
    at_million = math.ceil(row.batch_bytes * MILLION / row.records / limit)
    out.print(f"Segments: each row's {row.records:,} records ({row.batch_bytes / 1e6:,.1f} MB "
              f"of batches) made {row.segments} segment; scaled, that is "
              f"{row.per_million(row.segments):g} segment PUTs, manifest items and archive "
              f"transactions per million where 1M records would make {at_million} "
              "segments of at most segment.bytes: a few cents per billion records, "
              "overstated here.")


def parse_records(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tiered")
    parser.add_argument("--records", type=int, default=RECORDS,
                        help="records per row, scaled linearly to one million")
    records: int = parser.parse_args(argv).records
    if records < 1000:
        parser.error("--records must be at least 1000")
    return records


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    records = parse_records(argv)
    out = report.console(width=400)
    print_machine(out, argv, "Streamlet tiered-storage cost", "bench.bench_tiered")
    out.print(f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    started = time.perf_counter()
    values, keys = make_values("1 KiB", records, seed=7), make_keys(records, seed=11)
    describe_scenario(out, values)
    with LocalPlatform() as lp:
        bench = TieredBench(lp)
        rows = [bench.run(spec, keys, values) for spec in specs(out)]
    kinesis = kinesis_rows(values, KINESIS_RATE)
    out.print("## Cost per 1 million records: write once, read once, keep 7 days\n")
    report.show(out, report.tiered_table(rows, kinesis))
    verdict(out, rows, kinesis)
    segment_note(out, rows)
    out.print(f"\nTotal time: {time.perf_counter() - started:,.1f} s; load average at end: "
              f"{load_average()}")


if __name__ == "__main__":
    main()
