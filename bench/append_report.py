"""Tables and verdicts for ``bench.bench_append``: the append path before and after.

Every function takes the JSON replies of the two sides (bench/append_side.py), so this
module never imports the package being measured.
"""

from __future__ import annotations

import statistics
from typing import Any

from rich.table import Table

from .append_cost import AppendCost
from .billing import GB
from .report import num, table
from .tiered import KINESIS_IN_PER_GB

MILLION = 1_000_000
S3_OPS = frozenset({"PutObject", "GetObject", "HeadObject", "CopyObject", "ListObjectsV2",
                    "ListObjects", "DeleteObjects", "DeleteObject"})
TRANSACTIONS = ("TransactWriteItems", "TransactGetItems")
VERSIONS = ("before", "after")


def costs(reply: dict[str, Any]) -> list[AppendCost]:
    return [AppendCost(**row) for row in reply["rows"]]


def kinesis_in(row: AppendCost) -> float:
    """Kinesis on-demand data-in $ per million of these records (each rounded to 1 KiB)."""
    return row.kinesis_bytes / GB * KINESIS_IN_PER_GB * MILLION / row.records


def dynamodb_requests(row: AppendCost) -> str:
    """DynamoDB requests per append by operation, e.g. ``PutItem 1.00``."""
    ops = sorted(op for op in row.requests if op not in S3_OPS)
    return ", ".join(f"{op} {row.requests[op] / row.appends:.2f}" for op in ops) or "-"


def _cost_cells(row: AppendCost, naive: AppendCost) -> list[str]:
    per = row.per_append_of
    return [num(per(row.batch_bytes)), "S3" if row.s3_put else "inline", num(per(row.wru), 2),
            num(per(row.ceil_kb), 1), num(per(row.rru), 2), num(per(row.s3_put), 2),
            dynamodb_requests(row), f"${row.usd_per_million:.4f}",
            f"{row.usd_per_million / naive.usd_per_million:.2f}x", f"${kinesis_in(row):.4f}"]


COST_HEADERS = ["Appends of", "Version", "Batch B/append", "Batch in", "WRU/append",
                "ceil(batch KB)", "RRU/append", "S3 PUT/append", "DynamoDB requests/append",
                "$/M records", "vs naive", "Kinesis in $/M"]


def cost_table(before: list[AppendCost], after: list[AppendCost],
               naive: list[AppendCost]) -> Table:
    """Before and after side by side for every shape, then the naive writer."""
    by_kind = {row.kind: row for row in naive}
    rows = []
    for old, new in zip(before, after, strict=True):
        for version, row in (("before", old), ("after", new)):
            rows.append([row.label, version, *_cost_cells(row, by_kind[row.kind])])
    for row in naive:  # a record per item: no batch, its "batch" is the value
        cells = _cost_cells(row, row)
        cells[1] = cells[3] = "-"
        rows.append([row.label, "either", *cells])
    return table(COST_HEADERS, rows, text_columns=2)


def request_shapes(rows: list[AppendCost]) -> dict[str, str]:
    """The distinct DynamoDB request mixes per append: inline, to S3, trickle."""
    shapes: dict[str, set[str]] = {"steady, inline": set(), "steady, batch to S3": set(),
                                   "trickle": set()}
    for row in rows:
        where = ("trickle" if row.label.startswith("trickle") else
                 "steady, batch to S3" if row.s3_put else "steady, inline")
        mix = dynamodb_requests(row)
        if row.s3_put:
            mix += f" + S3 PutObject {row.s3_put / row.appends:.2f}"
        shapes[where].add(mix)
    return {where: " | ".join(sorted(mixes)) for where, mixes in shapes.items()}


def requests_table(before: list[AppendCost], after: list[AppendCost]) -> Table:
    old, new = request_shapes(before), request_shapes(after)
    return table(["Append", "Before: requests per append", "After: requests per append"],
                 [[where, old[where], new[where]] for where in old], text_columns=3)


def throughput_table(rounds: dict[str, list[dict[str, Any]]]) -> Table:
    rows = []
    for version in VERSIONS:
        runs = rounds[version]
        fast = [r["streamlet"] for r in runs]
        slow = [r["naive"] for r in runs]
        batches = statistics.mean(r["batches"] for r in runs)
        rows.append([version, " / ".join(num(x) for x in fast), num(statistics.median(fast)),
                     " / ".join(num(x) for x in slow), num(statistics.median(slow)),
                     f"{ratio(runs):,.1f}x",
                     f"{num(batches, 1)} ({num(runs[0]['records'] / batches)} rec)",
                     " | ".join(r["load"] for r in runs)])
    return table(["Version", "Producer rec/s (runs)", "Median", "Naive rec/s (runs)", "Median",
                  "Producer / naive", "Batches/run (rec/batch)", "Load at each run (1 min)"],
                 rows)


def ratio(runs: list[dict[str, Any]]) -> float:
    """Median Producer rate over median naive rate."""
    return float(statistics.median(r["streamlet"] for r in runs)
                 / statistics.median(r["naive"] for r in runs))


def after_over_before(runs: dict[str, list[dict[str, Any]]]) -> str:
    """How the medians moved, each rate on its own (the ratio hides which one moved)."""
    def moved(key: str) -> str:
        old = statistics.median(r[key] for r in runs["before"])
        return f"{statistics.median(r[key] for r in runs['after']) / old:.2f}x"

    return (f"After / before, medians: Producer {moved('streamlet')}, naive writer "
            f"{moved('naive')} (the naive writer runs the same code on both sides).")


def _calls(lat: dict[str, Any], ops: tuple[str, ...]) -> str:
    found = [f"{op} {n:,} / {ms:.1f}" for op, (n, ms) in lat["calls"].items()
             if op in ops and n]
    return "; ".join(found) or "-"


def latency_table(latency: dict[str, dict[str, Any]]) -> Table:
    rows = []
    for version in VERSIONS:
        lat = latency[version]
        rows.append([version, f"{lat['delivered']:,} / {lat['sent']:,}",
                     str(lat["out_of_order"]), num(lat["p50"], 1), num(lat["p90"], 1),
                     num(lat["p99"], 1), num(lat["max"], 1),
                     _calls(lat, ("TransactWriteItems", "PutItem")),
                     _calls(lat, ("Query", "GetItem", "TransactGetItems")),
                     f"{lat['gc'][0]} / {lat['gc'][1]:.0f}", lat["load"]])
    return table(["Version", "Delivered", "Out of order", "p50 ms", "p90 ms", "p99 ms",
                  "max ms", "Writes n / median ms", "Reads n / median ms",
                  "gen-2 GC n / max ms", "Load at start"], rows)


def verdicts(after: list[AppendCost], runs: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each met or not, with the numbers that decide it."""
    steady = [r for r in after if not r.label.startswith("trickle")]
    single = [r for r in steady if r.kind == "100 B" and r.per_append == 1]
    inline = [r for r in steady if not r.s3_put]
    over = [r.label for r in inline if r.wru > r.ceil_kb]
    transacted = sorted({op for r in after for op in r.requests if op in TRANSACTIONS})
    got = ratio(runs)
    return [
        _verdict("1 WRU per single-record 100 B append",
                 all(r.wru == r.appends for r in single),
                 ", ".join(f"{r.codec} {r.wru / r.appends:.2f}" for r in single)),
        _verdict("at most ceil(batch KB) WRU per inline append", not over,
                 f"{len(inline) - len(over)} of {len(inline)} inline shapes"
                 + (f"; over: {', '.join(over)}" if over else "")),
        _verdict("no transactions on the write path", not transacted,
                 ", ".join(transacted) or "none sent"),
        _verdict("Producer / naive >= 80x", got >= 80, f"{got:,.1f}x"),
    ]


def _verdict(target: str, met: bool, evidence: str) -> str:
    return f"- {target}: {'met' if met else 'NOT met'} ({evidence})"
