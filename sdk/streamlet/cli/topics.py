"""``streamlet topics``: create, list, describe, delete and grow topics."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..admin import Admin
from ..records import TopicDescription
from ..topicconfig import CONFIG_KEYS
from .common import endpoint, key_values, stderr, stdout

app = typer.Typer(help="Create, list, describe, delete and grow topics.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="Topic name.", show_default=False)]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    partitions: Annotated[int, typer.Option(
        "--partitions", "-p", min=1, help="Number of partitions.")] = 1,
    config: Annotated[list[str] | None, typer.Option(
        "--config", "-c", metavar="KEY=VALUE",
        help="Topic config override, repeatable (retention.ms, max.message.bytes, ...).",
    )] = None,
) -> None:
    """Create a topic, e.g. `streamlet topics create orders -p 6 -c retention.ms=86400000`."""
    overrides = dict(key_values(config or [], "--config"))
    Admin(endpoint(ctx)).create_topic(name, partitions, overrides)
    stderr().print(f"Created topic '{name}' with {partitions} partition(s).")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List topic names, one per line."""
    for name in sorted(Admin(endpoint(ctx)).list_topics()):
        typer.echo(name)


@app.command("describe")
def describe(ctx: typer.Context, name: Name) -> None:
    """Show a topic's id, config overrides and each partition's LOW / HIGH / MESSAGES.

    LOW is the log start offset (the first readable offset), HIGH the high watermark
    (the offset the next record gets); MESSAGES = HIGH - LOW.
    """
    description = Admin(endpoint(ctx)).describe_topic(name)
    typer.echo(summary_line(description))
    stdout().print(partition_table(description))


def summary_line(description: TopicDescription) -> str:
    """Kafka's describe header: ``Topic: t  TopicId: ..  PartitionCount: 3  Configs: k=v``."""
    overrides = ",".join(f"{key}={value}" for key, value in sorted(description.config.items())
                         if key not in CONFIG_KEYS or CONFIG_KEYS[key].default != value)
    return (f"Topic: {description.name}\tTopicId: {description.topic_id}\t"
            f"PartitionCount: {description.partitions}\tReplicationFactor: 1\t"
            f"Configs: {overrides}")


def partition_table(description: TopicDescription) -> Table:
    table = Table("PARTITION", "LOW", "HIGH", "MESSAGES", box=None, pad_edge=False)
    for column in table.columns:
        column.justify = "right"
    for info in description.partition_info:
        table.add_row(str(info.partition), str(info.low), str(info.high),
                      str(info.high - info.low))
    return table


@app.command("delete")
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete a topic and all of its records."""
    Admin(endpoint(ctx)).delete_topic(name)
    stderr().print(f"Deleted topic '{name}'.")


@app.command("add-partitions")
def add_partitions(
    ctx: typer.Context,
    name: Name,
    total: Annotated[int, typer.Option(
        "--total", "-t", min=1, help="The new total number of partitions.",
        show_default=False)],
) -> None:
    """Grow a topic to --total partitions (keys may then map to other partitions)."""
    description = Admin(endpoint(ctx)).create_partitions(name, total)
    stderr().print(f"Topic '{name}' now has {description.partitions} partitions.")
