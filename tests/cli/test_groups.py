"""`streamlet groups` against the shared local platform (typer's CliRunner)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner, Result

from streamlet import Admin, Consumer, Producer, TopicPartition
from streamlet.cli import app
from tests.cli.test_cli import assert_fails

Run = Callable[..., Result]
Rows = list[list[str]]

HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
          "CONSUMER-ID", "HOST", "CLIENT-ID"]
PLAN_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
BASE_MS = int(datetime(2026, 11, 25, 10, tzinfo=UTC).timestamp() * 1000)
MINUTE_MS = 60_000
SESSION_MS = 1500


@pytest.fixture
def cli(endpoint: str) -> Run:
    """Run `streamlet --endpoint ENDPOINT ARGS...` in-process."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, ["--endpoint", endpoint, *args])

    return run



def table(result: Result, header: list[str]) -> Rows:
    """The rows of a table on stdout, after checking its header."""
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    first, *rows = (line.split() for line in result.stdout.splitlines())
    assert first == header
    return rows


def offsets(cli: Run, group: str) -> Rows:
    """`groups describe` rows without the group column."""
    rows = table(cli("groups", "describe", group), HEADER)
    assert {row[0] for row in rows} == {group}
    return [row[1:] for row in rows]


def expected(topic: str, p0: tuple[str, str], p1: tuple[str, str]) -> Rows:
    """Describe rows of an idle seeded group: (CURRENT-OFFSET, LAG) of each partition."""
    return [[topic, "0", p0[0], "6", p0[1], "-", "-", "-"],
            [topic, "1", p1[0], "4", p1[1], "-", "-", "-"]]


def group_consumer(endpoint: str, topic: str, group: str, *, client_id: str = "streamlet",
                   max_poll_records: int = 500) -> Consumer:
    """A member of ``group`` that commits only when told to."""
    return Consumer(topic, endpoint=endpoint, group_id=group, client_id=client_id,
                    auto_offset_reset="earliest", session_timeout_ms=SESSION_MS,
                    enable_auto_commit=False, max_poll_records=max_poll_records)


@pytest.fixture
def group(endpoint: str, topic: str) -> str:
    """A group that committed offset 4 of partition 0 (of 6 records) and nothing of
    partition 1 (4 records), then closed: no members left.

    Partition 0's records are stamped 10:00, 10:01, ... 10:05 UTC on 2026-11-25,
    partition 1's 10:00:30, 10:01:30, 10:02:30 and 10:03:30.
    """
    Admin(endpoint).create_topic(topic, 2)
    with Producer(endpoint) as producer:
        for i in range(6):
            producer.send(topic, f"a{i}", partition=0, timestamp_ms=BASE_MS + i * MINUTE_MS)
        for i in range(4):
            producer.send(topic, f"b{i}", partition=1,
                          timestamp_ms=BASE_MS + i * MINUTE_MS + MINUTE_MS // 2)
    name = f"g-{topic}"
    consumer = group_consumer(endpoint, topic, name, max_poll_records=2)
    try:
        read = 0
        deadline = time.monotonic() + 10
        while read < 4 and time.monotonic() < deadline:
            read += sum(r.partition == 0 for r in consumer.poll(timeout=1))
        assert read >= 4
        consumer.commit({TopicPartition(topic, 0): 4})
    finally:
        consumer.close()
    return name


@contextmanager
def live_member(endpoint: str, topic: str, group: str) -> Iterator[str]:
    """A consumer that stays in ``group`` (polling, never committing); yields its id."""
    consumer = group_consumer(endpoint, topic, group, client_id="cli-test-live")
    stop = threading.Event()

    def keep_polling() -> None:
        while not stop.is_set():
            consumer.poll(timeout=0.2)

    thread = threading.Thread(target=keep_polling, daemon=True)
    thread.start()
    try:
        admin = Admin(endpoint)
        deadline = time.monotonic() + 10
        while not all(row.consumer_id for row in admin.describe_group(group)):
            assert time.monotonic() < deadline, "the live consumer never took its partitions"
            time.sleep(0.1)
        yield str(admin.describe_group(group)[0].consumer_id)
    finally:
        stop.set()
        thread.join(timeout=10)
        consumer.close()


# ---- list / describe ---------------------------------------------------------------------

def test_list_describe_delete(cli: Run, topic: str, group: str) -> None:
    listed = cli("groups", "list")
    assert listed.exit_code == 0, listed.output
    assert group in listed.stdout.splitlines()

    described = cli("groups", "describe", group)
    rows = table(described, HEADER)
    assert rows == [[group, *row] for row in expected(topic, ("4", "2"), ("-", "-"))]
    assert described.stderr == f"Consumer group '{group}' has no active members.\n"

    deleted = cli("groups", "delete", group)
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == ""
    assert deleted.stderr == f"Deleted consumer group '{group}'.\n"
    assert group not in cli("groups", "list").stdout.splitlines()
    assert_fails(cli("groups", "describe", group), group, "does not exist")


# ---- a live group is protected -----------------------------------------------------------

def test_live_members_block_reset_and_delete(cli: Run, endpoint: str, topic: str,
                                             group: str) -> None:
    with live_member(endpoint, topic, group) as member:
        live = cli("groups", "describe", group)
        assert [row[1:] for row in table(live, HEADER)] == [
            [topic, "0", "4", "6", "2", member, socket.gethostname(), "cli-test-live"],
            [topic, "1", "-", "4", "-", member, socket.gethostname(), "cli-test-live"]]
        assert live.stderr == ""

        assert_fails(cli("groups", "reset-offsets", group, "--to-earliest", "--execute"),
                     group, "live members", member)
        assert_fails(cli("groups", "delete", group), group, "live members", member)
        planned = cli("groups", "reset-offsets", group, "--to-latest")  # a plan is harmless
        assert table(planned, PLAN_HEADER) == [[group, topic, "0", "4", "6"],
                                               [group, topic, "1", "-", "4"]]
        assert [row[:4] for row in offsets(cli, group)] == [[topic, "0", "4", "6"],
                                                            [topic, "1", "-", "4"]]
    assert offsets(cli, group) == expected(topic, ("4", "2"), ("-", "-"))
    assert group in cli("groups", "list").stdout.splitlines()


# ---- reset-offsets -----------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_changes_nothing(cli: Run, topic: str,
                                                     group: str) -> None:
    for dry_run in ([], ["--dry-run"]):
        result = cli("groups", "reset-offsets", group, "--to-earliest", *dry_run)
        assert table(result, PLAN_HEADER) == [[group, topic, "0", "4", "0"],
                                              [group, topic, "1", "-", "0"]]
        assert result.stderr == ("Dry run: nothing was changed; add --execute to apply "
                                 "this plan.\n")
    shifted = cli("groups", "reset-offsets", group, "--topic", f"{topic}:0", "--shift-by", "-3")
    assert table(shifted, PLAN_HEADER) == [[group, topic, "0", "4", "1"]]

    assert_fails(cli("groups", "reset-offsets", group, "--topic", "other", "--to-earliest"),
                 group, "other")
    assert_fails(cli("groups", "reset-offsets", group, "--topic", f"{topic}:7",
                     "--to-earliest", "--execute"), group, topic, "partition 7")
    assert offsets(cli, group) == expected(topic, ("4", "2"), ("-", "-"))


def test_execute_applies_each_kind_of_reset(cli: Run, topic: str, group: str) -> None:
    """Each plan's CURRENT-OFFSET column shows what the step before it committed."""
    steps: list[tuple[list[str], Rows]] = [
        (["--to-earliest"], [["0", "4", "0"], ["1", "-", "0"]]),
        (["--to-offset", "3", "--topic", f"{topic}:0"], [["0", "0", "3"]]),
        (["--shift-by", "-2", "--topic", topic], [["0", "3", "1"], ["1", "0", "0"]]),
        (["--shift-by", "3"], [["0", "1", "4"], ["1", "0", "3"]]),
        (["--to-offset", "100", "--topic", f"{topic}:1"], [["1", "3", "4"]]),  # clamped
        (["--to-latest", "--topic", f"{topic}:1"], [["1", "4", "4"]]),
        (["--to-offset", "5"], [["0", "4", "5"], ["1", "4", "4"]]),
    ]
    for i, (args, plan) in enumerate(steps):
        result = cli("groups", "reset-offsets", group, *args, "--execute")
        assert table(result, PLAN_HEADER) == [[group, topic, *row] for row in plan], args
        assert result.stderr == (f"Reset the offsets of {len(plan)} partition(s) of group "
                                 f"'{group}'.\n")
        if i == 0:
            assert offsets(cli, group) == expected(topic, ("0", "6"), ("0", "4"))
    assert offsets(cli, group) == expected(topic, ("5", "1"), ("4", "0"))


def test_execute_to_datetime(cli: Run, topic: str, group: str) -> None:
    """Each plan's CURRENT-OFFSET column shows what the step before it committed."""
    current = ("4", "-")
    for when, new in [
        ("2026-11-25T10:01:15", ("2", "1")),  # naive: UTC
        ("2026-11-25T10:05:00.001", ("6", "4")),  # after every record: the log end
        ("2026-11-25T10:01:15+01:00", ("0", "0")),  # 09:01:15 UTC: before every record
        ("2026-11-25T10:01:15Z", ("2", "1")),
        ("1969-07-20T20:17:00", ("0", "0")),  # before the epoch: the earliest
        ("2026-11-25T11:02:00+01:00", ("2", "2")),  # exactly a record's time: that record
    ]:
        result = cli("groups", "reset-offsets", group, "--to-datetime", when, "--execute")
        assert table(result, PLAN_HEADER) == [[group, topic, "0", current[0], new[0]],
                                              [group, topic, "1", current[1], new[1]]], when
        current = new
    assert offsets(cli, group) == expected(topic, ("2", "4"), ("2", "2"))


@pytest.mark.parametrize(("args", "needles"), [
    (["--to-datetime", "yesterday"], ["--to-datetime", "'yesterday'", "ISO-8601"]),
    (["--to-datetime", "2026-13-01T00:00:00"], ["--to-datetime", "2026-13-01T00:00:00"]),
    (["--to-datetime", "2026-11-25T10:00:00+25:00"], ["--to-datetime"]),
    (["--to-offset", "-1"], ["--to-offset", "greater than or equal to 0"]),
    (["--to-offset", "many"], ["--to-offset", "integer"]),
    (["--shift-by", "1.5"], ["--shift-by", "integer"]),
    (["--to-earliest", "--shift-by", "1"], ["exactly one of", "--to-earliest and --shift-by"]),
    (["--to-latest", "--to-offset", "0", "--to-datetime", "2026-11-25"],
     ["exactly one of", "--to-latest and --to-offset and --to-datetime"]),
    ([], ["exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, "
          "--shift-by"]),
    (["--execute"], ["exactly one of"]),
    (["--to-earliest", "--topic", "orders:x"], ["--topic", "'orders:x'", "TOPIC:PARTITION"]),
    (["--to-earliest", "--topic", ":0"], ["--topic", "':0'"]),
    (["--to-earliest", "--topic", "orders:0,1"], ["--topic", "'orders:0,1'"]),
])
def test_bad_reset_options(args: list[str], needles: list[str]) -> None:
    """Checked before anything is sent: no platform needed (nothing listens on port 9)."""
    result = CliRunner().invoke(app, ["--endpoint", "direct+http://127.0.0.1:9",
                                      "groups", "reset-offsets", "any-group", *args])
    assert_fails(result, *needles)



# ---- unknown groups ----------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["describe"], ["reset-offsets", "--to-earliest"], ["reset-offsets", "--shift-by", "-1",
                                                       "--execute"], ["delete"]])
def test_unknown_group(cli: Run, topic: str, command: list[str]) -> None:
    name = f"no-such-group-{topic}"
    result = cli("groups", command[0], name, *command[1:])
    assert_fails(result, f"Consumer group '{name}' does not exist.")


@pytest.mark.parametrize("command", [["describe"], ["delete"]])
def test_invalid_group_id(cli: Run, command: list[str]) -> None:
    assert_fails(cli("groups", *command, "a#b"), "a#b")


def test_groups_without_a_command_shows_help() -> None:
    result = CliRunner().invoke(app, ["groups"])
    assert "reset-offsets" in result.output and "Traceback" not in result.output
