"""``streamlet groups``: list, describe, reset the offsets of and delete consumer groups.

The commands, flags and output follow kafka-consumer-groups.sh: the describe table has
its GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
columns with ``-`` for missing values, and reset-offsets only prints its plan unless
given --execute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from ..admin import Admin, GroupPartition
from ..records import TopicPartition
from .common import CliError, endpoint, print_table, stderr

app = typer.Typer(help="List, describe, reset the offsets of and delete consumer groups.",
                  no_args_is_help=True)

Group = Annotated[str, typer.Argument(help="Consumer group id.", show_default=False)]

DESCRIBE_COLUMNS = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                    "CONSUMER-ID", "HOST", "CLIENT-ID")
PLAN_COLUMNS = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET")
RESET_OPTIONS = ("--to-earliest", "--to-latest", "--to-offset", "--to-datetime", "--shift-by")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List consumer group ids, one per line."""
    for group in sorted(Admin(endpoint(ctx)).list_groups()):
        typer.echo(group)


@app.command("describe")
def describe(ctx: typer.Context, group: Group) -> None:
    """Show each partition's committed offset, log end offset, lag and current owner.

    CURRENT-OFFSET is the group's committed offset (the next record it will read),
    LOG-END-OFFSET the high watermark, LAG the difference; '-' where there is none
    (nothing committed yet, or no member owns the partition).
    """
    rows = Admin(endpoint(ctx)).describe_group(group)
    if rows and all(row.consumer_id is None for row in rows):
        stderr().print(f"Consumer group '{group}' has no active members.", markup=False)
    print_table(DESCRIBE_COLUMNS, (_describe_row(row) for row in rows))


def _describe_row(row: GroupPartition) -> list[str]:
    return [row.group, row.topic, str(row.partition), _text(row.current_offset),
            str(row.log_end_offset), _text(row.lag), _text(row.consumer_id), _text(row.host),
            _text(row.client_id)]


@app.command("reset-offsets")
def reset_offsets(
    ctx: typer.Context,
    group: Group,
    topic: Annotated[str | None, typer.Option(
        "--topic", metavar="TOPIC[:PARTITION]",
        help="Reset only this topic, or only one of its partitions (default: every "
             "partition the group has offsets for).")] = None,
    to_earliest: Annotated[bool, typer.Option(
        "--to-earliest", help="To the log start offset.")] = False,
    to_latest: Annotated[bool, typer.Option(
        "--to-latest", help="To the log end offset (skip everything not yet read).")] = False,
    to_offset: Annotated[int | None, typer.Option(
        "--to-offset", min=0, metavar="N", help="To offset N (clamped to each log's range).",
    )] = None,
    to_datetime: Annotated[str | None, typer.Option(
        "--to-datetime", metavar="ISO8601",
        help="To the first record at or after this time, e.g. 2026-11-25T10:00:00 (UTC "
             "unless it carries an offset such as Z or +01:00); the log end if none.",
    )] = None,
    shift_by: Annotated[int | None, typer.Option(
        "--shift-by", metavar="N",
        help="Move each committed offset by N (negative: back), clamped to the log's range.",
    )] = None,
    execute: Annotated[bool, typer.Option(
        "--execute/--dry-run",
        help="Apply the new offsets (refused while the group has live members); "
             "without it only the plan is printed.")] = False,
) -> None:
    """Plan, and with --execute apply, new committed offsets for a group.

    Give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime or
    --shift-by. The plan (GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET) goes to
    stdout either way.

    Example: `streamlet groups reset-offsets billing --topic orders:0 --shift-by -10`
    """
    _exactly_one({"--to-earliest": to_earliest, "--to-latest": to_latest,
                  "--to-offset": to_offset is not None,
                  "--to-datetime": to_datetime is not None, "--shift-by": shift_by is not None})
    name, partition = parse_topic(topic)
    to_datetime_ms = None if to_datetime is None else datetime_ms(to_datetime)
    admin = Admin(endpoint(ctx))

    def reset() -> dict[TopicPartition, tuple[int | None, int]]:
        return admin.reset_offsets(group, topic=name, partition=partition,
                                   to_earliest=to_earliest, to_latest=to_latest,
                                   to_offset=to_offset, to_datetime_ms=to_datetime_ms,
                                   shift_by=shift_by, execute=execute)

    if execute:
        with stderr().status(f"Checking that group '{group}' has no live members..."):
            plan = reset()
    else:
        plan = reset()
    print_table(PLAN_COLUMNS, ([group, tp.topic, str(tp.partition), _text(old), str(new)]
                                for tp, (old, new) in sorted(plan.items())))
    if execute:
        stderr().print(f"Reset the offsets of {len(plan)} partition(s) of group '{group}'.",
                       markup=False)
    else:
        stderr().print("Dry run: nothing was changed; add --execute to apply this plan.",
                       markup=False)


def _exactly_one(chosen: dict[str, bool]) -> None:
    given = [flag for flag, present in chosen.items() if present]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise CliError(f"Choose exactly one of {', '.join(RESET_OPTIONS)}{got}.")


def parse_topic(text: str | None) -> tuple[str | None, int | None]:
    """``--topic``: ``orders`` or ``orders:3`` (kafka-consumer-groups.sh's spelling)."""
    if text is None:
        return None, None
    name, sep, partition = text.partition(":")
    if not name or (sep and not partition.isdigit()):
        raise CliError(f"Invalid --topic {text!r}: expected TOPIC or TOPIC:PARTITION "
                       "(one partition number).")
    return name, int(partition) if sep else None


def datetime_ms(text: str) -> int:
    """ISO-8601 to ms since the epoch; a time without an offset is UTC, before 1970 is 0.

    Example:
        >>> datetime_ms("1970-01-01T00:00:01.5"), datetime_ms("1970-01-01T01:00:00+01:00")
        (1500, 0)
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"Invalid --to-datetime {text!r}: expected ISO-8601 such as "
                       "2026-11-25T10:00:00 (UTC) or 2026-11-25T10:00:00+01:00.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, (moment - _EPOCH) // _MS)


@app.command("delete")
def delete(ctx: typer.Context, group: Group) -> None:
    """Delete a group's committed offsets and leases (refused while it has live members)."""
    admin = Admin(endpoint(ctx))
    with stderr().status(f"Checking that group '{group}' has no live members..."):
        admin.delete_group(group)
    stderr().print(f"Deleted consumer group '{group}'.", markup=False)


def _text(value: object) -> str:
    return "-" if value is None else str(value)
