"""``streamlet topics``: create, list, describe, alter, delete and grow topics."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..admin import Admin
from ..records import TopicDescription
from ..topicconfig import CONFIG_KEYS
from .common import CliError, endpoint, key_values, stderr, stdout

app = typer.Typer(help="Create, list, describe, alter, delete and grow topics.",
                  no_args_is_help=True)

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
    """Show a topic's id, config overrides, each partition's LOW / HIGH / MESSAGES, and
    every config with its SOURCE (topic: set on the topic; default).

    LOW is the log start offset (the first readable offset), HIGH the high watermark
    (the offset the next record gets); MESSAGES = HIGH - LOW.
    """
    description = Admin(endpoint(ctx)).describe_topic(name)
    typer.echo(summary_line(description))
    out = stdout()
    out.print(partition_table(description))
    out.print()
    out.print(config_table(description))


def summary_line(description: TopicDescription) -> str:
    """Kafka's describe header: ``Topic: t  TopicId: ..  PartitionCount: 3  Configs: k=v``
    (the configs set on the topic)."""
    overrides = ",".join(f"{key}={value}" for key, value in sorted(description.config.items())
                         if key in description.overrides or key not in CONFIG_KEYS)
    return (f"Topic: {description.name}\tTopicId: {description.topic_id}\t"
            f"PartitionCount: {description.partitions}\tReplicationFactor: 1\t"
            f"Configs: {overrides}")


def config_table(description: TopicDescription) -> Table:
    """CONFIG / VALUE / SOURCE, SOURCE being ``topic`` (an override) or ``default``."""
    table = Table("CONFIG", "VALUE", "SOURCE", box=None, pad_edge=False)
    for key, value in sorted(description.config.items()):
        table.add_row(key, value, "topic" if key in description.overrides else "default")
    return table


@app.command("alter")
def alter(
    ctx: typer.Context,
    name: Name,
    config: Annotated[list[str] | None, typer.Option(
        "--config", "-c", metavar="KEY=VALUE", help="Set a topic config, repeatable.",
    )] = None,
    delete_config: Annotated[list[str] | None, typer.Option(
        "--delete-config", "-d", metavar="KEY",
        help="Reset a topic config to its default, repeatable.",
    )] = None,
) -> None:
    """Change topic configs in place, all or nothing, validated as at creation, e.g.
    `streamlet topics alter orders -c retention.ms=3600000 --delete-config segment.ms`.
    Appends, fetches and the archiver use the new values within seconds."""
    sets = dict(key_values(config or [], "--config"))
    resets = list(dict.fromkeys(delete_config or []))
    if not sets and not resets:
        raise CliError("Nothing to alter: give --config KEY=VALUE and/or --delete-config KEY.")
    both = sorted(set(sets) & set(resets))
    if both:
        raise CliError(f"{', '.join(both)}: both set (--config) and reset (--delete-config).")
    changes: dict[str, object] = {key: ("SET", value) for key, value in sets.items()}
    changes.update({key: ("DELETE", None) for key in resets})
    Admin(endpoint(ctx)).incremental_alter_configs({name: changes})
    done = [f"set {k}={v}" for k, v in sets.items()] + [f"reset {k}" for k in resets]
    stderr().print(f"Altered topic '{name}': {', '.join(done)}.")


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
