"""``streamlet transactions list``: open (or stuck) transactions, as kafka-transactions.sh
lists them, with when each one times out.

A transaction open past its deadline blocks read_committed readers of the partitions it
wrote to only until someone meets it: a reader, the archiver's pass or its producer's
next ``init_transactions`` aborts it. ``--all`` also shows the committed and aborted ones
whose records are still kept (30 days), with why each was aborted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from ..admin import Admin
from ..records import TransactionInfo
from .common import endpoint, print_table, stderr

app = typer.Typer(help="List open (or stuck) transactions.", no_args_is_help=True)

COLUMNS = ("TRANSACTIONAL-ID", "NUMBER", "PRODUCER-ID", "EPOCH", "STATE", "STARTED",
           "TIMEOUT", "REASON")


@app.command("list")
def list_(ctx: typer.Context, all_: Annotated[bool, typer.Option(
        "--all", help="Also the committed and aborted transactions still recorded.")] = False
          ) -> None:
    """One line per transaction: its id and number, producer id and epoch, state, when it
    started (UTC), how long until it times out ('expired' once past it) and, last, why
    it was aborted (the rest of the line)."""
    with Admin(endpoint(ctx)) as admin:
        found = admin.list_transactions(include_ended=all_)
    if not found:
        stderr().print("No open transactions." if not all_ else "No transactions recorded.")
        return
    now = int(time.time() * 1000)
    print_table(COLUMNS, (_row(t, now) for t in found))


def _row(txn: TransactionInfo, now_ms: int) -> list[str]:
    if txn.status != "open":
        timeout = "-"
    elif txn.deadline_ms < now_ms:
        timeout = "expired"
    else:
        timeout = f"{(txn.deadline_ms - now_ms) / 1000:.0f}s"
    return [txn.transactional_id, str(txn.number), str(txn.producer_id), str(txn.epoch),
            txn.status.upper(), _utc(txn.started_ms), timeout, txn.reason or "-"]


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
