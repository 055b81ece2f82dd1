"""`streamlet topics alter` and the SOURCE column of `streamlet topics describe`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from streamlet import Admin
from streamlet.cli import app
from tests.cli.test_cli import Run, assert_fails


@pytest.fixture
def cli(endpoint: str) -> Run:
    """Run `streamlet --endpoint ENDPOINT ARGS...` in-process."""
    def run(*args: str) -> Result:
        return CliRunner().invoke(app, ["--endpoint", endpoint, *args])

    return run


def configs(result: Result) -> dict[str, tuple[str, str]]:
    """CONFIG -> (VALUE, SOURCE) from describe's config table."""
    assert result.exit_code == 0, result.output
    _, table = result.stdout.split("\n\n", 1)
    header, *rows = table.strip().splitlines()
    assert header.split() == ["CONFIG", "VALUE", "SOURCE"]
    return {row.split()[0]: (row.split()[1], row.split()[2]) for row in rows}


def test_describe_shows_every_configs_source(cli: Run, endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, config={"retention.ms": 604800000})
    found = configs(cli("topics", "describe", topic))
    assert found["retention.ms"] == ("604800000", "topic")  # set, though equal to the default
    assert found["segment.ms"] == ("3600000", "default")
    assert len(found) >= 12


def test_alter_sets_and_resets_in_place(cli: Run, endpoint: str, topic: str) -> None:
    Admin(endpoint).create_topic(topic, config={"segment.ms": 60000})
    altered = cli("topics", "alter", topic, "--config", "retention.ms=3600000",
                  "-c", "compression.type=lz4", "--delete-config", "segment.ms")
    assert altered.exit_code == 0, altered.output
    assert altered.stderr.strip() == (f"Altered topic '{topic}': set retention.ms=3600000, "
                                      "set compression.type=lz4, reset segment.ms.")
    found = configs(cli("topics", "describe", topic))
    assert found["retention.ms"] == ("3600000", "topic")
    assert found["compression.type"] == ("lz4", "topic")
    assert found["segment.ms"] == ("3600000", "default")
    summary = cli("topics", "describe", topic).stdout.splitlines()[0]
    assert summary.endswith("Configs: compression.type=lz4,retention.ms=3600000")


@pytest.mark.parametrize(("args", "needles"), [
    ((), ["Nothing to alter"]),
    (("-c", "retention.ms=soon"), ["retention.ms", "not an integer"]),
    (("-c", "no.such.key=1"), ["no.such.key"]),
    (("-c", "retention.ms"), ["--config", "expected key=value"]),
    (("--delete-config", "no.such.key"), ["no.such.key"]),
    (("-c", "retention.ms=1", "-d", "retention.ms"), ["retention.ms", "both set"]),
    (("-c", "local.retention.ms=1000"), ["local.retention.ms"]),
])
def test_bad_alterations_are_one_error_line_and_change_nothing(
        cli: Run, endpoint: str, topic: str, args: tuple[str, ...], needles: list[str]) -> None:
    Admin(endpoint).create_topic(topic, config={"retention.ms": 60000})
    assert_fails(cli("topics", "alter", topic, *args), *needles)
    described = Admin(endpoint).describe_topic(topic)
    assert described.overrides == {"retention.ms"}
    assert described.config["retention.ms"] == "60000"


def test_altering_a_missing_topic(cli: Run, topic: str) -> None:
    assert_fails(cli("topics", "alter", topic, "-c", "retention.ms=1000"), topic,
                 "does not exist")
