"""``streamlet admin``: run the archiver or retention now, and delete records.

On AWS the archiver function runs both every few minutes; the local platform runs them
on a timer. These commands do the same on demand, through whatever endpoint is set.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..admin import Admin
from ..records import TopicPartition
from .common import endpoint, stdout

app = typer.Typer(help="Archive to S3, enforce retention and delete records on demand.",
                  no_args_is_help=True)

TopicOption = Annotated[str | None, typer.Option(
    "--topic", "-t", help="Only this topic (default: every topic).", show_default=False)]


@app.command("archive")
def archive(ctx: typer.Context, topic: TopicOption = None,
            force: Annotated[bool, typer.Option(
                "--force", help="Roll every hot batch now, not only those past "
                                "segment.ms / segment.bytes.")] = False) -> None:
    """Move hot batches into immutable S3 segments (one row per partition)."""
    reports = Admin(endpoint(ctx)).archive(topic, force=force)
    table = Table("TOPIC", "PARTITION", "SEGMENTS", "BYTES", "ARCHIVED-OFFSET",
                  "HIGH-WATERMARK", "BLOBS-DELETED", box=None)
    for r in reports:
        table.add_row(r.topic, str(r.partition), str(len(r.segments)),
                      str(sum(s.size for s in r.segments)), str(r.archived_offset),
                      str(r.high_watermark), str(r.blobs_deleted))
    stdout().print(table)


@app.command("retention")
def retention(ctx: typer.Context, topic: TopicOption = None) -> None:
    """Delete segments past retention.ms / retention.bytes; the log start moves up."""
    reports = Admin(endpoint(ctx)).enforce_retention(topic)
    table = Table("TOPIC", "PARTITION", "LOG-START-BEFORE", "LOG-START-AFTER",
                  "SEGMENTS-DELETED", box=None)
    for r in reports:
        table.add_row(r.topic, str(r.partition), str(r.log_start_before),
                      str(r.log_start_after), str(r.segments_deleted))
    stdout().print(table)


@app.command("delete-records")
def delete_records(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic.", show_default=False)],
    partition: Annotated[int, typer.Option("--partition", "-p", min=0,
                                           help="Partition.", show_default=False)],
    before: Annotated[int, typer.Option(
        "--before", min=-1, help="Delete records below this offset; -1: all of them.",
        show_default=False)],
) -> None:
    """Kafka's kafka-delete-records: make --before the partition's log start."""
    tp = TopicPartition(topic, partition)
    low = Admin(endpoint(ctx)).delete_records({tp: before})[tp]
    typer.echo(f"{topic} partition {partition}: low watermark {low}")
