"""The tables of ``python -m bench.bench_txn``."""

from __future__ import annotations

import math
import statistics

from rich.table import Table

from .latency import percentile
from .ledger import Bill
from .report import num, table
from .txn_contention import PARTITIONS, Contention
from .txn_cost import KINDS, TxnCost
from .txn_timing import LoopRun, TxnLatency

__all__ = ["KINDS"]


def _usd(value: float, digits: int = 4) -> str:
    return f"${value:.{digits}f}"


def _pairs(rows: list[TxnCost]) -> list[tuple[TxnCost, TxnCost]]:
    """(transactional, plain) rows of the same records."""
    plain = {(r.kind, r.partitions, r.per_txn): r for r in rows if r.mode == "plain"}
    return [(r, plain[(r.kind, r.partitions, r.per_txn)]) for r in rows if r.mode == "txn"]


def per_txn_table(rows: list[TxnCost]) -> Table:
    """Per transaction: what each phase writes and reads, against the same records sent
    without a transaction."""
    out = []
    for txn, plain in _pairs(rows):
        u = txn.per_unit
        begin, send, commit = txn.bill("begin"), txn.bill("send"), txn.bill("commit")
        extra = txn.bill().usd - plain.bill().usd
        out.append([txn.kind, str(txn.partitions), num(txn.per_txn),
                    f"{num(u(txn.batches), 1)} ({num(u(txn.s3_batches), 1)})",
                    f"{num(u(begin.wru), 1)} / {num(u(begin.rru), 1)}",
                    f"{num(u(send.wru), 1)} / {num(u(send.rru), 1)} / {num(u(send.s3_put), 1)}",
                    f"{num(u(commit.wru), 1)} / {num(u(commit.rru), 1)}",
                    _usd(u(txn.bill().usd) * 1e6, 2), _usd(u(plain.bill().usd) * 1e6, 2),
                    _usd(u(extra) * 1e6, 2)])
    return table(["Value", "Partitions", "Rec/txn", "Batches/txn (in S3)",
                  "Begin WRU / RRU", "Sends WRU / RRU / S3 PUT", "Commit WRU / RRU",
                  "Txn $/M txns", "Plain $ same records /M", "Overhead $/M txns"],
                 out, text_columns=1)


def per_million_table(rows: list[TxnCost]) -> Table:
    """Per million records: write side and one reader, transactional against plain."""
    out = []
    for txn, plain in _pairs(rows):
        tw, pw = txn.bill(), plain.bill()
        tr, pr = txn.bill("read"), plain.bill("read")
        m, pm = txn.per_million, plain.per_million
        out.append([txn.kind, str(txn.partitions), num(txn.per_txn),
                    f"{num(pm(pw.wru))} / {num(m(tw.wru))}",
                    f"{num(pm(pw.rru))} / {num(m(tw.rru))}",
                    f"{num(pm(pw.s3_put))} / {num(m(tw.s3_put))}",
                    _usd(pm(pw.usd)), _usd(m(tw.usd)), f"{m(tw.usd) / pm(pw.usd):.2f}x",
                    f"{num(pm(pr.rru))} / {num(m(tr.rru))}",
                    _usd(pm(pr.usd)), _usd(m(tr.usd))])
    return table(["Value", "Partitions", "Rec/txn", "WRU plain / txn", "RRU plain / txn",
                  "S3 PUT plain / txn", "Write $/M plain", "Write $/M txn", "Txn/plain",
                  "Reader RRU plain / txn", "Read $/M plain", "Read $/M txn"],
                 out, text_columns=1)


def fixed_cost(rows: list[TxnCost]) -> tuple[float, float, float]:
    """(WRU, RRU, $) a transaction adds beyond its plain sends, median over the rows."""
    pairs = _pairs(rows)
    wru = statistics.median(t.per_unit(t.bill().wru - p.bill().wru) for t, p in pairs)
    rru = statistics.median(t.per_unit(t.bill().rru - p.bill().rru) for t, p in pairs)
    usd = statistics.median(t.per_unit(t.bill().usd - p.bill().usd) for t, p in pairs)
    return wru, rru, usd


def requests_line(rows: list[TxnCost]) -> str:
    """Requests per transaction by phase, from the first transactional row."""
    txn = next(r for r in rows if r.mode == "txn")
    parts = []
    for phase in ("begin", "send", "commit", "read"):
        bill = txn.bills.get(phase, Bill())
        calls = ", ".join(f"{op} {n / txn.units:g}" for op, n in sorted(bill.requests.items()))
        parts.append(f"{phase}: {calls}")
    return (f"Requests per transaction ({txn.kind}, {txn.partitions} partition(s), "
            f"{txn.per_txn} rec/txn): " + "; ".join(parts))


def latency_table(rows: list[TxnLatency]) -> Table:
    out = []
    for lat in rows:
        cells = [lat.path, str(lat.partitions), num(len(lat.millis["total"]))]
        for part in ("begin", "send", "commit", "total", "plain"):
            ms = lat.millis[part]
            cells.append(f"{num(percentile(ms, 50), 1)} / {num(percentile(ms, 99), 1)}")
        ratio = statistics.median(lat.millis["total"]) / statistics.median(lat.millis["plain"])
        cells.append(f"{ratio:.2f}x")
        out.append(cells)
    return table(["Path", "Partitions", "Txns", "begin p50 / p99 ms",
                  "sends+flush p50 / p99", "commit p50 / p99", "whole txn p50 / p99",
                  "plain send+flush p50 / p99", "txn/plain (p50)"], out)


def calls_lines(rows: list[TxnLatency]) -> list[str]:
    """Where a direct-mode transaction's time goes: its DynamoDB calls, per transaction."""
    lines = []
    for lat in rows:
        if not lat.timer.calls:
            continue
        per = len(lat.millis["total"])
        calls = ", ".join(
            f"{op} {len(found) / per:g} x {statistics.median(d for _, d in found) * 1000:.1f} ms"
            for op, found in sorted(lat.timer.calls.items()))
        lines.append(f"{lat.path}, {lat.partitions} partition(s), DynamoDB calls per "
                     f"transaction x median: {calls}")
    return lines


def loop_table(runs: list[LoopRun]) -> Table:
    loops = list(dict.fromkeys(r.loop for r in runs))
    medians = {loop: statistics.median(r.rate for r in runs if r.loop == loop)
               for loop in loops}
    out = []
    for loop in loops:
        mine = [r for r in runs if r.loop == loop]
        records = sum(r.records for r in mine)
        bill = sum((r.bill for r in mine), Bill())
        out.append([loop, num(mine[0].records), " / ".join(num(r.rate) for r in mine),
                    num(medians[loop]), f"{medians[loop] / medians[loops[-1]]:.2f}x",
                    num(records / sum(r.commits for r in mine)),
                    num(sum(r.retried for r in mine)),
                    f"{num(bill.wru * 1000 / records, 1)} / {num(bill.rru * 1000 / records, 1)}",
                    _usd(bill.usd * 1e6 / records), num(sum(r.failed for r in mine))])
    return table(["Loop", "Records/run", "Runs (rec/s)", "Median rec/s", "vs at least once",
                  "Records per commit", "Aborted and retried", "WRU / RRU per 1k records",
                  "$/M records", "Failed requests"], out)


def contention_table(rows: list[Contention]) -> Table:
    out = []
    for c in rows:
        window = statistics.median(c.windows_ms) if c.windows_ms else 0.0
        model = (f"{math.exp(-c.rival_rate * PARTITIONS * window / 1000):.1%}"
                 if c.windows_ms else "-")
        out.append([c.design, "max" if c.target_rate <= 0 else num(c.target_rate),
                    num(c.rival_rate, 1), f"{c.committed} / {c.txns}",
                    num(c.commit_attempts / c.txns, 2),
                    f"{num(c.append_attempts / c.appends, 2)}" if c.append_attempts else "-",
                    num(window) if c.windows_ms else "-", model,
                    f"{num(percentile(c.millis, 50))} / {num(max(c.millis))}"])
    return table(["Design", "Rival target /s/partition", "Rival measured /s/partition",
                  "Committed / txns", "Commit TWI per txn", "PutItem per batch",
                  "(a) window ms", "exp(-rivals x window)", "Txn ms p50 / max"], out)
