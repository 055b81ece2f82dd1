"""`streamlet demo`: the importable run_demo and the command."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from streamlet import InvalidRequest, Record, RecordMetadata
from streamlet.cli import app
from streamlet.local import demo
from streamlet.local.demo import (
    DemoResult,
    PartitionStats,
    check_replay,
    check_stats,
    make_events,
    run_demo,
)


def test_run_demo_reads_back_everything_exactly_once() -> None:
    result = run_demo(records=500, seed=7)
    assert result.ok, result.problems
    assert result.produced == result.consumed == 500
    assert len(result.partitions) == 4
    assert sum(s.records for s in result.partitions) == 500
    for stats in result.partitions:
        assert stats.records > 0
        assert stats.first_offset == 0
        assert stats.last_offset == stats.records - 1
        assert stats.high_watermark == stats.records
    assert result.archived_segments == 4 and result.archived_bytes > 0
    assert result.replayed == 500
    assert result.produce_rate > 0 and result.consume_rate > 0
    assert result.elapsed_seconds >= result.produce_seconds + result.consume_seconds


def test_run_demo_on_a_given_endpoint_picks_a_free_topic_name(endpoint: str) -> None:
    first = run_demo(records=50, partitions=2, endpoint=endpoint)
    second = run_demo(records=50, partitions=2, endpoint=endpoint)
    assert first.ok and second.ok
    assert first.topic != second.topic
    assert second.topic.startswith("demo-events")


def test_run_demo_rejects_nonsense() -> None:
    with pytest.raises(InvalidRequest):
        run_demo(records=0)


def test_check_replay_spots_a_changed_or_missing_record() -> None:
    def record(offset: int, value: bytes) -> Record:
        return Record("t", 0, offset, b"k", value, timestamp=1_000)

    first = [record(0, b"a"), record(1, b"b")]
    assert check_replay(first, list(reversed(first))) == []
    assert check_replay(first, [record(0, b"a"), record(1, b"B")])
    assert check_replay(first, first[:1])


def test_check_stats_spots_gaps() -> None:
    dense = PartitionStats(0, records=3, first_offset=0, last_offset=2, high_watermark=3)
    gap = PartitionStats(1, records=3, first_offset=0, last_offset=3, high_watermark=4)
    lagging = PartitionStats(2, records=3, first_offset=0, last_offset=2, high_watermark=5)
    problems = check_stats([dense, gap, lagging])
    assert [p.split(":")[0] for p in problems] == ["partition 1", "partition 2"]


def test_demo_command() -> None:
    result = CliRunner().invoke(app, ["demo", "--records", "300"])
    assert result.exit_code == 0, result.output
    for heading in ("PARTITION", "RECORDS", "FIRST OFFSET", "LAST OFFSET", "HIGH WATERMARK",
                    "produce throughput", "consume throughput", "archived to S3",
                    "replayed from S3", "elapsed"):
        assert heading in result.stdout
    assert "300" in result.stdout
    assert "exactly once" in result.stderr
    assert "Traceback" not in result.output


def test_verify_spots_loss_duplicates_and_reordering() -> None:
    events = make_events(4, random.Random(1))
    sent = [RecordMetadata("t", 0, i, 0) for i in range(4)]
    good = [Record("t", 0, i, e.key, e.value) for i, e in enumerate(events)]
    assert demo.verify(events, sent, good) == []
    lost = demo.verify(events, sent, good[:3])
    assert any("never came back" in p for p in lost)
    doubled = demo.verify(events, sent, [*good, good[0]])
    assert any("more than once" in p for p in doubled)
    moved = [Record("t", 1, r.offset, r.key, r.value) for r in good]
    assert any("different partition/offset" in p for p in demo.verify(events, sent, moved))


def test_demo_command_fails_when_verification_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = [PartitionStats(0, 1, 0, 0, 1)]
    broken = DemoResult("demo-events", 2, 1, stats, 0.1, 0.1, 0.3, ["1 event(s) never came back"])
    monkeypatch.setattr(demo, "run_demo", lambda **_: broken)
    result = CliRunner().invoke(app, ["demo", "--records", "2"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: Verification failed: 1 event(s) never came back")
