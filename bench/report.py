"""Plain-text (Markdown-compatible) tables for the benchmark sections."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from .billing import PUT_IN_WRU
from .codec_speed import CodecSpeed
from .cost import CostRow
from .latency import Latency, percentile
from .throughput import Rate
from .tiered import KinesisCost, TieredRow


def console(width: int = 240) -> Console:
    return Console(width=width, color_system=None, highlight=False, soft_wrap=True)


def table(headers: Sequence[str], rows: list[list[str]], text_columns: int = 1) -> Table:
    """A Markdown-style table: the first ``text_columns`` left-aligned, numbers right."""
    out = Table(box=box.MARKDOWN)
    for i, header in enumerate(headers):
        out.add_column(header, justify="left" if i < text_columns else "right", no_wrap=True)
    for row in rows:
        out.add_row(*row)
    return out


def show(out: Console, tab: Table) -> None:
    """Print ``tab`` without rich's blank padding lines and trailing spaces."""
    with out.capture() as captured:
        out.print(tab)
    lines = [line.rstrip() for line in captured.get().splitlines()]
    out.print("\n".join(line for line in lines if line), markup=False)


def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def throughput_table(rates: list[Rate]) -> Table:
    naive = rates[-1].median
    rows = []
    for r in rates:
        runs, batches = len(r.rates), len(r.batches)
        shape = "-" if not batches else (
            f"{num(batches / runs, 1)} ({num(sum(n for n, _ in r.batches) / batches)} rec)")
        in_s3 = f"{num(r.s3_batches / runs, 1)}" if batches else "-"
        rows.append([r.label, num(r.records), " / ".join(num(x) for x in r.rates),
                     num(r.median), f"{r.median / naive:,.1f}x", shape, in_s3])
    return table(["Writer", "Records/run", "Runs (rec/s)", "Median rec/s", "vs naive",
                  "Batches/run (mean rec/batch)", "In S3/run"], rows)


def cost_table(rows: list[CostRow]) -> Table:
    out = []
    for r in rows:
        where = "S3" if r.s3_batches and not r.inline_batches else (
            "inline" if not r.s3_batches else "mixed")
        out.append([r.kind, r.codec, num(r.per_batch), num(r.records),
                    num(r.stored_bytes / r.records, 1), where, num(r.per_1k(r.batch_wru), 1),
                    num(r.per_1k(r.other_wru), 1), num(r.wru_per_1k, 1),
                    num(r.per_1k(r.s3_puts), 1), num(r.wru_equivalent_per_1k, 1),
                    f"${r.usd_per_million:.4f}"])
    return table(["Value", "Codec", "Rec/batch", "Records", "Batch B/rec", "Batch in",
                  "Batch item WRU/1k", "Head+pid WRU/1k", "Total WRU/1k", "S3 PUT/1k",
                  f"WRU-eq/1k (PUT={PUT_IN_WRU:.0f})", "$/M records"], out, text_columns=2)


def _latency_row(label: str, lat: Latency, first: int, last: int) -> list[str]:
    ms = lat.millis(first, last)
    start, end = lat.window(first, last)
    commits = lat.timer.durations("TransactWriteItems", start, end)
    queries = lat.timer.durations("Query", start, end)
    pauses = lat.gc.between(start, end)
    med = statistics.median
    return [label, num(len(ms)), num(percentile(ms, 50), 1), num(percentile(ms, 90), 1),
            num(percentile(ms, 99), 1), num(max(ms), 1),
            f"{len(commits)} / {num(med(commits) * 1000, 1)}" if commits else "-",
            f"{len(queries)} / {num(med(queries) * 1000, 1)}" if queries else "-",
            f"{len(pauses)} / {num(max(pauses, default=0) * 1000, 0)}"]


def latency_table(lat: Latency) -> Table:
    n = len(lat.sent)
    rows = [_latency_row(f"all records (0-{n - 1})", lat, 0, n)]
    quarter = n // 4
    for q in range(4):
        first, last = q * quarter, (q + 1) * quarter if q < 3 else n
        rows.append(_latency_row(f"quarter {q + 1} ({first}-{last - 1})", lat, first, last))
    return table(["Records", "Delivered", "p50 ms", "p90 ms", "p99 ms", "max ms",
                  "TransactWriteItems n / median ms", "Query n / median ms",
                  "gen-2 GC pauses n / max ms"], rows)


def codec_table(rows: list[CodecSpeed]) -> Table:
    out = [[r.kind, r.codec, num(r.per_batch), num(r.batch_bytes / r.per_batch, 1),
            num(r.encode_s * 1e6, 3), num(1 / r.encode_s), num(r.decode_s * 1e6, 3),
            num(1 / r.decode_s), num(r.raw_decode_s * 1e6, 3), num(r.validate_s * 1e6, 3)]
           for r in rows]
    return table(["Value", "Codec", "Rec/batch", "Batch B/rec", "Encode µs/rec",
                  "Encode rec/s", "Decode µs/rec", "Decode rec/s",
                  "aiokafka-only decode µs/rec", "CRC check µs/rec"], out, text_columns=2)


TIERED_HEADERS = ["Batches stored", "Rec/batch", "Batch B/rec", "In S3", "WRU", "RRU", "S3 PUT",
                  "S3 GET", "S3 LIST+POST", "DynamoDB GB-mo", "S3 GB-mo", "Write $",
                  "Tail read $", "Archive+retention $", "Storage $", "Stream-hours $",
                  "Total $/M", "vs Kinesis", "Replay $/M"]


def _tiered_row(r: TieredRow, bar: float) -> list[str]:
    kept = r.bill("write", "read", "archive", "retention")
    m = r.per_million
    return [r.spec.label, num(r.records / r.batches, 1), num(r.batch_bytes / r.records, 1),
            f"{r.s3_batches / r.batches:.0%}", num(m(kept.wru)), num(m(kept.rru)),
            num(m(kept.s3_put)), num(m(kept.s3_get)), num(m(kept.s3_list + kept.s3_post)),
            num(r.dynamodb_gb_months, 5), num(r.s3_gb_months, 5), f"${r.usd('write'):.4f}",
            f"${r.usd('read'):.4f}", f"${r.usd('archive', 'retention'):.4f}",
            f"${r.storage_usd:.4f}", "-", f"${r.total_usd:.4f}",
            f"{r.total_usd / bar - 1:+.0%}", f"${r.usd('replay'):.4f}"]


def tiered_table(rows: list[TieredRow], kinesis: list[KinesisCost]) -> Table:
    """Per million records: Streamlet rows, then Kinesis on-demand (the first is the bar)."""
    bar = kinesis[0].total
    out = [_tiered_row(r, bar) for r in rows]
    for k in kinesis:
        out.append([k.label] + ["-"] * 10 + [
            f"${k.data_in:.4f}", f"${k.data_out:.4f}", "-", f"${k.retention:.4f}",
            f"${k.stream_hours:.4f}", f"${k.total:.4f}", f"{k.total / bar - 1:+.0%}",
            f"${k.data_out:.4f}"])
    return table(TIERED_HEADERS, out)
